"""Hugging Face transformers models for ``hf:MODEL_TYPE`` specs, ``fxflops zoo transformers`` and the
library sweep (``benchmarks/sweep_transformers.py``): the model class a config builds, and the default
keyword inputs of its ``forward``.

Model class: the first auto class that maps the config (a causal LM, then a seq2seq LM, the base
model, then the task heads that types without a base model ship; encoder-decoders take their seq2seq
head first), else the component class in the config's package whose ``config_class`` it is
(``clip_text_model``, ``qwen2_vl_vision``...).

Inputs, from ``forward``'s parameter names and the config, with no per-model table:

* ``input_ids``: 1 x ``tokens`` zeros; ``decoder_input_ids`` for encoder-decoders, 1 x ``decoder_tokens``;
* ``pixel_values``: 1 x channels x the first image size any nested config names (224x224 for a
  vision-only model that names none);
* ``input_values``: one second of 16 kHz audio (a (1, frames, mel bins) spectrogram where the config
  names both, as AST's does); ``input_features``: (1, mel bins, 2 x source
  positions) for Whisper-like encoders, else (1, 100 frames, feature width), CLAP's (1, 1, 1001,
  bins); a feature mask (``input_features_mask``...) all ones over the frames, on the CPU (its sum
  sets shapes);
* Qwen2-VL-style vision encoders (and LMs: Qwen2-VL, GLM-4V): patches already cut, (t*h*w, C*T*P*P),
  with their real ``grid_thw`` (a CPU tensor: its values set shapes);
* multimodal LMs: as many image (audio) placeholder tokens before the text as the encoder gives
  features (:func:`_with_placeholders`), and ``mm_token_type_ids`` marking them;
* ``pixel_values_videos``: a clip of up to 16 frames (video encoders, video-text dual encoders);
  ``flattened_patches``: 64 Pix2Struct patches; ``past_values``: up to 512 steps of the config's
  context (PatchTST, TimesFM);
* ``layout=1``: the other common layout of the same inputs (:func:`_other_layout`).
"""

from __future__ import annotations

from typing import Any

#: Default sizes: text tokens (``hf:`` specs use up to 128, the sweep 16), decoder tokens, audio
#: samples (one second at 16 kHz) and feature frames.
TOKENS = 16
DECODER_TOKENS = 8
AUDIO_SAMPLES = 16000
FEATURE_FRAMES = 100
CLAP_FRAMES = 1001
#: Masks over the feature frames that audio encoders read the lengths from (``mask.sum(-1)``):
#: all frames valid, as a feature extractor returns them for one clip.
FEATURE_MASKS = ("input_features_mask", "feature_attention_mask")
#: Video frames at most, Pix2Struct-style flattened patches, and time-series steps at most.
VIDEO_FRAMES = 16
FLAT_PATCHES = 64
SERIES_LENGTH = 512


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sub_configs(config: Any) -> list[tuple[str, Any]]:
    from transformers import PretrainedConfig

    return [(k, v) for k, v in vars(config).items() if isinstance(v, PretrainedConfig)]


#: Auto classes tried in order: language models first, then the base model, then the task heads
#: that model types without a base model ship (depth estimation, segmentation, detection...).
AUTO_CLASSES = (
    "AutoModelForCausalLM", "AutoModelForSeq2SeqLM", "AutoModel", "AutoModelForSpeechSeq2Seq",
    "AutoModelForImageClassification", "AutoModelForDepthEstimation", "AutoModelForSemanticSegmentation",
    "AutoModelForUniversalSegmentation", "AutoModelForObjectDetection", "AutoModelForMaskedLM",
    "AutoModelForTextToWaveform", "AutoModelForTextToSpectrogram", "AutoModelForImageTextToText", "AutoBackbone",
)


def auto_class_order(config: Any) -> tuple[str, ...]:
    """:data:`AUTO_CLASSES`, with the seq2seq heads first for an encoder-decoder (Whisper also maps a
    decoder-only causal LM, which would leave its encoder out)."""
    if not getattr(config, "is_encoder_decoder", False):
        return AUTO_CLASSES
    first = ("AutoModelForSeq2SeqLM", "AutoModelForSpeechSeq2Seq")
    return first + tuple(name for name in AUTO_CLASSES if name not in first)


def build_model(config: Any, device: str = "meta") -> tuple[str, Any]:
    """The first auto class of :func:`auto_class_order` that knows the config (else its
    :func:`component_class`), built on ``device`` (meta: no weights), in eval mode; with the auto
    class's name (or the component's)."""
    import torch
    import transformers

    for name in auto_class_order(config):
        auto = getattr(transformers, name, None)
        mapping = getattr(auto, "_model_mapping", None)
        if mapping is not None and type(config) in mapping:
            with torch.device(device):
                model = auto.from_config(config).eval()
            fit_rope_sections(model)
            return name, model
    component = component_class(config)
    if component is not None:
        with torch.device(device):
            model = component(config).eval()
        fit_rope_sections(model)
        return component.__name__, model
    raise LookupError(f"no {'/'.join(AUTO_CLASSES)} class for {type(config).__name__}, and no model class "
                      f"in its modeling modules takes it")


def fit_rope_sections(model: Any) -> None:
    """Multimodal rotary embeddings (Qwen2-VL, GLM-4V) split their frequencies into (time, height,
    width) sections that must sum to the number of frequencies, and take the sections from the
    config or a default in the modeling code, which a config with narrower heads (the sweep's small
    configs, ``--config hidden_size=...``) no longer matches: scaled to the frequencies the built
    module has, the rounding going to the last section, in the module and in the config (so a
    second build from it agrees)."""
    for module in model.modules():
        sections, freqs = getattr(module, "mrope_section", None), getattr(module, "inv_freq", None)
        if not (isinstance(sections, (list, tuple)) and sections and freqs is not None):
            continue
        total, old = freqs.shape[-1], sum(sections)
        if total == old or total < len(sections):
            continue
        scaled = [max(1, v * total // old) for v in sections[:-1]]
        module.mrope_section = [*scaled, total - sum(scaled)]
        rope = getattr(getattr(module, "config", None), "rope_parameters", None)
        if isinstance(rope, dict):
            rope["mrope_section"] = module.mrope_section


def component_class(config: Any) -> Any:
    """The model class of a config no auto class maps: the components of composite models
    (``clip_text_model``, ``qwen2_vl_vision``, ``sam_mask_decoder``...) have a config type of their own
    and a class in one of the same package's ``modeling_*`` modules whose ``config_class`` is that type. A
    causal LM first, then a class named ``...Model``, then the shortest name."""
    import importlib
    import inspect
    import pkgutil

    from transformers import PreTrainedModel

    package = type(config).__module__.rsplit(".", 1)[0]
    found = []
    # Usually the modeling module next to the configuration one; BLIP's text model has its own.
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
        if not info.name.rsplit(".", 1)[-1].startswith("modeling_"):
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:
            continue
        found += [c for _, c in inspect.getmembers(module, inspect.isclass)
                  if issubclass(c, PreTrainedModel) and c.__module__ == module.__name__
                  and c.__dict__.get("config_class", getattr(c, "config_class", None)) is type(config)
                  and not c.__name__.endswith("PreTrainedModel")]
    if not found:
        return None
    return min(found, key=lambda c: (not c.__name__.endswith("ForCausalLM"), not c.__name__.endswith("Model"),
                                     len(c.__name__), c.__name__))


def nested_configs(config: Any) -> list[Any]:
    """The config and its nested configs, the config first, vision/audio/encoder ones next."""
    found, todo, seen = [], [config], set()
    while todo:
        c = todo.pop(0)
        if id(c) in seen:
            continue
        seen.add(id(c))
        found.append(c)
        todo.extend(sub for _, sub in sub_configs(c))
    return found


def _image_size(config: Any) -> tuple[int, int] | None:
    for c in nested_configs(config):
        for key in ("image_size", "img_size", "input_size", "crop_size"):
            value = getattr(c, key, None)
            if is_int(value) and value > 0:
                return value, value
            if isinstance(value, (list, tuple)) and len(value) >= 2 and all(is_int(v) for v in value[-2:]):
                return int(value[-2]), int(value[-1])
            if isinstance(value, dict) and is_int(value.get("height")) and is_int(value.get("width")):
                return value["height"], value["width"]
    return None


def _channels(config: Any) -> int:
    for c in nested_configs(config):
        for key in ("num_channels", "in_channels", "in_chans", "num_input_channels"):
            if is_int(getattr(c, key, None)) and getattr(c, key) > 0:
                return getattr(c, key)
    return 3


def _feature_shape(config: Any) -> tuple[int, ...] | None:
    """``input_features``: (1, mel bins, frames) for Whisper-like encoders, else (1, frames, features);
    CLAP's HTSAT takes (1, 1, 1001, mel bins), its feature extractor's 10 s."""
    for c in nested_configs(config):
        if is_int(getattr(c, "num_mel_bins", None)) and is_int(getattr(c, "spec_size", None)):
            return 1, 1, CLAP_FRAMES, c.num_mel_bins
        if is_int(getattr(c, "num_mel_bins", None)):
            frames = 2 * c.max_source_positions if is_int(getattr(c, "max_source_positions", None)) else 3000
            return 1, c.num_mel_bins, frames
        if is_int(getattr(c, "input_feat_per_channel", None)):
            return 1, FEATURE_FRAMES, c.input_feat_per_channel * (getattr(c, "input_channels", 1) or 1)
        for key in ("feature_projection_input_dim", "feature_size", "input_dim", "n_mels", "num_mel_filters"):
            if is_int(getattr(c, key, None)) and getattr(c, key) > 0:
                return 1, FEATURE_FRAMES, getattr(c, key)
    return None


def first_int(config: Any, *keys: str, default: int) -> int:
    """The first positive integer any of ``keys`` has in the config or its nested configs."""
    for c in nested_configs(config):
        for key in keys:
            value = getattr(c, key, None)
            if isinstance(value, (list, tuple)) and value and is_int(value[0]):
                value = value[0]  # a square kernel given as [2, 2]
            if is_int(value) and value > 0:
                return int(value)
    return default


def _timm_input_size(model: Any) -> tuple[int, int] | None:
    """The input size of a timm model inside (``TimmWrapper`` configs name only the architecture,
    whose pretrained config has it)."""
    for module in model.modules():
        size = getattr(module, "pretrained_cfg", None)
        size = size.get("input_size") if isinstance(size, dict) else None
        if isinstance(size, (list, tuple)) and len(size) == 3 and all(is_int(v) for v in size):
            return int(size[1]), int(size[2])
    return None


def _video(config: Any, size: tuple[int, int] | None) -> Any:
    """A clip (1, frames, C, H, W): the config's frame count (at most :data:`VIDEO_FRAMES`, rounded
    to its tubelet), each frame ``size`` (224x224 where neither it nor the config names one)."""
    import torch

    frames = first_int(config, "num_frames", "frames_per_clip", default=VIDEO_FRAMES)
    tubelet = first_int(config, "tubelet_size", default=1)
    frames = max(tubelet, min(frames, VIDEO_FRAMES) // tubelet * tubelet)
    return torch.zeros(1, frames, _channels(config), *(size or _image_size(config) or (224, 224)), device="meta")


def _time_series(config: Any, params: Any) -> dict[str, Any]:
    """``past_values`` over the config's context (at most :data:`SERIES_LENGTH` steps, a whole number
    of patches): (1, steps, channels) where the config names input channels (PatchTST), else
    (1, steps) (TimesFM, with its padding and frequency inputs)."""
    import torch

    steps = first_int(config, "context_length", default=SERIES_LENGTH)
    patch = first_int(config, "patch_length", default=1)
    steps = max(patch, min(steps, SERIES_LENGTH) // patch * patch)
    channels = first_int(config, "num_input_channels", default=0)
    shape = (1, steps, channels) if channels else (1, steps)
    out = {"past_values": torch.zeros(*shape, device="meta")}
    if "past_values_padding" in params:
        out["past_values_padding"] = torch.zeros(1, steps, dtype=torch.long, device="meta")
    if "freq" in params:
        out["freq"] = torch.zeros(1, dtype=torch.long, device="meta")
    return out


def _patch_grid_inputs(config: Any, patches: str, grid: str) -> dict[str, Any]:
    """Qwen2-VL-style vision encoders take an image already cut into patches, (t*h*w, C*T*P*P), and
    its grid ``[[t, h, w]]``: here one frame of 2m x 2m patches, m the spatial merge size. The grid's
    values set shapes (rotary positions, window lengths), so it is a real CPU tensor, and both
    counters then run on a CPU copy (:func:`_reference_on_cpu` keeps the values of CPU inputs)."""
    import torch

    patch = first_int(config, "patch_size", default=14)
    frames = first_int(config, "temporal_patch_size", "patch_temporal", default=1)
    merge = first_int(config, "spatial_merge_size", "merge_size", "merge_kernel_size", default=1)
    side = 2 * merge
    return {patches: torch.zeros(side * side, _channels(config) * frames * patch * patch, device="meta"),
            grid: torch.tensor([[1, side, side]])}


def _other_layout(inputs: dict[str, Any], config: Any, grid: str | None) -> dict[str, Any]:
    """The second layout models use for the same inputs: audio samples with a channel axis
    (1, 1, S) (EnCodec, DAC, Mimi); log-mel features as (1, frames, bins) where Whisper has
    (1, bins, frames) (Parakeet, LASR, Granite Speech); video as (1, frames, C, H, W) where the
    config names a frame count (VideoMAE, ViViT, TimeSformer, X-CLIP); grid patches as
    (N, C, P, P) images (Kimi-K2.5)."""
    import torch

    out = dict(inputs)
    if "input_values" in out and out["input_values"].dim() == 2:
        out["input_values"] = out["input_values"][:, None]
    if "input_features" in out and out["input_features"].dim() == 3:
        # (1, frames, bins), with as few frames as the other audio inputs: Whisper's 3000 are only
        # needed where the mel bins come first (conformers with relative positions grow as frames^2)
        bins = out["input_features"].shape[1]
        out["input_features"] = torch.zeros(1, FEATURE_FRAMES, bins, device="meta")
    pixels = out.get("pixel_values")
    frames = first_int(config, "num_frames", default=0)
    if pixels is not None and pixels.dim() == 4 and frames and not grid:
        out["pixel_values"] = torch.zeros(1, frames, *pixels.shape[1:], device=pixels.device)
    if grid is not None:
        patches = next(n for n in ("hidden_states", "pixel_values") if n in out)
        patch = first_int(config, "patch_size", default=14)
        out[patches] = torch.zeros(out[patches].shape[0], _channels(config), patch, patch, device="meta")
    return out


def _token_id(config: Any, kind: str) -> int | None:
    """The placeholder token id of ``kind`` ("image", "audio", "video") the config names (the
    config's own first: a composite model's LM reads it there)."""
    for c in nested_configs(config):
        for key in (f"{kind}_token_id", f"{kind}_token_index"):
            value = getattr(c, key, None)
            if is_int(value) and value >= 0:
                return value
    return None


def _feature_rows(model: Any, method: str, inputs: dict[str, Any]) -> int | None:
    """How many placeholder tokens the encoder output of ``model.<method>(**inputs)`` fills: its
    features' numel over the text embedding width, as ``get_placeholder_mask`` checks it. Run on
    meta (no weights read); None when the model has no such method or it fails."""
    import torch

    from fxflops.convention import resolve_convention
    from fxflops.recorder import record
    from fxflops.registry import DEFAULT_REGISTRY

    # The model, else the child that holds the encoders (``model.model``, ColPali's ``vlm``).
    owner = next((m for m in (model, *model.children()) if callable(getattr(m, method, None))), None)
    embeddings = getattr(model, "get_input_embeddings", lambda: None)()
    width = getattr(embeddings, "embedding_dim", None)
    if owner is None or not is_int(width):
        return None
    try:  # fxflops' own meta run: a CPU mask's values set the encoder's lengths there, as in a count
        out = record(owner, (), {**inputs, "return_dict": True}, registry=DEFAULT_REGISTRY,
                     convention=resolve_convention("default"), method=method).output
    except Exception:
        return None
    out = getattr(out, "pooler_output", out)
    tensors = out if isinstance(out, (list, tuple)) else [out]
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        return None
    numel = sum(t.numel() for t in tensors)
    return numel // width if numel and numel % width == 0 else None


def _with_placeholders(model: Any, config: Any, inputs: dict[str, Any], params: Any) -> None:
    """A multimodal LM scatters its encoder's features into the rows of ``input_ids`` that hold its
    image (audio) token, and refuses ids with a different number of them: put as many as the encoder
    gives before the text, as a processor does. The ids are then a real CPU tensor (their values
    set which rows take features). Left as they are when the count cannot be found."""
    import torch

    placed: dict[str, int] = {}
    for kind, method, names in (("image", "get_image_features", ("pixel_values", "image_grid_thw", "image_sizes")),
                                ("audio", "get_audio_features", ("input_features", *FEATURE_MASKS))):
        token = _token_id(config, kind)
        given = {n: inputs[n] for n in names if n in inputs}
        if token is None or names[0] not in given:
            continue
        rows = _feature_rows(model, method, given)
        if rows is None:
            continue
        ids = inputs["input_ids"]
        if ids.device.type == "meta":  # the text: zeros (an earlier kind's placeholders are kept)
            ids = torch.zeros(ids.shape, dtype=ids.dtype)
        inputs["input_ids"] = torch.cat([torch.full((1, rows), token, dtype=ids.dtype), ids], dim=1)
        placed[kind] = token
    if "mm_token_type_ids" in params and "image" in placed:
        # Which rows are image tokens (1; text and audio 0), as the processor returns it:
        # multimodal rotary positions (GLM-4V, Qwen3-VL) are laid out from it.
        inputs["mm_token_type_ids"] = (inputs["input_ids"] == placed["image"]).long()


def default_inputs(model: Any, config: Any, images: bool = True, layout: int = 0, tokens: int = TOKENS,
                   decoder_tokens: int = DECODER_TOKENS) -> dict[str, Any]:
    """The default keyword inputs of ``model.forward``, on meta (module docstring), in signature
    order. ``images=False`` leaves pixels out (a multimodal LM wants image tokens in its ids to go
    with them); ``layout=1`` is the other common layout of the same inputs, tried when neither
    counter runs on the first (:func:`_other_layout`). LookupError when no input fits."""
    import inspect

    import torch

    params = inspect.signature(model.forward).parameters
    inputs: dict[str, Any] = {}
    meta = torch.device("meta")
    if "input_ids" in params:
        inputs["input_ids"] = torch.zeros(1, tokens, dtype=torch.long, device=meta)
    if "pixel_values" in params and images:
        size = _image_size(config)
        if size is None and "input_ids" not in params:
            size = (224, 224)  # a vision-only model whose config names no size (CNNs)
        if size is not None:
            inputs["pixel_values"] = torch.zeros(1, _channels(config), *size, device=meta)
    for name, parameter in params.items():
        # Other required token ids (InstructBLIP's ``qformer_input_ids``): the same text
        if name.endswith("input_ids") and name not in inputs and parameter.default is inspect.Parameter.empty:
            inputs[name] = torch.zeros(1, tokens, dtype=torch.long, device=meta)
            mask = name.replace("input_ids", "attention_mask")
            if mask in params:  # with its mask, as the processor returns both: all tokens valid (CPU: read)
                inputs[mask] = torch.ones(1, tokens, dtype=torch.long)
    if "decoder_input_ids" in params and getattr(config, "is_encoder_decoder", False):
        inputs["decoder_input_ids"] = torch.zeros(1, decoder_tokens, dtype=torch.long, device=meta)
    if "input_values" in params:
        inputs["input_values"] = torch.zeros(1, AUDIO_SAMPLES, device=meta)
        spectrogram = next((c for c in nested_configs(config) if is_int(getattr(c, "num_mel_bins", None))
                            and is_int(getattr(c, "max_length", None))), None)
        if spectrogram is not None:  # the Audio Spectrogram Transformer: (1, frames, mel bins)
            inputs["input_values"] = torch.zeros(1, spectrogram.max_length, spectrogram.num_mel_bins, device=meta)
    if "input_features" in params:
        shape = _feature_shape(config)
        if shape is not None:
            inputs["input_features"] = torch.zeros(*shape, device=meta)
    videos = params.get("pixel_values_videos")
    # A video encoder's clip, or a video-text dual encoder's (which requires one): not a video LM's,
    # which takes video tokens in its ids to go with it.
    if videos is not None and images and ("input_ids" not in params or videos.default is inspect.Parameter.empty):
        inputs["pixel_values_videos"] = _video(config, _timm_input_size(model))
    if "flattened_patches" in params:
        # Pix2Struct-style: each patch's row and column index, then its pixels (patch_embed_hidden_size)
        width = first_int(config, "patch_embed_hidden_size", default=768)
        inputs["flattened_patches"] = torch.zeros(1, FLAT_PATCHES, 2 + width, device=meta)
    if "past_values" in params:
        inputs.update(_time_series(config, params))
    grid = next((n for n in ("grid_thw", "image_grid_thw") if n in params), None)
    patches = next((n for n in ("hidden_states", "pixel_values") if n in params), None)
    # A multimodal LM with a patch grid (Qwen2-VL, GLM-4V) takes its image that way too.
    multimodal_grid = grid == "image_grid_thw" and "pixel_values" in params and images
    if grid and patches and ("input_ids" not in params or multimodal_grid):
        inputs.update(_patch_grid_inputs(config, patches, grid))
        if "merge_sizes" in params:  # VideoLLaMA3: one merge size per image
            inputs["merge_sizes"] = torch.tensor([first_int(config, "spatial_merge_size", "merge_size", default=1)])
    if layout:
        inputs = _other_layout(inputs, config, grid)
    features = inputs.get("input_features")
    mask = next((n for n in FEATURE_MASKS if n in params), None)
    if features is not None and features.dim() == 3 and mask:
        # The lengths set shapes (a mask's sum slices the frames), so it is a real CPU tensor, as
        # a patch grid is; the frame axis is the longer one of (bins, frames) and (frames, bins).
        frames = features.shape[2] if features.shape[2] > features.shape[1] else features.shape[1]
        inputs[mask] = torch.ones(1, frames, dtype=torch.long)
    if "input_ids" in inputs:
        _with_placeholders(model, config, inputs, params)
    if not inputs or set(inputs) == {"decoder_input_ids"}:
        taken = ", ".join(p for p in params if p not in ("self", "kwargs"))[:200]
        raise LookupError(f"no default inputs for forward({taken})")
    return {name: inputs[name] for name in params if name in inputs}



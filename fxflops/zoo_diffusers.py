"""diffusers models for ``diffusers:CLASS`` specs, ``fxflops zoo diffusers`` and the library sweep:
every model class, a small config, default keyword inputs.

What is built: every class exported by ``diffusers`` that subclasses ``ModelMixin`` (UNets,
autoencoders, diffusion transformers, ControlNets, adapters...), built from its default config with
the depth cut (``num_layers``-like arguments above 2 set to 2; widths stay as released, which the
meta device makes free) on the meta device. Inputs are built from ``forward``'s parameter names and
the config, with no per-class table:

* ``sample`` / ``hidden_states``: a latent of ``in_channels`` channels, 16x16 (``(B, C, H, W)``;
  ``(B, C, F, H, W)`` with 2 frames for classes named ``...3D...``/``...Video...``; ``(B, C, L)`` for
  ``...1D...``/audio classes); packed ``(B, 16, in_channels)`` tokens when ``forward`` takes ``img_ids``
  (Flux-like), with ``img_ids``/``txt_ids`` position ids;
* ``encoder_hidden_states``: 8 text tokens of the config's text width (``caption_channels``,
  ``joint_attention_dim``, ``text_dim``, ``text_embed_dim``, ``cross_attention_dim``, ...);
  when none of those is set, the first other integer field named like a text or condition width
  (``cap_feat_dim``, ``text_hidden_size``...); a required ``encoder_attention_mask`` keeps all 8;
* ``timestep`` (and ``timestep_r``/``r_timestep``) one value, ``pooled_projections`` of
  ``pooled_projection_dim``, DiT's ``class_labels``; CogView's ``original_size``/``target_size``/
  ``crop_coords`` (1, 2); Stable Video Diffusion's ``added_time_ids`` (1, 3);
* ``controlnet_cond``: an image of ``conditioning_channels`` at 8x the latent side where the config
  names them (the UNet ControlNets), else a latent like ``hidden_states`` (Flux, SD3, Sana...);
* other required arguments: none is invented; the model is listed as a build error naming them.

A class these rules do not fit is listed with its reason (``docs/coverage-diffusers.md``, written
by ``python -m benchmarks.sweep_vision diffusers``), never hidden.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

#: Latent side, frames, text tokens and packed image tokens of the default inputs.
LATENT = 16
FRAMES = 2
TEXT_TOKENS = 8
PACKED_TOKENS = 16
#: Depth arguments cut to 2.
DEPTH = ("num_layers", "num_single_layers", "num_blocks", "depth", "num_transformer_layers", "num_hidden_layers",
         "num_refiner_layers", "num_encoder_layers", "num_decoder_layers")
#: Config fields that give the width of ``encoder_hidden_states``, in order of preference.
TEXT_WIDTH = ("caption_channels", "joint_attention_dim", "text_dim", "text_embed_dim", "text_hidden_dim",
              "encoder_hid_dim", "cross_attention_dim", "context_dim")


def list_classes() -> list[str]:
    """Every ``ModelMixin`` subclass ``diffusers`` exports, by name."""
    import diffusers

    names = []
    for name in dir(diffusers):
        if name.startswith("_"):
            continue
        try:
            obj = getattr(diffusers, name)
        except Exception:  # an optional backend missing
            continue
        if inspect.isclass(obj) and issubclass(obj, diffusers.ModelMixin) and obj is not diffusers.ModelMixin:
            names.append(name)
    return sorted(names)


def small_overrides(cls: Any) -> dict[str, Any]:
    """The depth arguments of ``cls.__init__`` above 2, set to 2."""
    overrides = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name in DEPTH and isinstance(p.default, int) and not isinstance(p.default, bool) and p.default > 2:
            overrides[name] = 2
    return overrides


def build(name: str, device: str) -> Any:
    import diffusers
    import torch

    cls = getattr(diffusers, name)
    with torch.device(device):
        return cls(**small_overrides(cls)).eval()


def _int(config: Any, *keys: str) -> int | None:
    for key in keys:
        value = config.get(key) if hasattr(config, "get") else getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


_TEXT_WIDTH_NAME = re.compile(r"(text|caption|cap|context|cross|encoder|cond)\w*_(dim|channels|size)$")


def _text_width(config: Any) -> int | None:
    """The width of ``encoder_hidden_states``: a :data:`TEXT_WIDTH` field, else the first integer
    field named like a text or condition width."""
    width = _int(config, *TEXT_WIDTH)
    if width is not None:
        return width
    keys = [k for k in (config.keys() if hasattr(config, "keys") else vars(config))
            if _TEXT_WIDTH_NAME.search(str(k)) and "num_" not in str(k)]
    return _int(config, *keys)


def _rank(name: str) -> int:
    """Spatial dimensions of a class's latent: 3 (frames, height, width), 1 (length) or 2."""
    if any(part in name for part in ("3D", "Video", "Wan", "Mochi", "Cosmos", "Allegro", "Hunyuan", "LTX")):
        return 3
    if any(part in name for part in ("1D", "Audio", "Oobleck", "Music")):
        return 1
    return 2


def inputs_for(name: str, model: Any) -> dict[str, Any]:
    """Default keyword inputs on meta (see the module docstring); ``LookupError`` when a required
    argument has no rule here."""
    import torch

    meta = torch.device("meta")
    config = model.config
    params = inspect.signature(model.forward).parameters
    channels = _int(config, "in_channels", "latent_channels", "num_channels") or 4
    packed = "img_ids" in params
    rank = _rank(name)
    spatial = {1: (LATENT * 4,), 2: (LATENT, LATENT), 3: (FRAMES, LATENT, LATENT)}[rank]
    latent = (1, PACKED_TOKENS, channels) if packed else (1, channels, *spatial)
    text = _text_width(config)
    inputs: dict[str, Any] = {}
    missing = []
    for pname, p in params.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        required = p.default is inspect.Parameter.empty
        if pname in ("sample", "hidden_states", "x", "latents"):
            inputs[pname] = torch.empty(latent, device=meta)
        elif pname in ("timestep", "timesteps", "timestep_ratio", "timestep_r", "r_timestep"):
            inputs[pname] = torch.ones(1, device=meta)
        elif pname == "encoder_hidden_states" and text is not None:
            inputs[pname] = torch.empty(1, TEXT_TOKENS, text, device=meta)
        elif pname == "encoder_attention_mask" and required:
            inputs[pname] = torch.ones(1, TEXT_TOKENS, dtype=torch.long)  # values: models index with it
        elif pname in ("original_size", "target_size", "crop_coords") and required:
            inputs[pname] = torch.ones(1, 2, device=meta)
        elif pname == "added_time_ids" and required:
            inputs[pname] = torch.ones(1, 3, device=meta)
        elif pname == "controlnet_cond":
            image = _int(config, "conditioning_channels")
            shape = (1, image, *(8 * side for side in spatial)) if image and not packed else latent
            inputs[pname] = torch.empty(shape, device=meta)
        elif pname == "pooled_projections" and _int(config, "pooled_projection_dim") is not None:
            inputs[pname] = torch.empty(1, _int(config, "pooled_projection_dim"), device=meta)
        elif pname == "img_ids" and packed:
            inputs[pname] = torch.zeros(PACKED_TOKENS, 3, device=meta)
        elif pname == "txt_ids" and packed:
            inputs[pname] = torch.zeros(TEXT_TOKENS, 3, device=meta)
        elif pname == "class_labels" and (required or name.startswith("DiT")):
            inputs[pname] = torch.zeros(1, dtype=torch.long, device=meta)
        elif pname == "added_cond_kwargs" and hasattr(model, "use_additional_conditions"):
            # PixArt's micro-conditions: the image's resolution and aspect ratio, when its config uses them.
            extra = model.use_additional_conditions
            inputs[pname] = {"resolution": torch.empty(1, 2, device=meta) if extra else None,
                             "aspect_ratio": torch.empty(1, 1, device=meta) if extra else None}
        elif required:
            missing.append(pname)
    if missing or not inputs:
        taken = ", ".join(p for p in params if p not in ("self", "kwargs"))[:200]
        raise LookupError(f"no default input for {', '.join(missing) or 'any argument'} of forward({taken})")
    return inputs

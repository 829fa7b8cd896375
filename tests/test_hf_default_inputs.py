"""Default inputs of ``hf:`` specs and the transformers sweep (:mod:`fxflops.zoo_transformers`) for the
model families that need more than token ids: multimodal LMs (placeholder tokens), video encoders,
time-series models, Pix2Struct patches. Each is checked on a tiny config against FlopCounterMode on
the CPU (math SDPA, which it counts; the fused CPU kernel it misses) as the sweep does."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import fxflops

transformers = pytest.importorskip("transformers")

from fxflops.zoo_transformers import build_model, default_inputs, fit_rope_sections  # noqa: E402

TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1, vocab_size=64)


def _reference(config: Any, inputs: dict[str, Any]) -> int:
    """FlopCounterMode on a seeded CPU build: meta inputs become zeros, CPU ones (ids, grids) stay."""
    torch.manual_seed(0)
    _, model = build_model(config, device="cpu")
    cpu = {k: v if v.device.type == "cpu" else torch.zeros(v.shape, dtype=v.dtype) for k, v in inputs.items()}
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        model(**cpu)
    return int(counter.get_total_flops())


def test_llava_ids_hold_one_image_token_per_patch() -> None:
    config = transformers.LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=28, patch_size=14),
        text_config=dict(model_type="llama", **TEXT), image_token_id=63)
    _, model = build_model(config)
    inputs = default_inputs(model, config)
    ids = inputs["input_ids"]
    # (28/14)^2 = 4 patches (the CLS token is dropped: vision_feature_select_strategy="default"),
    # then the 16 text tokens
    assert ids.shape == (1, 20)
    assert ids[0, :4].tolist() == [63] * 4 and ids[0, 4:].tolist() == [0] * 16
    # vision (5 tokens with CLS, width 32): patch conv 2*4*588*32 = 150,528; q,k,v,o 4*2*5*32*32 = 40,960;
    # attention 2*2*5*5*32 = 3,200; MLP 2*2*5*32*64 = 40,960. Projector: 2*2*4*32*32 = 16,384.
    # Llama layer on 20 tokens: q,k,v,o 2*20*(32*32 + 2*32*16 + 32*32) = 122,880; attention 2*2*20*20*32
    # = 51,200; MLP 3*2*20*32*64 = 245,760. Sum: 671,872
    assert fxflops.count(model, kwargs=inputs).total == 671_872 == _reference(config, inputs)


def test_qwen2_vl_takes_patches_its_grid_and_merged_image_tokens() -> None:
    config = transformers.Qwen2VLConfig(
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        text_config=dict(**TEXT, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                  "mrope_section": [2, 3, 3]}),
        image_token_id=63)
    _, model = build_model(config)
    inputs = default_inputs(model, config)
    # a 4x4 grid of patches, each 3 channels * 2 frames * 14 * 14 = 1176 values
    assert inputs["pixel_values"].shape == (16, 1176)
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]
    # 16 patches merged 2x2: 4 image tokens before the 16 text tokens, typed 1 in mm_token_type_ids
    assert inputs["input_ids"].shape == (1, 20)
    assert inputs["mm_token_type_ids"][0].tolist() == [1] * 4 + [0] * 16
    assert fxflops.count(model, kwargs=inputs).total == _reference(config, inputs)


def test_rope_sections_follow_the_shrunk_heads() -> None:
    class Rotary(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mrope_section = [16, 24, 24]  # Qwen2-VL's default: 64 frequencies for 128-wide heads
            self.register_buffer("inv_freq", torch.zeros(8))  # a 16-wide head has 8

    model = torch.nn.Sequential(Rotary())
    fit_rope_sections(model)
    # 16*8/64 = 2 and 24*8/64 = 3; the last takes the rest: 8 - 5 = 3
    assert model[0].mrope_section == [2, 3, 3]


def test_video_encoder_clip_is_cut_to_sixteen_frames_of_its_tubelet() -> None:
    config = transformers.VJEPA2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2,
                                       pred_hidden_size=32, pred_num_hidden_layers=1, pred_num_attention_heads=2,
                                       crop_size=32, patch_size=16, frames_per_clip=64, tubelet_size=2)
    _, model = build_model(config)
    inputs = default_inputs(model, config)
    # 64 frames per clip, at most 16 (a whole number of 2-frame tubelets), 32x32 RGB frames
    assert inputs["pixel_values_videos"].shape == (1, 16, 3, 32, 32)


def test_time_series_models_take_past_values_over_their_context() -> None:
    patchtst = transformers.PatchTSTConfig(context_length=32, num_input_channels=3, d_model=16, num_hidden_layers=1)
    _, model = build_model(patchtst)
    inputs = default_inputs(model, patchtst)
    # (1, 32 steps, 3 channels)
    assert inputs["past_values"].shape == (1, 32, 3)
    assert fxflops.count(model, kwargs=inputs).total == _reference(patchtst, inputs)
    timesfm = transformers.TimesFmConfig(context_length=16384, patch_length=32, hidden_size=16,
                                         intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    _, model = build_model(timesfm)
    inputs = default_inputs(model, timesfm)
    # 16,384 steps cut to 512 = 16 patches of 32, with a padding mask and one frequency per series
    assert inputs["past_values"].shape == inputs["past_values_padding"].shape == (1, 512)
    assert inputs["freq"].shape == (1,)
    assert fxflops.count(model, kwargs=inputs).total == _reference(timesfm, inputs)


def test_pix2struct_patches_carry_their_row_and_column() -> None:
    config = transformers.Pix2StructVisionConfig(hidden_size=16, patch_embed_hidden_size=48, d_ff=32, d_kv=8,
                                                 num_hidden_layers=1, num_attention_heads=2)
    _, model = build_model(config)
    inputs = default_inputs(model, config)
    # 64 patches of 2 + 48 values (row, column, then 4x4x3 pixels)
    assert inputs["flattened_patches"].shape == (1, 64, 50)
    assert fxflops.count(model, kwargs=inputs).total == _reference(config, inputs)


class _ImageAndAudioLM(torch.nn.Module):
    """The placeholder interface of an omni model: 3 image rows and 2 audio rows of width 8."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(16, 8)

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.embed

    def get_image_features(self, pixel_values: torch.Tensor, return_dict: bool = True) -> torch.Tensor:
        return pixel_values.new_zeros(3, 8)

    def get_audio_features(self, input_features: torch.Tensor, return_dict: bool = True) -> torch.Tensor:
        return input_features.new_zeros(2, 8)

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor, input_features: torch.Tensor,
                mm_token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.embed(input_ids)


def test_image_and_audio_placeholders_both_stay() -> None:
    from types import SimpleNamespace

    config = SimpleNamespace(image_token_id=5, audio_token_id=6, image_size=28, num_mel_bins=8)
    with torch.device("meta"):
        model = _ImageAndAudioLM()
    inputs = default_inputs(model, config)
    # 2 audio rows, then 3 image rows, then the 16 text tokens; only the image rows typed 1
    assert inputs["input_ids"][0].tolist() == [6] * 2 + [5] * 3 + [0] * 16
    assert inputs["mm_token_type_ids"][0].tolist() == [0] * 2 + [1] * 3 + [0] * 16

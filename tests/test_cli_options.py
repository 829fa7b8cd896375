"""CLI options of the later issues: conventions, causal, trace, backward and MFU, symbolic
inputs, Hugging Face specs with --config, and the torchvision and timm zoos."""

from __future__ import annotations

import json

import pytest

from fxflops.cli import main
from fxflops.specs import SpecError, parse_config, parse_input


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_symbolic_input_parses() -> None:
    item = parse_input("1xL:long")
    assert (item.symbols, item.dtype, item.shape[0]) == ({1: "L"}, "int64", 1)
    with pytest.raises(SpecError, match="malformed --input"):
        parse_input("1xL x2")


def test_config_parses_literals() -> None:
    assert parse_config(["n_layer=2", "use_cache=False", "act=gelu_new"]) == {
        "n_layer": 2, "use_cache": False, "act": "gelu_new"}
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        parse_config(["n_layer"])


def test_hf_gpt2_formula(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    code, out, _ = run(capsys, "count", "hf:gpt2", "--input", "1xL:long", "--config", "n_layer=2")
    assert code == 0
    # 2 layers: attention 2 * 2 * 2 * L*L*768 = 6,144 L**2;
    # linear 2 * L * (2 * (768*2304 + 768*768 + 2*768*3072) + 768*50257) = 2 * L * 52,753,152
    assert "total:   6144*L**2 + 105506304*L FLOPs" in out
    assert "inputs:  1xL int64" in out


def test_hf_component_type_builds_its_own_class(capsys: pytest.CaptureFixture[str]) -> None:
    """``clip_text_model`` is in no auto class: its class is the one whose ``config_class`` it is."""
    pytest.importorskip("transformers")
    code, out, _ = run(capsys, "count", "hf:clip_text_model", "--config", "num_hidden_layers=1")
    assert code == 0
    assert "inputs:  1x77 int64" in out  # CLIP's 77 positions
    # One layer, 77 tokens, width 512, MLP 2048, no LM head: q/k/v/out 4 * 2*77*512*512 = 161,480,704;
    # MLP 2 * 2*77*512*2048 = 322,961,408; scores and values 2 * 2*77*77*512 = 12,142,592.
    assert "(496,584,704 FLOPs" in out


def test_hf_unknown_type_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    code, _, err = run(capsys, "count", "hf:gpt-7")
    assert code == 2 and "fxflops: error:" in err and "hint:" in err


def test_config_only_for_hf(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "count", "torchvision:resnet18", "--config", "x=1")
    assert code == 2 and "--config applies to hf:MODEL_TYPE" in err


def test_convention_full_and_causal_exact(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    model_file = tmp_path / "attn.py"
    model_file.write_text(
        "import torch\n"
        "import torch.nn.functional as F\n"
        "class Attn(torch.nn.Module):\n"
        "    def forward(self, q, k, v):\n"
        "        return F.scaled_dot_product_attention(q, k, v, is_causal=True)\n"
        "def make():\n"
        "    x = torch.empty(1, 2, 16, 8, device='meta')\n"
        "    return Attn(), (x, x, x)\n"
    )
    code, out, _ = run(capsys, "count", f"{model_file}:make", "--format", "json")
    # dense: 2 * 1*2 * 16*16 * (8 + 8)
    assert code == 0 and json.loads(out)["total"] == 16_384
    code, out, _ = run(capsys, "count", f"{model_file}:make", "--causal", "exact", "--format", "json")
    # exact: 2 * 1*2 * 136 * (8 + 8), 136 = 16*17/2 kept scores per head
    assert json.loads(out)["total"] == 8_704 and json.loads(out)["causal"] == "exact"
    code, out, _ = run(capsys, "count", f"{model_file}:make", "--convention", "full", "--causal", "exact",
                       "--format", "json")
    assert code == 0 and json.loads(out)["convention"] == "full" and json.loads(out)["total"] > 8_704
    code, _, err = run(capsys, "count", f"{model_file}:make", "--convention", "fast")
    assert code == 2 and "unknown convention 'fast'" in err


def test_backward_and_mfu(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "count", "torchvision:resnet18", "--backward", "--mfu", "1200",
                       "--accelerator", "a100", "--format", "json")
    data = json.loads(out)
    # forward 3,628,146,688; backward without an input gradient 7,020,265,472 (test_backward.py)
    assert (data["forward"], data["total"]) == (3_628_146_688, 10_648_412_160)
    # 10,648,412,160 FLOPs per image * 1,200 images/s / 312e12
    assert data["mfu"]["value"] == pytest.approx(10_648_412_160 * 1200 / 312e12)
    code, _, err = run(capsys, "count", "torchvision:resnet18", "--mfu", "1200")
    assert code == 2 and "--accelerator" in err


def test_trace_export(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "count", "torchvision:resnet18", "--trace", "export", "--format", "json")
    assert code == 0
    data = json.loads(out)
    # the same 3,628,146,688 through torch.export
    assert data["total"] == 3_628_146_688 and data["trace"] == "export"


def test_zoo_timm_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("timm")
    code, out, _ = run(capsys, "zoo", "timm", "convnext_atto", "--format", "csv", "--no-progress")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "model,input,params,gflops,flops,uncounted,trace"
    # FlopCounterMode's count of convnext_atto (tests/data/zoo_reference.json)
    assert lines[1].startswith("convnext_atto,1x3x224x224 float32,3695520,1.09,1094664960,0,")


def test_zoo_diffusers_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("diffusers")
    code, out, err = run(capsys, "zoo", "diffusers", "DiTTransformer2D*", "--format", "csv", "--no-progress")
    assert code == 0, err
    # DiT-XL/2 widths (16 heads x 72 = D 1152), depth cut to 2, a 1x4x16x16 latent: T = (16/2)^2 = 64
    # patch conv 2*64*1152*(4*2*2) = 2,359,296; per block: timestep MLP 2*256*D + 2*D*D = 3,244,032,
    # adaLN 2*D*6D = 15,925,248, q/k/v/out 4*2*64*D*D = 679,477,248, attention 2*2*16*64*64*72 =
    # 18,874,368, MLP 2*2*64*D*4D = 1,358,954,496 -> 2,076,475,392 x 2 blocks; the final timestep MLP
    # 3,244,032, proj_out_1 2*D*2D = 5,308,416, proj_out_2 2*64*D*(2*2*4) = 2,359,296
    # 2,359,296 + 4,152,950,784 + 3,244,032 + 5,308,416 + 2,359,296 = 4,166,221,824
    assert ",4166221824,0," in out.strip().splitlines()[1]
    code, _, err = run(capsys, "count", "diffusers:NoSuchModel")
    assert code == 2 and "NoSuchModel" in err


def test_zoo_torchvision_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "zoo", "torchvision", "resnet18", "--format", "json", "--no-progress")
    assert code == 0
    assert '"flops": 3628146688' in out


def test_generate_counts_prefill_and_decode_steps(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    code, out, _ = run(capsys, "count", "hf:gpt2", "--generate", "8+4", "--format", "json")
    assert code == 0
    data = json.loads(out)
    # see tests/test_generation.py: prefill 1,438,508,544; steps 247,064,064 + 36,864 * (p + 1), p = 8, 9, 10
    assert data["prefill"] == 1_438_508_544
    assert data["steps"] == [247_395_840, 247_432_704, 247_469_568]
    assert data["total"] == 2_180_806_656


def test_malformed_generate_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "count", "hf:gpt2", "--generate", "8x4")
    assert code == 2 and "malformed --generate" in err


def test_unknown_config_key_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    # transformers keeps unknown keys as inert attributes: n_layerz=2 would count the 12-layer default
    code, _, err = run(capsys, "count", "hf:gpt2", "--config", "n_layerz=2")
    assert code == 2 and "n_layerz" in err and "did you mean n_layer" in err

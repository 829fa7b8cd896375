"""``fxflops diff``: two counts side by side, with what changed per module and per op."""

from __future__ import annotations

import pytest

from fxflops.cli import main

pytest.importorskip("transformers")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_diff_two_configs_of_one_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "diff", "hf:gpt2", "hf:gpt2", "--config", "n_layer=2", "--config-b", "n_layer=4",
                          "--input", "1x64:long")
    assert (code, err) == (0, "")
    # One GPT-2 layer at T = 64: weights 2*64*(768*2304 + 768*768 + 2*768*3072) = 905,969,664 and
    # attention 4*64^2*768 = 12,582,912: 918,552,576; two more layers: +1,837,105,152.
    # Parameters per layer: 7,077,888 matrix weights + 9,984 biases and norms = 7,087,872, x2 = 14,175,744
    assert out[2] == "difference: +1,837,105,152 FLOPs (+27.1%), params +14,175,744; FLOPs, convention 'default'"
    rows = {line.split()[0]: line.split()[1:] for line in out[4:] if line and not line.startswith("-")}
    assert rows["transformer.h"] == ["1,837,105,152", "3,674,210,304", "+1,837,105,152", "+100.0%"]
    # the QKV, output and MLP products (Conv1D -> addmm): 4 layers * 905,969,664 - 2 * 905,969,664
    assert rows["torch.addmm"] == ["1,811,939,328", "3,623,878,656", "+1,811,939,328", "+100.0%"]
    assert "lm_head" not in rows  # unchanged modules are left out


def test_diff_markdown_for_pull_requests(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "diff", "hf:gpt2", "hf:gpt2", "--config", "n_layer=1", "--input-a", "1x32:long",
                        "--input-b", "1x64:long", "--format", "markdown")
    assert code == 0
    assert out[0].startswith("- A: hf:gpt2 --config n_layer=1 --input 1x32:long (GPT2LMHeadModel)")
    assert any(line.startswith("| (total) ") for line in out)
    assert any(line.startswith("| `transformer.h`") for line in out)


def test_diff_refuses_mistakes_before_building(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "diff", "hf:gpt2", "resnet50")
    assert code == 2
    assert err.splitlines()[0] == "fxflops: error: SPEC 'resnet50' does not say where the model comes from"


def test_diff_resnet18_and_resnet34(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torchvision")
    code, out, _ = _run(capsys, "diff", "torchvision:resnet18", "torchvision:resnet34")
    assert code == 0
    assert out[:2] == ["A: torchvision:resnet18 (ResNet): 3.63 GFLOPs (3,628,146,688 FLOPs)",
                       "B: torchvision:resnet34 (ResNet): 7.33 GFLOPs (7,327,522,816 FLOPs)"]
    rows = {line.split()[0]: line.split()[1:] for line in out[4:] if line and not line.startswith("-")}
    # layer1 gains a third basic block at 56x56x64: two 3x3 convs, 2 * 2 * 56*56 * 64*64*9 = 462,422,016
    assert rows["layer1.2"] == ["-", "462,422,016", "+462,422,016", "new"]
    # 3,699,376,128 = 462,422,016 * (1 + 2 + 4 + 1): resnet34 adds 1, 2, 4 and 1 blocks of that cost per stage
    assert rows["(total)"] == ["3,628,146,688", "7,327,522,816", "+3,699,376,128", "+102.0%"]
    assert 462_422_016 * 8 == 3_699_376_128

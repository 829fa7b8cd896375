"""The ``fxflops`` command: ``count``, ``rules``, ``--version``/``--help``, errors and exit codes.

Commands run in-process through ``fxflops.cli.main(argv)`` (fast, output via capsys); one test
runs the installed console script and one ``python -m fxflops``, as users do.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fxflops.cli import main
from fxflops.specs import SpecError, parse_input, parse_spec

# A small model file for the callable SPEC forms. Tiny: Embedding(10, 8) -> Linear(8, 4).
MODELS = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 8)
            self.fc = nn.Linear(8, 4)

        def forward(self, tokens):
            return self.fc(self.emb(tokens))


    class Spectral(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 16)

        def forward(self, x):
            return self.fc(torch.special.bessel_j0(x))  # torch.special.bessel_j0 has no FLOP rule


    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 16)

        def forward(self, x):
            if x.sum() > 0:  # branches on tensor values: no graph can capture it
                return self.fc(x)
            return x


    def tiny():
        return Tiny()


    def tiny_with_inputs():
        return Tiny(), torch.zeros(2, 5, dtype=torch.long)


    def spectral():
        return Spectral(), torch.zeros(1, 16)


    def branchy():
        return Branchy(), torch.zeros(1, 16)


    def broken():
        raise ValueError("no such checkpoint")
    """
)

# Tiny on 2x5 tokens: Linear(8, 4) on 2*5 positions: 2 * 10 * 8 * 4 = 640 FLOPs; Embedding 0.
TINY_FLOPS = 640


@pytest.fixture
def models_py(tmp_path: Path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *fragments: str) -> None:
    """The error format: exactly ``fxflops: error: ...`` and ``hint: ...``, no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("fxflops: error: "), err
    assert lines[1].startswith("hint: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# -- count: zoo models ----------------------------------------------------------------------------


def test_count_open_clip_vit_b_16_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "count", "open_clip:ViT-B-16", "--format", "json")
    assert code == 0, err
    # image 35,126,906,880 + text 5,959,540,736 = 41,086,447,616 (OpenCLIP's table: 41.09)
    assert '"total": 41086447616' in out
    data = json.loads(out)
    assert data["format"] == 1
    assert data["spec"] == "open_clip:ViT-B-16"
    assert data["total"] == 41086447616
    assert data["macs"] == 41086447616 // 2
    assert data["modules"]["visual"] == 35126906880
    assert data["modules"]["text"] == 5959540736
    assert data["unit"] == "FLOPs" and data["convention"] == "default"
    assert data["params"] == 149620737
    assert data["uncounted"] == []
    assert set(data["versions"]) >= {"fxflops", "torch"}
    assert data["inputs"] == [
        {"name": None, "shape": [1, 3, 224, 224], "dtype": "float32"},
        {"name": None, "shape": [1, 77], "dtype": "int64"},
    ]
    assert data["ops"] and data["nodes"]


def test_count_torchvision_resnet18_exact(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "count", "torchvision:resnet18", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    # MACs at 1x3x224x224: conv1 112*112*64*(3*7*7) = 118,013,952; layer1 4 * 56*56*64*(64*9)
    # = 462,422,016; layer2..4 each 411,041,792 (first conv 57,802,752 + three convs 346,816,512
    # + downsample 6,422,528); fc 512*1000 = 512,000. Sum 1,814,073,344 MACs * 2 = 3,628,146,688
    # FLOPs, torch's FlopCounterMode anchor 10,884,440,064 (forward + backward) / 3.
    assert data["total"] == 3628146688
    assert data["inputs"] == [{"name": None, "shape": [1, 3, 224, 224], "dtype": "float32"}]


def test_count_torchvision_detector_on_its_seeded_image(capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torchvision = pytest.importorskip("torchvision")
    code, out, err = run(capsys, "count", "torchvision:ssdlite320_mobilenet_v3_large", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    # A detector's shapes follow its image: built with seed 0 and counted on one seeded 480x640 image
    assert data["inputs"] == [{"name": None, "value": "[3x480x640 float32]"}]
    assert data["routing"] == "data"
    torch.manual_seed(0)
    model = torchvision.models.get_model("ssdlite320_mobilenet_v3_large", weights=None, weights_backbone=None).eval()
    image = torch.rand(3, 480, 640, generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        model([image])
    assert data["total"] == counter.get_total_flops()


def test_count_default_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "count", "torchvision:resnet18")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "torchvision:resnet18 (ResNet)"
    assert lines[1] == "total:   3.63 GFLOPs  (3,628,146,688 FLOPs, 1,814,073,344 MACs)"
    assert lines[4].startswith("unit:    FLOPs (1 multiply-accumulate = 2 FLOPs), convention 'default'")
    # The module tree (depth 2, graph order, indented), then the top ops.
    tree = [line.split()[0] for line in lines if line.startswith(("(total)", "  "))]
    assert tree[:4] == ["(total)", "conv1", "bn1", "relu"]
    assert "top ops" in lines
    # conv = total - fc: 3,628,146,688 - 2*512*1000 = 3,627,122,688
    assert any(line.startswith("torch.nn.Conv2d") and "3,627,122,688" in line for line in lines)
    assert err == ""


def test_count_depth_and_by(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "count", "torchvision:resnet18", "--depth", "1", "--by", "category")
    assert code == 0
    assert "layer1.0" not in out
    assert "conv " in out and "matmul " in out  # category rows replace the module tree


def test_count_input_long_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "count", "open_clip:ViT-B-32", "--method", "encode_text",
                         "--input", "1x77:long", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["method"] == "encode_text"
    assert data["inputs"] == [{"name": None, "shape": [1, 77], "dtype": "int64"}]
    # The CLIP text tower on 77 tokens (width 512, 12 layers, MLP 2048): QKV 1,453,326,336
    # + out-proj 484,442,112 + MLP 3,875,536,896 + attention 2*12*77^2*512*2 = 145,711,104
    # + EOT projection 2*512*512 = 524,288 -> 5,959,540,736
    assert data["total"] == 5959540736


def test_count_csv_by_op(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "count", "torchvision:resnet18", "--format", "csv", "--by", "op")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["op", "flops"]
    # conv 3,627,122,688 + fc 2*512*1000 = 1,024,000
    assert rows[1] == ["torch.nn.Conv2d", "3627122688"]
    assert rows[2] == ["torch.nn.Linear", "1024000"]


def test_count_markdown_modules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "count", "torchvision:resnet18", "--format", "markdown", "--depth", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("| module")
    assert lines[2].startswith("| (total)") and "3,628,146,688" in lines[2]
    assert any(line.startswith("| `fc`") and "1,024,000" in line for line in lines)


# -- count: callables -----------------------------------------------------------------------------


def test_count_file_callable_with_inputs(capsys: pytest.CaptureFixture[str], models_py: Path) -> None:
    code, out, err = run(capsys, "count", f"{models_py}:tiny_with_inputs", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["total"] == TINY_FLOPS
    assert data["inputs"] == [{"name": None, "shape": [2, 5], "dtype": "int64"}]


def test_count_file_callable_with_input_option(capsys: pytest.CaptureFixture[str], models_py: Path) -> None:
    # Keyword input with a dtype: tokens=2x5:long.
    code, out, err = run(capsys, "count", f"{models_py}:tiny", "--input", "tokens=2x5:long",
                         "--format", "csv")
    assert code == 0, err
    assert out.splitlines() == ["module,type,flops", f",Tiny,{TINY_FLOPS}", "emb,Embedding,0",
                                f"fc,Linear,{TINY_FLOPS}"]


def test_count_module_callable(capsys: pytest.CaptureFixture[str], models_py: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    package = models_py.parent / "fxflops_cli_testpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "zoo.py").write_text(MODELS)
    # The current directory is searched, as for `python -m`; keep sys.path and sys.modules clean.
    monkeypatch.chdir(models_py.parent)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    monkeypatch.delitem(sys.modules, "fxflops_cli_testpkg", raising=False)
    monkeypatch.delitem(sys.modules, "fxflops_cli_testpkg.zoo", raising=False)
    code, out, err = run(capsys, "count", "fxflops_cli_testpkg.zoo:tiny", "--input", "2x5:long",
                         "--format", "json")
    assert code == 0, err
    assert json.loads(out)["total"] == TINY_FLOPS


def test_strict_fails_on_uncounted_node(capsys: pytest.CaptureFixture[str], models_py: Path) -> None:
    code, out, err = run(capsys, "count", f"{models_py}:spectral", "--strict")
    assert code == 1
    # Linear(16, 16) on 1x16: 2 * 16 * 16 = 512; the Bessel function is not counted.
    assert "512 FLOPs" in out
    assert err.startswith("fxflops: error: --strict: 1 node had no FLOP rule:")
    assert "torch.special.bessel_j0" in err and "models.py:" in err  # which node, and where
    assert err.strip().splitlines()[-1].startswith("hint: ")


def test_uncounted_without_strict_warns(capsys: pytest.CaptureFixture[str], models_py: Path) -> None:
    code, out, err = run(capsys, "count", f"{models_py}:spectral", "--format", "json")
    assert code == 0
    assert json.loads(out)["uncounted"] == ["special_bessel_j0"]
    assert err.startswith("warning: 1 node had no FLOP rule") and "torch.special.bessel_j0" in err


# -- errors: exit 2, one line and a hint ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("ViT-B-16", "did you mean open_clip:ViT-B-16?"),
        ("open_clip:", "names no model"),
        ("my model:build", "is not one of the forms"),
        ("model.py", "names a file but no callable"),
        ("model.py:not-a-name", "is not a Python name"),
    ],
)
def test_bad_spec(capsys: pytest.CaptureFixture[str], spec: str, fragment: str) -> None:
    code, out, err = run(capsys, "count", spec)
    assert code == 2
    assert out == ""
    assert_one_line_error(err, fragment)


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("open_clip:ViT-B-61", "did you mean open_clip:ViT-B-16"),
        ("open_clip:vit-b-16", "did you mean open_clip:ViT-B-16?"),
        ("torchvision:resnet81", "did you mean torchvision:resnet18"),
        ("timm:convnext_tinyy", "did you mean timm:convnext_tiny"),
    ],
)
def test_unknown_model_name(capsys: pytest.CaptureFixture[str], spec: str, hint: str) -> None:
    code, _, err = run(capsys, "count", spec)
    assert code == 2
    assert_one_line_error(err, "has no model named", hint)


@pytest.mark.parametrize("value", ["1x3x224x", "1xx3", "axb", "1x3:flaot", "1x3:", "", "=1x3"])
def test_malformed_input(capsys: pytest.CaptureFixture[str], value: str) -> None:
    # The SPEC is never built: --input is checked first.
    code, _, err = run(capsys, "count", "open_clip:ViT-B-16", "--input", value)
    assert code == 2
    assert_one_line_error(err, "malformed --input")


def test_input_of_wrong_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "count", "torchvision:resnet18", "--input", "1x3x224")
    assert code == 2
    assert_one_line_error(err, "shape propagation on meta tensors failed", "module 'conv1' (Conv2d)")


def test_untraceable_model(capsys: pytest.CaptureFixture[str], models_py: Path) -> None:
    # The builder's input has data (zeros): the model is counted on it, and takes the branch
    # that does no work.
    code, out, _ = run(capsys, "count", f"{models_py}:branchy", "--format", "json")
    assert code == 0 and json.loads(out)["total"] == 0
    # Meta inputs carry no data: the branch cannot be decided.
    code, out, err = run(capsys, "count", f"{models_py}:branchy", "--input", "1x16")
    assert code == 2
    assert out == ""  # torch's own chatter (graph dumps, log lines) is held back
    assert_one_line_error(err, "Branchy", "data-dependent")


def test_debug_shows_traceback(capsys: pytest.CaptureFixture[str], models_py: Path) -> None:
    code, _, err = run(capsys, "count", f"{models_py}:broken", "--debug")
    assert code == 2
    assert "Traceback" in err and "no such checkpoint" in err
    assert err.strip().splitlines()[-2].startswith("fxflops: error: calling ")


@pytest.mark.parametrize(
    ("suffix", "fragment"),
    [
        (":tiny", "gives no inputs for forward()"),
        (":nothing", "has no attribute 'nothing'"),
        (":broken", "raised ValueError: no such checkpoint"),
        (":MODELS_TEXT", "is a str, not a callable"),
    ],
)
def test_callable_problems(capsys: pytest.CaptureFixture[str], models_py: Path, suffix: str,
                           fragment: str) -> None:
    models_py.write_text(MODELS + "\nMODELS_TEXT = 'not a model'\n")
    code, _, err = run(capsys, "count", f"{models_py}{suffix}")
    assert code == 2
    assert_one_line_error(err, fragment)


def test_missing_file_and_module(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "count", f"{tmp_path}/absent.py:build")
    assert code == 2
    assert_one_line_error(err, "no such file")
    code, _, err = run(capsys, "count", "fxflops_no_such_package.models:build")
    assert code == 2
    assert_one_line_error(err, "no module named 'fxflops_no_such_package'")


def test_unknown_method(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "count", "torchvision:resnet18", "--method", "encode_image")
    assert code == 2
    assert_one_line_error(err, "has no method 'encode_image'")


@pytest.mark.parametrize(
    "argv",
    [["count"], ["count", "torchvision:resnet18", "--by", "layer"], ["count", "x:y", "--depth", "-1"],
     ["frobnicate"], ["count", "x:y", "--format", "yaml"]],
)
def test_bad_usage(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fxflops: error: ") and "--help" in lines[0]


# -- parsing --------------------------------------------------------------------------------------


def test_parse_input() -> None:
    assert parse_input("1x3x224x224").shape == (1, 3, 224, 224)
    assert parse_input("1x3x224x224").dtype == "float32"
    assert parse_input("1x77:long").dtype == "int64"
    assert parse_input("2x4:bf16").dtype == "bfloat16"
    assert parse_input("8:int").dtype == "int32"
    assert parse_input("text=1x77:int64").name == "text"
    with pytest.raises(SpecError, match="unknown dtype 'quad'"):
        parse_input("1x2:quad")


def test_parse_spec() -> None:
    assert parse_spec("open_clip:ViT-B-16").location == "ViT-B-16"
    assert parse_spec("openclip:ViT-B-16").source == "open_clip"
    tagged = "vit_base_patch16_224.augreg_in21k"
    assert parse_spec(f"timm:{tagged}").location == tagged
    module = parse_spec("pkg.models:build_model")
    assert (module.source, module.location, module.attribute) == ("module", "pkg.models", "build_model")
    windows = parse_spec(r"C:\models\tiny.py:build")
    assert (windows.source, windows.location, windows.attribute) == ("file", r"C:\models\tiny.py", "build")


# -- rules, --version, --help ---------------------------------------------------------------------


def test_rules_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rules")
    assert code == 0
    header = out.splitlines()[0].split()
    assert header == ["target", "rule", "category", "where"]
    linear = next(line for line in out.splitlines() if line.startswith("torch.nn.Linear "))
    assert "fxflops.rules.linear." in linear and "matmul" in linear and "linear.py:" in linear


def test_rules_json_and_filter(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rules", "attention", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["format"] == 1
    targets = {rule["target"] for rule in data["rules"]}
    assert "torch.nn.MultiheadAttention" in targets
    assert "torch.nn.functional.scaled_dot_product_attention" in targets
    assert all(set(rule) == {"target", "rule", "category", "where"} for rule in data["rules"])
    code, _, err = run(capsys, "rules", "no-such-rule-anywhere")
    assert code == 2
    assert_one_line_error(err, "no rule matches")


def test_rules_csv(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rules", "conv", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert any(row["target"] == "torch.nn.Conv2d" and row["category"] == "conv" for row in rows)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import fxflops

    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith(f"fxflops {fxflops.__version__} (torch ")


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "examples:" in out and "fxflops count open_clip:ViT-B-16" in out and "exit codes:" in out
    code, out, _ = run(capsys, "count", "--help")
    assert code == 0
    assert "--input" in out and "SHAPE[:DTYPE]" in out


# -- as users run it ------------------------------------------------------------------------------


def test_console_script(models_py: Path) -> None:
    script = Path(sys.executable).with_name("fxflops")
    if not script.exists():
        pytest.skip("the fxflops console script is not installed next to this interpreter")
    result = subprocess.run([str(script), "count", f"{models_py}:tiny_with_inputs", "--format", "json"],
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total"] == TINY_FLOPS


def test_python_dash_m(models_py: Path) -> None:
    command = [sys.executable, "-m", "fxflops", "count", f"{models_py}:tiny", "--input", "2x5:lng"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "unknown dtype 'lng'")

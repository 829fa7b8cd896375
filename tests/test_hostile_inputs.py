"""Hostile and odd inputs: each mistake gets one clear error, and no mistake gives a silent wrong
number. Each row names the input and the exact message (or the exact count) it must give; rows for
mistakes handled well since earlier releases stay here so that they stay handled.

API rows call the library; CLI rows run ``fxflops.cli.main(argv)`` in-process and check the exit
code and the first stderr line; plugin rows run pytest on a small suite with ``pytester``. The fuzz
tests at the end feed random ``--input`` strings, budget strings and SPECs to the parsers and the
command: exit 0 or exit 2 with one error line, never a traceback.
"""

from __future__ import annotations

import collections
import dataclasses
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import fxflops
from fxflops import plugins
from fxflops.cli import main
from fxflops.errors import InputError
from fxflops.report import FlopReport
from fxflops.units import parse_flops
from fxflops.utilization import mfu

# Linear(8, 4) on one row: 2 FLOPs/MAC * 8 * 4 = 64.
LINEAR_1x8 = 64


def _linear_report() -> FlopReport:
    return fxflops.count(nn.Linear(8, 4), torch.empty(1, 8, device="meta"))


def _symbolic_report() -> FlopReport:
    # Linear(8, 4) on B rows: 64 * B.
    return fxflops.count(nn.Linear(8, 4), torch.empty(2, 8, device="meta"), dynamic={0: {0: "B"}})


def _dtype_input(dtype: torch.dtype) -> Callable[[], Any]:
    return lambda: fxflops.count(nn.Linear(8, 4), torch.empty(1, 8, dtype=dtype))


class _MatMul(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b


def _rule_with_category(category: str) -> Callable[[], Any]:
    def make() -> Any:
        class Gate(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x

        return fxflops.rule(Gate, category=category)(lambda ctx: 0)

    return make


# (id, call, exception type, exact message)
API_ERRORS: list[tuple[str, Callable[[], Any], type[BaseException], str]] = [
    ("convention-unknown-category", lambda: fxflops.Convention("typo", {"matmull"}), ValueError,
     # Other tests may declare categories of their own; the built-in ones come first.
     "Convention 'typo' names the unknown category 'matmull' (did you mean 'matmul'?); known: matmul, conv, "
     "attention, recurrent, bias, norm, activation, softmax, elementwise, reduction, pooling, interpolation, "
     "zero, custom"),
    ("linear-long-input", _dtype_input(torch.long), InputError,
     "linear got input int64, weight float32, bias float32: a real forward raises, as its operands must "
     "share one dtype"),
    ("linear-half-input", _dtype_input(torch.half), InputError,
     "linear got input float16, weight float32, bias float32: a real forward raises, as its operands must "
     "share one dtype"),
    ("linear-complex-input", _dtype_input(torch.complex64), InputError,
     "linear got input complex64, weight float32, bias float32: a real forward raises, as its operands must "
     "share one dtype"),
    ("matmul-mixed-dtypes", lambda: fxflops.count(
        _MatMul(), (torch.empty(2, 3), torch.empty(3, 4, dtype=torch.half))), InputError,
     "matmul got input float32, other float16: a real forward raises, as its operands must share one dtype"),
    ("count-a-function", lambda: fxflops.count(lambda x: x, torch.empty(2)), TypeError,
     "fxflops.count counts an nn.Module, got a function; wrap it in a module whose forward calls it, or count "
     "the module it belongs to"),
    ("evaluate-negative", lambda: _symbolic_report().evaluate(B=-1), ValueError,
     "B=-1: sizes are positive integers"),
    ("evaluate-fraction", lambda: _symbolic_report().evaluate(B=2.5), ValueError,
     "B=2.5: sizes are positive integers"),
    ("leaf-modules-unknown-name", lambda: fxflops.count(nn.Linear(8, 4), torch.empty(1, 8), leaf_modules=["nope"]),
     ValueError, "leaf_modules names 'nope', which is not a submodule of Linear"),
    ("leaf-modules-not-a-module", lambda: fxflops.count(nn.Linear(8, 4), torch.empty(1, 8), leaf_modules=[int]),
     TypeError, "leaf_modules holds <class 'int'>: give nn.Module subclasses or qualified submodule names"),
    ("dynamic-dim-out-of-range", lambda: fxflops.count(nn.Linear(8, 4), torch.empty(2, 8), dynamic={0: {5: "L"}}),
     ValueError, "dynamic[0] names dim 5, but that input has 2 dims (2x8); use 0..1"),
    ("dynamic-not-a-mapping", lambda: fxflops.count(nn.Linear(8, 4), torch.empty(2, 8), dynamic={0: "L"}),
     ValueError, "dynamic[0] must map dims to symbol names, e.g. {1: 'L'}; got 'L'"),
    ("from-json-missing-field", lambda: FlopReport.from_json('{"format": 1}'), ValueError,
     "not a FlopReport written by to_json(): missing field 'nodes'"),
    ("from-json-wrong-format", lambda: FlopReport.from_json('{"format": 99}'), ValueError,
     "unsupported FlopReport format 99; expected 1"),
    ("from-json-not-an-object", lambda: FlopReport.from_json("[1, 2]"), ValueError,
     "a FlopReport is a JSON object, got list"),
    ("mfu-negative", lambda: mfu(_linear_report(), -5, "a100"), ValueError,
     "throughput must be a positive, finite number, got -5"),
    ("mfu-nan", lambda: mfu(_linear_report(), float("nan"), "a100"), ValueError,
     "throughput must be a positive, finite number, got nan"),
    ("mfu-inf", lambda: mfu(_linear_report(), float("inf"), "a100"), ValueError,
     "throughput must be a positive, finite number, got inf"),
    # 64 FLOPs * 1e20/s / 312e12 FLOP/s = 2.051e7 = 2.051e9 %
    ("mfu-above-peak", lambda: mfu(_linear_report(), 1e20, "a100"), ValueError,
     "MFU would be 2.051e+09%, above the accelerator's peak: check that the throughput counts the units one "
     "counted call covers (units_per_call) and the peak"),
    ("mfu-unknown-accelerator", lambda: mfu(_linear_report(), 1, "zz"), ValueError,
     "unknown accelerator 'zz'; known: a100, b200, h100-pcie, h100-sxm, h200, l4, mi250x, mi300x, tpu-v4, "
     "tpu-v5e, tpu-v5p"),
    ("mfu-zero-peak", lambda: mfu(_linear_report(), 1, 0.0), ValueError,
     "peak FLOP/s must be a positive, finite number, got 0.0"),
]


def _rule_returning(value: Any) -> Callable[[], Any]:
    def half_gate(ctx: Any) -> Any:
        return value

    return lambda: fxflops.count(nn.Linear(2, 2), torch.empty(1, 2), rules={nn.Linear: half_gate})


_RULE = f"{__name__}._rule_returning.<locals>.half_gate"  # the rule's importable name
API_ERRORS += [
    # "a float", "a bool", "a str": the article agrees with the type name
    ("rule-returns-float", _rule_returning(1.5), fxflops.RuleError,
     f"the rule {_RULE} returned 1.5 (a float) as FLOPs"),
    ("rule-returns-bool", _rule_returning(True), fxflops.RuleError,
     f"the rule {_RULE} returned True (a bool) as FLOPs"),
    ("rule-returns-str", _rule_returning("x"), fxflops.RuleError, f"the rule {_RULE} returned 'x' (a str) as FLOPs"),
    ("rule-returns-negative", _rule_returning(-5), fxflops.RuleError, f"the rule {_RULE} returned -5 FLOPs"),
    # a Cost's fields are checked as an int is
    ("rule-returns-negative-cost", _rule_returning(fxflops.Cost(matmul=-4)), fxflops.RuleError,
     f"the rule {_RULE} returned -4 matmul FLOPs (Cost.matmul)"),
    ("rule-returns-float-macs", _rule_returning(fxflops.Cost(matmul=4, macs=0.5)), fxflops.RuleError,
     f"the rule {_RULE} returned 0.5 (a float) as MACs (Cost.macs)"),
]


@pytest.mark.parametrize("trace", ["symbolic", "run", "export"])
def test_a_rule_may_return_its_cost_by_kind(trace: str) -> None:
    def fused(ctx: Any) -> Any:
        return fxflops.Cost(matmul=64, extra=10)

    report = fxflops.count(nn.Sequential(nn.Linear(2, 2)), torch.empty(1, 2), rules={nn.Linear: fused,
                           torch.ops.aten.linear.default: fused, torch.ops.aten.addmm.default: fused}, trace=trace)
    # FLOPs 64 + 10 = 74; MACs half the matmul part alone: 64 / 2 = 32
    assert (report.total, report.macs) == (74, 32)


@pytest.mark.parametrize(("call", "kind", "message"), [row[1:] for row in API_ERRORS],
                         ids=[row[0] for row in API_ERRORS])
def test_api_mistake_gives_its_message(call: Callable[[], Any], kind: type[BaseException], message: str) -> None:
    with pytest.raises(kind) as excinfo:
        call()
    first = str(excinfo.value).splitlines()[0]
    if message.endswith("zero, custom"):  # then any categories other tests declared, then the advice
        assert first.startswith(message) and first.endswith(
            "; declare one of your own with fxflops.convention.add_category(name, meaning)")
    else:
        assert first == message


def test_rule_with_unknown_category_is_refused() -> None:
    with pytest.raises(ValueError, match=r"names the unknown category 'matmull' \(did you mean 'matmul'\?\); known"):
        _rule_with_category("matmull")()


class _Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)  # _HEAD_LINE


_HEAD_LINE = next(i for i, line in enumerate(Path(__file__).read_text().splitlines(), 1)
                  if line.endswith("# _HEAD_LINE"))


@pytest.mark.parametrize("trace", ["symbolic", "run"])
def test_input_error_names_the_module_and_source_line(trace: str) -> None:
    with pytest.raises(InputError) as excinfo:
        fxflops.count(_Head(), torch.empty(1, 8, dtype=torch.half), trace=trace)
    lines = str(excinfo.value).splitlines()
    assert lines[2] == f"  in module 'fc' (Linear), at {__file__}:{_HEAD_LINE}"
    assert lines[3] == ("  hint: give the op operands of one dtype (e.g. x.to(model.dtype), or build the model in "
                        "the input's dtype), or count under torch.autocast")


def test_mixed_dtypes_count_under_autocast() -> None:
    # Under autocast the cast happens below the call: a bf16 input to a float32 Linear is legal.
    with torch.autocast("cpu"):
        assert fxflops.count(nn.Linear(8, 4), torch.empty(1, 8, dtype=torch.bfloat16)).total == LINEAR_1x8


@dataclasses.dataclass
class _Output:
    logits: torch.Tensor


_Pair = collections.namedtuple("_Pair", "first second")


class _ReturnsDataclass(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> _Output:
        return _Output(self.fc(x))


class _ReturnsNamedtuple(_ReturnsDataclass):
    def forward(self, x: torch.Tensor) -> _Pair:  # type: ignore[override]
        y = self.fc(x)
        return _Pair(y, y)


@pytest.mark.parametrize("model_type", [_ReturnsDataclass, _ReturnsNamedtuple])
@pytest.mark.parametrize("trace", ["auto", "symbolic", "run"])
def test_container_outputs_are_not_uncounted_ops(model_type: type[nn.Module], trace: str) -> None:
    # Building the output container is structural: strict passes and the count is the Linear's.
    report = fxflops.count(model_type(), torch.empty(1, 8), strict=True, trace=trace)
    assert report.total == LINEAR_1x8
    assert report.uncounted == []


def test_failed_export_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    class Branchy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(fxflops.TraceError) as excinfo:
        fxflops.count(Branchy(), torch.empty(2, 8), trace="export")
    assert str(excinfo.value).splitlines()[-1].startswith("hint: the model branches on tensor values")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # no "Unable to find user code" warning, no partial graph dump


# -- CLI ------------------------------------------------------------------------------------------

TINY_PY = textwrap.dedent(
    """
    import pathlib
    import torch
    from torch import nn


    def tiny():
        # Built only when fxflops gets that far: the marker file says it did.
        pathlib.Path(__file__).with_name("built").write_text("yes")
        return nn.Linear(8, 4), torch.zeros(1, 8)


    def exits():
        raise SystemExit(3)
    """
)


@pytest.fixture
def tiny_py(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.py"
    path.write_text(TINY_PY)
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.splitlines()


# (id, argv with {tiny} for the tiny model file, exact first stderr line)
CLI_ERRORS: list[tuple[str, list[str], str]] = [
    ("mfu-negative", ["count", "{tiny}:tiny", "--mfu", "-5", "--accelerator", "a100"],
     "fxflops: error: argument --mfu: invalid value '-5': expected a positive, finite number "
     "(see 'fxflops count --help')"),
    ("mfu-nan", ["count", "{tiny}:tiny", "--mfu", "nan", "--accelerator", "a100"],
     "fxflops: error: argument --mfu: invalid value 'nan': expected a positive, finite number "
     "(see 'fxflops count --help')"),
    ("mfu-inf", ["count", "{tiny}:tiny", "--mfu", "inf", "--accelerator", "a100"],
     "fxflops: error: argument --mfu: invalid value 'inf': expected a positive, finite number "
     "(see 'fxflops count --help')"),
    # 64 FLOPs per call * 1e20 calls/s / 312e12 FLOP/s = 2.051e9 %
    ("mfu-above-peak", ["count", "{tiny}:tiny", "--mfu", "1e20", "--accelerator", "a100"],
     "fxflops: error: --mfu 1e+20: MFU would be 2.051e+09%, above the accelerator's peak: check that the "
     "throughput counts the units one counted call covers (units_per_call) and the peak"),
    ("mfu-without-accelerator", ["count", "{tiny}:tiny", "--mfu", "100"],
     "fxflops: error: --mfu needs the accelerator's peak"),
    ("unknown-accelerator", ["count", "{tiny}:tiny", "--mfu", "100", "--accelerator", "zz"],
     "fxflops: error: unknown accelerator 'zz'"),
    ("negative-accelerator", ["count", "{tiny}:tiny", "--mfu", "100", "--accelerator", "-1"],
     "fxflops: error: --accelerator '-1': peak FLOP/s must be a positive, finite number, got -1.0"),
    ("input-capital-x", ["count", "{tiny}:tiny", "--input", "2X8"],
     "fxflops: error: malformed --input '2X8': separate sizes with a lowercase x"),
    ("input-garbage", ["count", "{tiny}:tiny", "--input", "big"],
     "fxflops: error: malformed --input 'big': expected [NAME=]SHAPE[:DTYPE], SHAPE like 1x3x224x224"),
    ("input-unknown-dtype", ["count", "{tiny}:tiny", "--input", "1x8:float33"],
     "fxflops: error: malformed --input '1x8:float33': unknown dtype 'float33'"),
    ("generate-malformed", ["count", "{tiny}:tiny", "--generate", "12"],
     "fxflops: error: malformed --generate '12'"),
    ("bare-spec", ["count", "resnet5"], "fxflops: error: SPEC 'resnet5' does not say where the model comes from"),
    ("model-exits", ["count", "{tiny}:exits"],
     "fxflops: error: the model's code called exit(3) while fxflops was building or counting it"),
    ("unknown-convention", ["count", "{tiny}:tiny", "--convention", "fulll"],
     "fxflops: error: unknown convention 'fulll'"),
    # transformers keeps unknown keys as inert attributes: without the check this counts 12 layers
    ("unknown-config-key", ["count", "hf:gpt2", "--config", "n_layerz=2"],
     "fxflops: error: --config n_layerz: GPT2Config has no such field"),
    ("roofline-unknown-accelerator", ["count", "{tiny}:tiny", "--roofline", "h900"],
     "fxflops: error: unknown accelerator 'h900' for --roofline"),
    ("dtype-not-floating", ["count", "{tiny}:tiny", "--dtype", "long"],
     "fxflops: error: --dtype 'long' is not a floating-point dtype"),
]


@pytest.mark.parametrize(("argv", "first_line"), [row[1:] for row in CLI_ERRORS], ids=[row[0] for row in CLI_ERRORS])
def test_cli_mistake_exits_2_with_one_error_line(capsys: pytest.CaptureFixture[str], tiny_py: Path,
                                                 argv: list[str], first_line: str) -> None:
    code, out, err = _cli(capsys, *(a.replace("{tiny}", str(tiny_py)) for a in argv))
    assert code == 2
    assert err[0] == first_line
    assert [line for line in err if line.startswith("fxflops: error:")] == [first_line]
    assert len(err) <= 2 and all(line.startswith("hint: ") for line in err[1:])
    assert "Traceback" not in out + "\n".join(err)
    if argv[-1] in ("zz", "-1", "2X8", "big", "1x8:float33", "12", "h900", "long"):
        # Option mistakes are found before the model is built.
        assert not (tiny_py.parent / "built").exists()


def test_cli_bare_spec_fails_without_importing_the_zoos(tmp_path: Path) -> None:
    # The "did you mean torchvision:resnet50?" hint reads the zoos' files instead of importing them.
    script = ("import sys; from fxflops.cli import main; code = main(['count', 'resnet50']); "
              "print(code, sorted(m for m in ('torch', 'torchvision', 'timm', 'open_clip') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.stdout.strip() == "2 []"
    assert done.stderr.splitlines()[1].startswith("hint: did you mean torchvision:resnet50?")


def test_cli_zoo_hint_command_lists_models(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "zoo", "timm", "resnt50*")
    assert code == 2
    assert err[0] == "fxflops: error: no timm model matches resnt50*"
    command = err[1].split("list them with: ", 1)[1]
    assert err[1].startswith("hint: did you mean resnet50 ")
    listed = subprocess.run(command, shell=True, capture_output=True, text=True, check=True).stdout.split()
    assert "resnet50" in listed


def test_cli_says_when_a_rule_pack_fails_to_load(capsys: pytest.CaptureFixture[str], tiny_py: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenPack:
        name, value = "broken", "brokenpack.flops"

        def load(self) -> Any:
            raise ImportError("No module named 'brokenpack'")

    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [BrokenPack()])
    code, out, err = _cli(capsys, "count", f"{tiny_py}:tiny")
    assert code == 0
    assert err == ["fxflops: warning: fxflops rule pack 'broken' (brokenpack.flops) failed to load: "
                   "ImportError: No module named 'brokenpack'"]
    # Linear(8, 4) on 1x8: 64 FLOPs.
    assert "(64 FLOPs, 32 MACs)" in out


@pytest.mark.parametrize(("spec", "inputs_line"), [
    # CLIP's text tower has 77 positions: the default is 77 tokens, not 128.
    ("hf:clip", "inputs:  1x77 int64, pixel_values=1x3x224x224 float32"),
    # Speech models take raw audio: one second at 16 kHz.
    ("hf:wav2vec2", "inputs:  1x16000 float32"),
])
def test_cli_hf_defaults_fit_the_model(capsys: pytest.CaptureFixture[str], spec: str, inputs_line: str) -> None:
    code, out, err = _cli(capsys, "count", spec, "--config", "num_hidden_layers=1" if spec == "hf:wav2vec2"
                          else "projection_dim=512")
    assert (code, err) == (0, [])
    assert inputs_line in out.splitlines()


def test_cli_gpt2_float_input_hint_names_the_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "count", "hf:gpt2", "--config", "n_layer=1", "--input", "1x16")
    assert code == 2
    assert "'indices' to have one of the following scalar types: Long, Int" in err[0]
    assert "token ids as long" in err[1]
    assert "branch" not in err[1]


# -- pytest plugin --------------------------------------------------------------------------------

SUITE = textwrap.dedent(
    """
    import pytest
    import torch


    @pytest.mark.flops(max=100)
    def test_over(flops):
        flops(torch.nn.Linear(8, 8), torch.empty(1, 8, device="meta"))


    def test_fits(flops):
        flops(torch.nn.Linear(8, 4), torch.empty(1, 8, device="meta"))


    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x


    def test_untraceable(flops):
        # On meta, x.sum() has no value to branch on.
        flops(Branchy(), torch.empty(2, 8, device="meta"))
    """
)

PLUGINS_OFF = ("-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:cacheprovider")


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_model=SUITE)
    return pytester


@pytest.mark.parametrize(("json_arg", "message"), [
    ("test_model.py/out.json", "ERROR: --flops-json 'test_model.py/out.json': '{path}/test_model.py' is a file, "
                               "not a folder"),
    (".", "ERROR: --flops-json must name a file, but '.' is a folder"),
])
def test_plugin_refuses_an_unwritable_json_path(suite: pytest.Pytester, json_arg: str, message: str) -> None:
    result = suite.runpytest_subprocess(*PLUGINS_OFF, f"--flops-json={json_arg}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message.format(path=suite.path) in result.errlines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_plugin_update_does_not_record_a_count_over_its_budget(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(*PLUGINS_OFF, "--flops-update", "-k", "not untraceable")
    result.assert_outcomes(passed=1, failed=1)
    # Linear(8, 4): 2 * 8 * 4 = 64 FLOPs recorded; Linear(8, 8): 128 > max=100, not recorded.
    baseline = (suite.path / "__flops__" / "test_model.json").read_text()
    assert '"total": 64' in baseline and "test_over" not in baseline
    result.stdout.fnmatch_lines(["baseline __flops__/test_model.json: not updated for test_over: over budget*"])


def test_plugin_fixture_error_is_short(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(*PLUGINS_OFF, "-k", "untraceable")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "E       fxflops.errors.TraceError: running Branchy.forward on meta tensors failed" in text
    assert "fxflops/recorder.py" not in text and "torch/" not in text  # no frames inside fxflops or torch
    assert len(result.outlines) < 40


# -- fuzz -----------------------------------------------------------------------------------------

_TEXT = st.text(alphabet="0123456789xX:=,._-abcdefghijklmnopqrstuvwyz*/ ", max_size=24)
_ZOOS = ("open_clip", "torchvision", "timm", "hf")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT)
def test_fuzz_budget_strings_parse_or_raise_value_error(text: str) -> None:
    try:
        value = parse_flops(text)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(value, int) and value >= 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=_TEXT, shape=_TEXT)
def test_fuzz_cli_count_never_tracebacks(capsys: pytest.CaptureFixture[str], tiny_py: Path,
                                         spec: str, shape: str) -> None:
    # Random SPECs (zoo prefixes aside: a valid zoo name would build a real model) and --input
    # strings against the tiny model: exit 0, or exit 2 with exactly one error line.
    for argv in (["count", spec], ["count", f"{tiny_py}:tiny", "--input", shape]):
        if argv[1].split(":", 1)[0].strip().lower() in _ZOOS or argv[1].strip().startswith("-") \
                or shape.strip().startswith("-"):
            continue
        code, out, err = _cli(capsys, *argv)
        assert code in (0, 2), (argv, code, err)
        assert "Traceback" not in out + "\n".join(err)
        if code == 2:
            assert len([line for line in err if line.startswith("fxflops: error:")]) == 1, err


def test_plugin_docs_example_reports_every_baseline_increase(pytester: pytest.Pytester) -> None:
    # The plugin guide's example suite, verbatim; then its hidden layer widened to 3200, as the
    # guide tells: each fixture test fails with its own budget or baseline message, none of them
    # hidden behind an assertion of its own.
    guide = (Path(__file__).parent.parent / "docs" / "pytest-plugin.md").read_text()
    suite = guide.split("```python\n", 1)[1].split("```", 1)[0]
    pytester.makepyfile(test_mlp_flops=suite)
    first = pytester.runpytest_subprocess(*PLUGINS_OFF, "--flops-update")
    first.assert_outcomes(passed=3)
    first.stdout.fnmatch_lines(["baseline __flops__/test_mlp_flops.json: 3 added"])
    pytester.makepyfile(test_mlp_flops=suite.replace("hidden: int = 3072", "hidden: int = 3200"))
    second = pytester.runpytest_subprocess(*PLUGINS_OFF)
    # test_mlp_budget: 2 * 197 * 2 * 768 * 3200 = 1,936,588,800 > its baseline 1,859,125,248 (under 2 G);
    # test_mlp_batches: batch 8 is 15,492,710,400 > 15 GFLOPs; test_mlp_assert_flops: under 2 G, passes
    second.assert_outcomes(passed=1, failed=2)
    text = second.stdout.str()
    assert "entry 'test_mlp_budget': 1,859,125,248 -> 1,936,588,800 FLOPs" in text
    # ... and says where the FLOPs came from: each layer 2 * 197 * 768 * 3072 -> 2 * 197 * 768 * 3200
    assert ("modules that changed vs baseline (depth 1):\n"
            "  fc1: 929,562,624 -> 968,294,400 FLOPs (+4.2%)\n"
            "  fc2: 929,562,624 -> 968,294,400 FLOPs (+4.2%)\n") in text
    assert "FLOP budget exceeded: measured 15.49 GFLOPs (15,492,710,400), budget 15 GFLOPs (+3.3%)" in text
    # the failing budget shows where the FLOPs came from too: each layer 2 * 8 * 197 * 768 * (3072 -> 3200)
    assert ("modules that changed vs baseline (depth 1):\n"
            "  fc1: 7,436,500,992 -> 7,746,355,200 FLOPs (+4.2%)\n") in text
    assert "AssertionError" not in text

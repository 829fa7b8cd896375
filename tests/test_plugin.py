"""Black-box tests of the pytest plugin (fxflops.pytest_plugin), in the style of pytest-memray's.

Each test writes a small test suite with ``pytester`` and runs pytest on it. Runs are in-process
(torch is imported once, by the ``_engine_loaded`` fixture), except where a separate process is the
point: the torch-free import check and pytest-xdist. Models are tiny ``nn.Linear`` layers; inputs on
the ``meta`` device give large, exact counts for free (only shapes are used).
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

# The headline of the issue: 2 FLOPs/MAC * 10,030,871 rows * 1024 in * 2 out = 41,086,447,616
# (OpenCLIP ViT-B-16's count); (41,086,447,616 - 40e9) / 40e9 = +2.716%.
VIT_B16_HEADLINE = "FLOP budget exceeded: measured 41.09 GFLOPs (41,086,447,616), budget 40 GFLOPs (+2.7%)"

BUDGET_SUITE = """
    import pytest
    import torch
    from torch import nn


    def vit_b16_sized():
        return nn.Linear(1024, 2), torch.empty(10_030_871, 1024, device="meta")


    @pytest.mark.flops(max="64 FLOPs")
    def test_at_budget(flops):
        flops(nn.Linear(8, 4), torch.randn(1, 8))


    def test_under_fixture_budget(flops):
        flops(nn.Linear(8, 4), torch.randn(1, 8), max=65)


    @pytest.mark.flops(max="40 GFLOPs")
    def test_over_marker_budget(flops):
        flops(*vit_b16_sized())


    def test_over_fixture_budget(flops):
        flops(*vit_b16_sized(), name="vit", max="40G")


    @pytest.mark.flops(max=100)
    def test_sum_over_budget(flops):
        flops(nn.Linear(8, 4), torch.randn(1, 8))
        flops(nn.Linear(8, 4), torch.randn(1, 8))
"""

# FXFLOPS_ROWS rows of nn.Linear(1024, 120): 2 * rows * 1024 * 120 FLOPs.
BASELINE_SUITE = """
    import os

    import pytest
    import torch
    from torch import nn

    ROWS = int(os.environ["FXFLOPS_ROWS"])


    def test_image(flops):
        flops(nn.Linear(1024, 120), torch.empty(ROWS, 1024, device="meta"))


    def test_towers(flops):
        flops(nn.Linear(8, 4), torch.randn(1, 8), name="image")
        flops(nn.Linear(8, 2), torch.randn(1, 8), name="text")
        flops(nn.Linear(8, 1), torch.randn(1, 8))
        flops(nn.Linear(8, 1), torch.randn(1, 8))


    @pytest.mark.flops(baseline=False)
    def test_opted_out(flops):
        flops(nn.Linear(8, 4), torch.randn(1, 8))
"""

# FXFLOPS_ROWS rows of nn.Linear(8, 4): 64 FLOPs per row.
ROWS_SUITE = """
    import os

    import pytest
    import torch
    from torch import nn

    ROWS = int(os.environ.get("FXFLOPS_ROWS", "1"))


    def test_linear(flops):
        flops(nn.Linear(8, 4), torch.empty(ROWS, 8, device="meta"))
"""


@pytest.fixture(scope="module", autouse=True)
def _engine_loaded() -> None:
    """Import torch and run one count before any in-process run.

    pytester removes the modules a run imported when it ends; without this, every run would
    re-import parts of torch and fxflops (slow, and torch does not expect to be imported twice).
    """
    import torch

    import fxflops

    fxflops.count(torch.nn.Linear(8, 4), torch.empty(1, 8, device="meta"))


# Third-party plugins of the environment that the inner runs do not need. Hypothesis' plugin imports
# hypothesis in its terminal summary, and in-process runs forget that import afterwards, so each run
# would pay for it again (seconds, where no .pyc files are written); pytest-benchmark warns in every
# inner run when the outer run uses xdist.
OTHER_PLUGINS_OFF = ("-p", "no:hypothesispytest", "-p", "no:benchmark")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*OTHER_PLUGINS_OFF, *args)


def baseline_doc(pytester: pytest.Pytester, dirname: str = "__flops__") -> dict:
    return json.loads((pytester.path / dirname / "test_model.json").read_text())


def totals(pytester: pytest.Pytester, dirname: str = "__flops__") -> dict[str, int]:
    return {key: entry["total"] for key, entry in baseline_doc(pytester, dirname)["entries"].items()}


def test_help_lists_options_and_marker(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines(
        [
            "*--flops-update, --no-flops-update*",
            "*--flops-strict, --no-flops-strict*",
            "*--flops-report, --no-flops-report*",
            "*--flops-rel=REL*",
            "*--flops-dirname=NAME*",
            "*--flops-json=PATH*",
            "*flops_rel (string)*",
        ]
    )
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.flops(*, max=None, rel=None, baseline=True): FLOP checks*"])


def test_budgets_pass_and_fail_with_message_in_junit_xml(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_budgets=BUDGET_SUITE)
    result = run(pytester, "-ra", "--junit-xml=junit.xml")
    result.assert_outcomes(passed=2, failed=3)
    out = result.stdout.str()
    # test_over_marker_budget: the marker's budget, with the top-modules section; a single
    # nn.Linear is the root module and does all 41.09 GFLOPs.
    assert f"{VIT_B16_HEADLINE}\n\ntop modules (depth 2, FLOPs of each row's own ops):" in out
    assert "  (root)  41.09 GFLOPs  100.0%" in out
    # test_over_fixture_budget: raised by flops(max=...), pointing at its call in line 25 of the file
    assert (
        f"{VIT_B16_HEADLINE}\nmeasurement 'test_over_fixture_budget[vit]', checked by flops(..., max=...)"
        in out
    )
    assert "checked at test_budgets.py:25" in out
    # test_sum_over_budget: 2 measurements of 2*8*4 = 64 sum to 128; (128 - 100) / 100 = +28.0%
    assert "FLOP budget exceeded: measured 128 FLOPs (128), budget 100 FLOPs (+28.0%)" in out
    assert "@pytest.mark.flops(max=...) bounds the sum of the test's 2 measurements:" in out
    result.stdout.fnmatch_lines(
        [
            "FAILED test_budgets.py::test_over_marker_budget - FLOP budget exceeded*",
            "FAILED test_budgets.py::test_over_fixture_budget - FLOP budget exceeded*",
        ]
    )

    cases = {
        case.get("name"): case for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    }
    for name in ("test_over_marker_budget", "test_over_fixture_budget"):
        failure = cases[name].find("failure")
        assert failure is not None
        assert failure.get("message") == VIT_B16_HEADLINE
        assert "top modules (depth 2" in (failure.text or "")
    failure = cases["test_sum_over_budget"].find("failure")
    assert failure is not None
    assert (
        failure.get("message") == "FLOP budget exceeded: measured 128 FLOPs (128), budget 100 FLOPs (+28.0%)"
    )
    assert cases["test_at_budget"].find("failure") is None
    # each measurement is a JUnit property: 2*8*4 = 64
    properties = {(p.get("name"), p.get("value")) for p in cases["test_at_budget"].iter("property")}
    assert properties == {("fxflops:test_at_budget", "64")}


def test_marker_misuse_errors_at_setup_and_unmeasured_test_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marks="""
        import pytest
        import torch
        from torch import nn

        def measure(flops):
            flops(nn.Linear(8, 4), torch.randn(1, 8))
            raise RuntimeError("the body ran")

        @pytest.mark.flops(mx="1G")
        def test_typo(flops):
            measure(flops)

        @pytest.mark.flops("1G")
        def test_positional(flops):
            measure(flops)

        @pytest.mark.flops(max="40 GMACs")
        def test_macs(flops):
            measure(flops)

        @pytest.mark.flops(rel=-0.1)
        def test_negative_rel(flops):
            measure(flops)

        @pytest.mark.flops(max="1G")
        def test_no_measurement(flops):
            pass
        """
    )
    result = run(pytester, "-ra")
    result.assert_outcomes(errors=4, failed=1)
    out = result.stdout.str()
    assert "the body ran" not in out
    assert "flops marker got unexpected keyword(s): mx; expected: baseline, max, rel" in out
    assert (
        "flops marker takes keyword arguments only, got positional '1G'; "
        "expected keywords: baseline, max, rel" in out
    )
    # 40 GMACs * 2 FLOPs/MAC = 80 GFLOPs
    assert (
        'flops marker: "40 GMACs": budgets are in FLOPs (fxflops counts 1 MAC = 2 FLOPs); write "80 GFLOPs"'
        in out
    )
    assert "flops marker: rel must be a number >= 0 (0.05 means 5%), got -0.1" in out
    assert "test is marked @pytest.mark.flops but recorded no measurement; call the flops fixture" in out
    result.stdout.fnmatch_lines(["ERROR test_marks.py::test_typo - Failed: flops marker got unexpected*"])


def test_baseline_flow(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_model=BASELINE_SUITE)
    baseline = pytester.path / "__flops__" / "test_model.json"
    # ViT-B-32's image tower count: 2 * 35,879 * 1024 * 120 = 8,817,623,040
    monkeypatch.setenv("FXFLOPS_ROWS", "35879")

    # 1. No baseline yet: passes, says so, writes nothing.
    result = run(pytester)
    result.assert_outcomes(passed=3)
    # test_image + 4 measurements of test_towers; test_opted_out is not compared
    assert (
        "5 measurement(s) have no baseline yet; re-run pytest with --flops-update to record them"
        in result.stdout.str()
    )
    assert not baseline.parent.exists()

    # 2. --flops-update creates the file: one entry per measurement, exact integers.
    result = run(pytester, "--flops-update")
    result.assert_outcomes(passed=3)
    assert "baseline __flops__/test_model.json: 5 added" in result.stdout.str()
    text = baseline.read_text()
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n"
    assert doc["format"] == 1
    assert doc["recorded_with"]["convention"] == "1 MAC = 2 FLOPs"
    assert doc["entries"] == {
        # 2 * 35,879 * 1024 * 120
        "test_image": {
            "by_module": {"": 8_817_623_040},
            "convention": "default",
            "test": "test_image",
            "total": 8_817_623_040,
        },
        # 2 * 8 * 4 = 64
        "test_towers[image]": {
            "by_module": {"": 64},
            "convention": "default",
            "test": "test_towers",
            "total": 64,
        },
        # 2 * 8 * 2 = 32
        "test_towers[text]": {
            "by_module": {"": 32},
            "convention": "default",
            "test": "test_towers",
            "total": 32,
        },
        # 2 * 8 * 1 = 16, twice, unnamed: the repeat is keyed .1
        "test_towers": {"by_module": {"": 16}, "convention": "default", "test": "test_towers", "total": 16},
        "test_towers.1": {"by_module": {"": 16}, "convention": "default", "test": "test_towers", "total": 16},
    }

    # 3. Unchanged counts pass, and the file is not rewritten.
    result = run(pytester, "--flops-update")
    result.assert_outcomes(passed=3)
    assert "baselines are up to date" in result.stdout.str()
    assert baseline.read_text() == text
    result = run(pytester)
    result.assert_outcomes(passed=3)
    assert "baselines: 5 matched, 0 increased, 0 improved, 0 new" in result.stdout.str()

    # 4. A bigger model fails that test, names the file and entry; the file is left alone.
    # 2 * 37,029 * 1024 * 120 = 9,100,247,040; 37,029 / 35,879 - 1 = +3.205%
    monkeypatch.setenv("FXFLOPS_ROWS", "37029")
    result = run(pytester, "-ra")
    result.assert_outcomes(passed=2, failed=1)
    assert (
        "FLOPs increased vs baseline: 8.82 GFLOPs -> 9.10 GFLOPs (+3.2%, allowed +0.0%)\n"
        "baseline: __flops__/test_model.json, entry 'test_image': 8,817,623,040 -> 9,100,247,040 FLOPs\n"
        "re-run pytest with --flops-update if this is intended\n"
    ) in result.stdout.str()
    result.stdout.fnmatch_lines(["FAILED test_model.py::test_image - FLOPs increased vs baseline*"])
    assert baseline.read_text() == text

    # 5. A smaller model passes and is listed as improved.
    # 2 * 35,000 * 1024 * 120 = 8,601,600,000; 35,000 / 35,879 - 1 = -2.45%
    monkeypatch.setenv("FXFLOPS_ROWS", "35000")
    result = run(pytester)
    result.assert_outcomes(passed=3)
    assert (
        "improved vs baseline (re-run pytest with --flops-update to record the lower counts):\n"
        "  test_model.py::test_image: 8.82 GFLOPs -> 8.60 GFLOPs (-2.4%)"
    ) in result.stdout.str()

    # 6. ... unless --flops-strict.
    result = run(pytester, "--flops-strict")
    result.assert_outcomes(passed=2, failed=1)
    assert (
        "FLOPs decreased vs baseline: 8.82 GFLOPs -> 8.60 GFLOPs "
        "(-2.4%, allowed -0.0% under --flops-strict)\n"
        "baseline: __flops__/test_model.json, entry 'test_image': 8,817,623,040 -> 8,601,600,000 FLOPs\n"
        "re-run pytest with --flops-update if this is intended"
    ) in result.stdout.str()

    # 7. --flops-update records the new count (increases included) and passes.
    monkeypatch.setenv("FXFLOPS_ROWS", "37029")
    result = run(pytester, "--flops-update")
    result.assert_outcomes(passed=3)
    assert "baseline __flops__/test_model.json: 1 changed" in result.stdout.str()
    # 2 * 37,029 * 1024 * 120
    assert totals(pytester)["test_image"] == 9_100_247_040


def test_update_prunes_only_on_full_runs(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(
        test_model="""
        import os
        import pytest
        import torch
        from torch import nn

        def test_a(flops):
            flops(nn.Linear(8, 4), torch.randn(1, 8))
            flops(nn.Linear(8, 4), torch.randn(1, 8))

        def test_b(flops):
            flops(nn.Linear(8, 2), torch.randn(1, 8))

        def test_c(flops):
            if os.environ.get("SKIP_C"):
                pytest.skip("protected: skipped tests keep their entries")
            flops(nn.Linear(8, 1), torch.randn(1, 8))
        """
    )
    result = run(pytester, "--flops-update")
    result.assert_outcomes(passed=3)
    # 2*8*4 = 64 (twice), 2*8*2 = 32, 2*8*1 = 16
    assert totals(pytester) == {"test_a": 64, "test_a.1": 64, "test_b": 32, "test_c": 16}

    # test_b is deleted, test_a measures once, test_c is skipped.
    pytester.makepyfile(
        test_model="""
        import os
        import pytest
        import torch
        from torch import nn

        def test_a(flops):
            flops(nn.Linear(8, 4), torch.randn(1, 8))

        def test_c(flops):
            if os.environ.get("SKIP_C"):
                pytest.skip("protected: skipped tests keep their entries")
            flops(nn.Linear(8, 1), torch.randn(1, 8))
        """
    )
    monkeypatch.setenv("SKIP_C", "1")
    for narrowing, reason in [
        (["-k", "test_a or test_c"], "-k"),
        (["test_model.py::test_a"], "node ids"),
        (["--deselect", "test_model.py::test_c"], "deselection"),
    ]:
        result = run(pytester, "--flops-update", *narrowing)
        assert result.ret == pytest.ExitCode.OK
        assert f"unused baseline entries were kept: the run was narrowed ({reason})" in result.stdout.str()
        assert totals(pytester) == {"test_a": 64, "test_a.1": 64, "test_b": 32, "test_c": 16}

    result = run(pytester, "--flops-update")
    result.assert_outcomes(passed=1, skipped=1)
    assert "baseline __flops__/test_model.json: 2 removed" in result.stdout.str()
    # test_b is gone and test_a completed without its second measurement; skipped test_c keeps 16
    assert totals(pytester) == {"test_a": 64, "test_c": 16}


def test_corrupt_baseline_is_reported_and_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model=ROWS_SUITE)
    baseline = pytester.path / "__flops__" / "test_model.json"
    baseline.parent.mkdir()
    broken = '{"format": 1, "entries": {\n'
    baseline.write_text(broken)

    result = run(pytester, "--flops-strict")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "FLOP baseline file __flops__/test_model.json is not valid JSON (*)",
            "fix or delete it, or re-run pytest with --flops-update to rewrite it "
            "(fxflops never changes it otherwise)",
        ]
    )
    assert baseline.read_text() == broken

    result = run(pytester, "--flops-update")
    result.assert_outcomes(passed=1)
    assert (
        "baseline __flops__/test_model.json: 1 added (the unreadable file was replaced)"
        in result.stdout.str()
    )
    # 1 row * 2*8*4 = 64
    assert totals(pytester) == {"test_linear": 64}


def test_ini_options_and_cli_precedence(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini(
        """
        [pytest]
        flops_rel = 0.5
        flops_report = true
        flops_dirname = flopsdata
        """
    )
    pytester.makepyfile(
        test_model=ROWS_SUITE
        + """

    @pytest.mark.flops(rel=0.1)
    def test_marker_rel(flops):
        flops(nn.Linear(8, 4), torch.empty(ROWS, 8, device="meta"))
    """
    )
    monkeypatch.setenv("FXFLOPS_ROWS", "4")
    result = run(pytester, "--flops-update")
    result.assert_outcomes(passed=2)
    # ini flops_dirname; 4 rows * 64 = 256
    assert totals(pytester, "flopsdata") == {"test_linear": 256, "test_marker_rel": 256}
    assert not (pytester.path / "__flops__").exists()

    # 5 rows * 64 = 320 = 256 * 1.25: within the ini's 50%, beyond the marker's 10%.
    monkeypatch.setenv("FXFLOPS_ROWS", "5")
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "FLOPs increased vs baseline: 256 FLOPs -> 320 FLOPs (+25.0%, allowed +10.0%)" in out
    # ini flops_report prints the table
    assert "fxflops report" in out
    result.stdout.re_match_lines([r"test_model\.py::test_linear\s+320 FLOPs\s+-\s+256 FLOPs\s+\+25\.0%$"])

    # The command line wins over ini, in both directions.
    result = run(pytester, "--flops-rel=0", "--no-flops-report", "-k", "test_linear")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "FLOPs increased vs baseline: 256 FLOPs -> 320 FLOPs (+25.0%, allowed +0.0%)" in out
    assert "fxflops report" not in out
    assert "baseline: flopsdata/test_model.json, entry 'test_linear'" in out

    result = run(pytester, "--flops-dirname=cli_dir", "--flops-update")
    result.assert_outcomes(passed=2)
    # 5 rows * 64 = 320
    assert totals(pytester, "cli_dir") == {"test_linear": 320, "test_marker_rel": 320}


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        ([], "flops_rel = lots", "flops_rel must be a number >= 0 (0.05 means 5%), got 'lots'"),
        (["--flops-rel=-1"], "", "--flops-rel must be a number >= 0 (0.05 means 5%), got '-1'"),
        (
            ["--flops-dirname=../up"],
            "",
            "flops_dirname must be a plain folder name such as '__flops__', got '../up'",
        ),
    ],
)
def test_invalid_option_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], ini: str, message: str
) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_works_without_cacheprovider(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model=ROWS_SUITE)
    result = run(pytester, "-p", "no:cacheprovider", "--flops-update")
    result.assert_outcomes(passed=1)
    result = run(pytester, "-p", "no:cacheprovider", "--flops-report")
    result.assert_outcomes(passed=1)
    # 1 row * 2*8*4 = 64, equal to the committed baseline
    result.stdout.re_match_lines([r"test_model\.py::test_linear\s+64 FLOPs\s+-\s+64 FLOPs\s+\+0\.0%$"])
    assert not (pytester.path / ".pytest_cache").exists()


def test_xdist_controller_merges_and_writes_baselines(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_model="""
        import os
        import pytest
        import torch
        from torch import nn

        ROWS = int(os.environ["FXFLOPS_ROWS"])

        def test_a(flops):
            flops(nn.Linear(8, 4), torch.empty(ROWS, 8, device="meta"))

        def test_b(flops):
            flops(nn.Linear(8, 2), torch.randn(1, 8))

        @pytest.mark.flops(max=10)
        def test_c(flops):
            flops(nn.Linear(8, 1), torch.randn(1, 8))

        def test_d(flops):
            flops(nn.Linear(8, 3), torch.randn(1, 8), name="three")
        """
    )
    folder = pytester.path / "__flops__"
    folder.mkdir()
    # A committed baseline from before: test_a at 1 row (2*8*4 = 64) and an entry of a deleted test.
    stale = {
        "test_a": {"by_module": {"": 64}, "convention": "default", "test": "test_a", "total": 64},
        "test_gone": {"by_module": {"": 5}, "convention": "default", "test": "test_gone", "total": 5},
    }
    (folder / "test_model.json").write_text(json.dumps({"entries": stale, "format": 1, "recorded_with": {}}))
    monkeypatch.setenv("FXFLOPS_ROWS", "2")

    # One run only: each worker imports torch, which is most of this test's time.
    result = pytester.runpytest_subprocess(
        *OTHER_PLUGINS_OFF, "-n", "2", "--flops-update", "--flops-report", "--junit-xml=junit.xml",
        "--flops-json=flops.json",
    )
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    # test_c on a worker: 2*8*1 = 16 > 10, (16 - 10) / 10 = +60%
    assert "FLOP budget exceeded: measured 16 FLOPs (16), budget 10 FLOPs (+60.0%)" in out
    # the controller saw all four measurements and wrote the file alone, pruning test_gone; test_c
    # failed its budget, so its count is not recorded as the baseline
    assert "baseline __flops__/test_model.json: 2 added, 1 changed, 1 removed" in out
    assert "baseline __flops__/test_model.json: not updated for test_c: over budget" in out
    assert "fxflops: 4 measurement(s); budgets: 1 checked, 1 exceeded" in out
    # 2 rows * 64 = 128; 2*8*2 = 32; 2*8*3 = 48
    assert totals(pytester) == {"test_a": 128, "test_b": 32, "test_d[three]": 48}
    # the JSON dump holds the same four, merged from both workers, in node-id order
    dumped = json.loads((pytester.path / "flops.json").read_text())["measurements"]
    assert [(m["key"], m["total"]) for m in dumped] == [("test_a", 128), ("test_b", 32), ("test_c", 16),
                                                        ("test_d[three]", 48)]
    assert [p.name for p in folder.iterdir()] == ["test_model.json"]
    # the failure's headline crossed from the worker intact (short summary and JUnit message)
    result.stdout.fnmatch_lines(["FAILED test_model.py::test_c - FLOP budget exceeded: measured 16 FLOPs*"])
    cases = {
        case.get("name"): case for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    }
    failure = cases["test_c"].find("failure")
    assert failure is not None
    assert failure.get("message") == "FLOP budget exceeded: measured 16 FLOPs (16), budget 10 FLOPs (+60.0%)"


JSON_SUITE = """
    import pytest
    import torch
    from torch import nn


    @pytest.mark.flops(max=100)
    def test_a(flops):
        flops(nn.Linear(8, 4), torch.randn(1, 8))
        flops(nn.Linear(8, 2), torch.randn(1, 8), name="small", max=40)


    @pytest.mark.flops(baseline=False)
    def test_b(flops):
        flops(nn.Linear(8, 1), torch.randn(2, 8))
"""


def test_json_lists_every_measurement(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model=JSON_SUITE)
    run(pytester, "--flops-update").assert_outcomes(passed=2)
    result = run(pytester, "--flops-json=out/flops.json")
    result.assert_outcomes(passed=2)
    data = json.loads((pytester.path / "out" / "flops.json").read_text())
    assert (data["format"], data["unit"]) == (1, "FLOPs")
    assert set(data["versions"]) == {"convention", "fxflops", "torch"}
    common = {"convention": "default", "uncounted": None}
    assert data["measurements"] == [
        # 2*1*8*4 = 64, under test_a's marker budget of 100 (64 + 32 = 96), equal to its baseline
        {"nodeid": "test_model.py::test_a", "key": "test_a", "total": 64, "budget": None, "test_budget": 100,
         "baseline": 64, "status": "matched", "baseline_file": "__flops__/test_model.json",
         "modules": {"": 64}, **common},
        # 2*1*8*2 = 32 with its own max=40
        {"nodeid": "test_model.py::test_a", "key": "test_a[small]", "total": 32, "budget": 40,
         "test_budget": 100, "baseline": 32, "status": "matched", "baseline_file": "__flops__/test_model.json",
         "modules": {"": 32}, **common},
        # 2*2*8*1 = 32, baseline=False: not compared, no file
        {"nodeid": "test_model.py::test_b", "key": "test_b", "total": 32, "budget": None, "test_budget": None,
         "baseline": None, "status": "unchecked", "baseline_file": None, "modules": {"": 32}, **common},
    ]


def test_loading_the_plugin_does_not_import_torch(pytester: pytest.Pytester) -> None:
    code = "import sys, fxflops.pytest_plugin, fxflops.units, fxflops.budget; print('torch' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "False"

    pytester.makepyfile(
        test_no_torch="""
        import sys

        def test_plugin_active_without_torch(request):
            assert request.config.pluginmanager.hasplugin("fxflops")
            request.getfixturevalue("flops")
            assert "torch" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess(*OTHER_PLUGINS_OFF, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_entry_point_names_the_plugin_module() -> None:
    from importlib.metadata import entry_points

    (entry_point,) = [ep for ep in entry_points(group="pytest11") if ep.name == "fxflops"]
    assert entry_point.value == "fxflops.pytest_plugin"
    assert Path(entry_point.load().__file__).name == "pytest_plugin.py"

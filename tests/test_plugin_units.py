"""White-box tests of the plugin's building blocks: baseline files, keys, marker validation, payloads.

These need neither torch nor a pytest run; the black-box behaviour is in test_plugin.py.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fxflops._pytest.baseline import BaselineError, baseline_path, read_baseline, render, write_atomic
from fxflops._pytest.failures import FlopsLongRepr
from fxflops._pytest.marker import FlopsMarker, MarkerError
from fxflops._pytest.measure import ItemState, Measurement
from fxflops._pytest.options import parse_rel


def entry(test: str, total: object) -> dict[str, object]:
    return {"by_module": {"": total}, "convention": "default", "test": test, "total": total}


def test_baseline_path_is_next_to_the_module() -> None:
    assert baseline_path(Path("/repo/tests/test_clip.py"), "__flops__") == Path(
        "/repo/tests/__flops__/test_clip.json"
    )


def test_missing_file_is_an_empty_baseline(tmp_path: Path) -> None:
    baseline = read_baseline(tmp_path / "nope.json")
    assert baseline.entries == {}
    assert not baseline.exists


def test_render_and_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "__flops__" / "test_m.json"
    # 2 * 8 * 4 = 64; 2 * 35,879 * 1024 * 120 = 8,817,623,040
    entries = {"test_b": entry("test_b", 64), "test_a[image]": entry("test_a", 8_817_623_040)}
    write_atomic(path, render(entries))
    text = path.read_text()
    assert text.endswith("}\n")
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n"
    assert list(doc) == ["entries", "format", "recorded_with"]
    assert list(doc["entries"]) == ["test_a[image]", "test_b"]
    baseline = read_baseline(path)
    assert baseline.total("test_a[image]") == 8_817_623_040
    assert baseline.total("test_b") == 64
    assert baseline.total("test_c") is None


def test_write_atomic_leaves_no_temporary_file_and_a_readable_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "base.json"
    write_atomic(path, "one\n")
    write_atomic(path, "two\n")
    assert path.read_text() == "two\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["base.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_atomic_keeps_the_old_file_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "base.json"
    path.write_text("old\n")

    def crash(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C between writing the temporary file and replacing

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["base.json"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"format": 1, "entries": {', "is not valid JSON (Expecting property name"),
        ("[]", "is not a JSON object"),
        ('{"entries": {}}', "has format None, this fxflops reads format 1; it needs regenerating"),
        ('{"format": 2, "entries": {}}', "has format 2, this fxflops reads format 1"),
        ('{"format": 1}', '"entries" is missing or not an object'),
        ('{"format": 1, "entries": {"t": 5}}', "entry 't' is not an object"),
        (
            '{"format": 1, "entries": {"t": {"test": "t", "total": "64"}}}',
            "\"total\" must be a whole number >= 0, got '64'",
        ),
        (
            '{"format": 1, "entries": {"t": {"test": "t", "total": 6.4}}}',
            '"total" must be a whole number >= 0, got 6.4',
        ),
        (
            '{"format": 1, "entries": {"t": {"test": "t", "total": -1}}}',
            '"total" must be a whole number >= 0, got -1',
        ),
        (
            '{"format": 1, "entries": {"t": {"test": "t", "total": true}}}',
            '"total" must be a whole number >= 0, got True',
        ),
        (
            '{"format": 1, "entries": {"t": {"total": 64}}}',
            "entry 't': \"test\" (the test it belongs to) is missing",
        ),
    ],
)
def test_unusable_baseline_names_file_and_problem(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "test_m.json"
    path.write_text(text)
    with pytest.raises(BaselineError) as excinfo:
        read_baseline(path)
    assert excinfo.value.path == path
    assert reason in excinfo.value.reason
    assert str(excinfo.value).startswith(f"{path}: ")
    assert path.read_text() == text


def test_keys_for_names_and_repeats() -> None:
    state = ItemState()
    keys = []
    for name in [None, None, "image", "image", None, "text"]:
        key = state.next_key("TestX::test_y[cpu]", name)
        keys.append(key)
        state.measurements.append(
            Measurement("f.py::TestX::test_y[cpu]", "TestX::test_y[cpu]", key, "/b.json", 1, {}, "default")
        )
    assert keys == [
        "TestX::test_y[cpu]",
        "TestX::test_y[cpu].1",
        "TestX::test_y[cpu][image]",
        "TestX::test_y[cpu][image].1",
        "TestX::test_y[cpu].2",
        "TestX::test_y[cpu][text]",
    ]
    assert state.measurements[2].display == "f.py::TestX::test_y[cpu][image]"


def test_measurement_payload_round_trip_drops_detail() -> None:
    m = Measurement(
        "f.py::t", "t", "t", "/b.json", 64, {"": 64}, "default", budget=100, detail={"": 64, "a": 64}
    )
    payload = m.to_payload()
    assert "detail" not in payload
    json.dumps(payload)  # builtin types only, as execnet requires
    back = Measurement.from_payload(payload)
    assert back.total == 64
    assert back.budget == 100
    assert back.detail == {}


def test_longrepr_payload_round_trip() -> None:
    longrepr = FlopsLongRepr("FLOP budget exceeded: measured ...\nmore", "/t/test_a.py", 12)
    back = FlopsLongRepr.from_payload(json.loads(json.dumps(longrepr.to_payload())))
    assert str(back) == str(longrepr)
    assert back.reprcrash.message == "FLOP budget exceeded: measured ..."
    assert str(back.reprcrash) == "/t/test_a.py:12: FLOP budget exceeded: measured ..."


@pytest.mark.parametrize(
    ("mark", "expected"),
    [
        (pytest.mark.flops, FlopsMarker()),
        # 40 * 10^9
        (pytest.mark.flops(max="40 GFLOPs"), FlopsMarker(max=40_000_000_000)),
        (pytest.mark.flops(max=64, rel=0.05, baseline=False), FlopsMarker(max=64, rel=0.05, baseline=False)),
        (pytest.mark.flops(rel="0.1"), FlopsMarker(rel=0.1)),
    ],
)
def test_marker_valid(mark: pytest.MarkDecorator, expected: FlopsMarker) -> None:
    assert FlopsMarker.from_mark(mark.mark) == expected


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        (pytest.mark.flops(mx=1), "flops marker got unexpected keyword(s): mx; expected: baseline, max, rel"),
        (pytest.mark.flops(maximum=1, tol=2), "unexpected keyword(s): maximum, tol;"),
        (pytest.mark.flops("40G"), "flops marker takes keyword arguments only, got positional '40G'"),
        (pytest.mark.flops(max="40 GMACs"), 'write "80 GFLOPs"'),
        (pytest.mark.flops(max="1 GiB"), "binary prefixes"),
        (pytest.mark.flops(rel=-0.5), "flops marker: rel must be a number >= 0"),
        (pytest.mark.flops(rel="5%"), "flops marker: rel must be a number >= 0 (0.05 means 5%), got '5%'"),
        (pytest.mark.flops(baseline="no"), "baseline must be True or False, got 'no'"),
    ],
)
def test_marker_invalid(mark: pytest.MarkDecorator, message: str) -> None:
    with pytest.raises(MarkerError) as excinfo:
        FlopsMarker.from_mark(mark.mark)
    assert message in str(excinfo.value)


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), ("0.05", 0.05), (0.5, 0.5), (2, 2.0)])
def test_parse_rel(value: object, expected: float) -> None:
    assert parse_rel(value, "x") == expected


@pytest.mark.parametrize("value", ["-0.1", "lots", "nan", "inf", True, None])
def test_parse_rel_rejects(value: object) -> None:
    with pytest.raises(ValueError, match=r"x must be a number >= 0 \(0.05 means 5%\)"):
        parse_rel(value, "x")

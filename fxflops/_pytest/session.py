"""Per-session state of the plugin: measurements, baseline comparisons, xdist merge, baseline writes.

One :class:`FlopsSession` lives in ``config.stash[SESSION]``. Comparisons run where the test runs
(an xdist worker or the only process), so the failing test is the one reported; baseline files are
written once, at the end, by the process that saw every measurement (the xdist controller or the
only process).
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from fxflops._pytest.baseline import (
    Baseline,
    BaselineError,
    baseline_path,
    make_entry,
    read_baseline,
    recorded_with,
    render,
    write_atomic,
)
from fxflops._pytest.failures import (
    BaselineChanged,
    BaselineUnreadable,
    Failure,
    MarkerBudgetExceeded,
    NoMeasurement,
)
from fxflops._pytest.marker import MARKER_NAME, FlopsMarker
from fxflops._pytest.measure import ITEM_STATE, ItemState, Measurement, Status, node_key
from fxflops._pytest.options import FlopsOptions
from fxflops.budget import MODULE_DEPTH, uncounted_summary

__all__ = ["SESSION", "FlopsSession", "TestRecord", "WriteResult"]

JSON_FORMAT = 1
"""Version of the ``--flops-json`` file layout."""

PAYLOAD_KEY = "fxflops"
"""Key of the plugin's data in xdist's ``config.workeroutput``."""


@dataclass
class TestRecord:
    """A collected test, for pruning baseline entries and for the session report."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    test: str
    """Node id within its module (the ``test`` field of baseline entries)."""
    baseline_file: str
    """Absolute path of the baseline file of its module."""
    complete: bool = False
    """The test body ran to the end, so every measurement it makes was recorded."""
    marker_max: int | None = None
    """The budget of its ``flops`` marker, for the report."""


@dataclass
class WriteResult:
    """What ``--flops-update`` did to one baseline file."""

    path: str
    """The file, relative to the rootdir when possible."""
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    replaced_unreadable: bool = False
    """The file was corrupt and has been rewritten from this run's measurements."""
    error: str | None = None
    """Why the file could not be written, if it could not."""
    over_budget: list[str] = field(default_factory=list)
    """Entries not updated because their measurement (or its test's sum) exceeded its budget."""


class FlopsSession:
    """Everything the plugin learns during one pytest session."""

    def __init__(self, config: pytest.Config, options: FlopsOptions) -> None:
        self.config = config
        self.options = options
        self.rootpath = config.rootpath
        self.measurements: list[Measurement] = []
        """Every measurement of the session (merged from xdist workers on the controller)."""
        self.tests: dict[str, TestRecord] = {}
        """Collected tests by node id."""
        self.narrowed: str | None = _narrowing_options(config)
        """Why unused baseline entries must not be pruned (``"-k"``, ``"deselection"``), or None."""
        self.results: list[WriteResult] = []
        #: Why ``--flops-json`` could not be written at the end of the session, or None.
        self.json_error: str | None = None
        """Baseline files written or that failed to write, after :meth:`write_baselines`."""
        self._baselines: dict[Path, Baseline | BaselineError] = {}

    # -- collection -------------------------------------------------------------------------------

    def collected(self, items: list[pytest.Item]) -> None:
        """Remember the collected tests: entries of tests not among them may be pruned."""
        for item in items:
            self.tests[item.nodeid] = TestRecord(
                nodeid=item.nodeid,
                test=node_key(item),
                baseline_file=str(baseline_path(item.path, self.options.dirname)),
            )

    def narrow(self, reason: str) -> None:
        """Record that the run does not include every test, so nothing may be pruned."""
        self.narrowed = self.narrowed or reason

    # -- one test ---------------------------------------------------------------------------------

    def setup_item(self, item: pytest.Item) -> None:
        """Validate the test's ``flops`` marker (raises ``MarkerError``) and create its state."""
        mark = item.get_closest_marker(MARKER_NAME)
        marker = None if mark is None else FlopsMarker.from_mark(mark)
        item.stash[ITEM_STATE] = ItemState(marker=marker)
        record = self.tests.get(item.nodeid)
        if record is not None and marker is not None:
            record.marker_max = marker.max

    def record(self, item: pytest.Item, report: Any, *, name: str | None, budget: int | None) -> Measurement:
        """Store the measurement that ``report`` (a ``FlopReport``) makes for ``item``."""
        state = item.stash.setdefault(ITEM_STATE, ItemState())
        marker = state.marker
        test = node_key(item)
        measurement = Measurement(
            nodeid=item.nodeid,
            test=test,
            key=state.next_key(test, name),
            baseline_file=str(baseline_path(item.path, self.options.dirname)),
            total=int(report.total),
            # Zero-FLOP modules (activations, dropout) only add noise to a committed file.
            modules={k: int(v) for k, v in report.by_module(depth=1).items() if v},
            convention=str(report.convention),
            budget=budget,
            uncounted=uncounted_summary(report.uncounted),
            use_baseline=marker.baseline if marker is not None else True,
            rel=marker.rel if marker is not None and marker.rel is not None else self.options.rel,
            detail={k: int(v) for k, v in report.by_module(depth=MODULE_DEPTH).items()},
        )
        if measurement.use_baseline:
            with contextlib.suppress(BaselineError):  # an unreadable file is reported by compare()
                measurement.baseline_modules = _modules_of(self._load(Path(measurement.baseline_file)),
                                                           measurement.key)
        state.measurements.append(measurement)
        self.measurements.append(measurement)
        # Shows up as <property> in --junit-xml, where CI dashboards can plot it.
        item.user_properties.append((f"fxflops:{measurement.key}", measurement.total))
        return measurement

    def finish_call(self, item: pytest.Item, body_completed: bool) -> list[Failure]:
        """Compare the test's measurements and check its marker; return the failures to report.

        Comparisons run even when the body failed, so that the session report is complete; the
        caller applies the failures only to a test that otherwise passed.
        """
        record = self.tests.get(item.nodeid)
        if record is not None and body_completed:
            record.complete = True
        state = item.stash.get(ITEM_STATE, None)
        if state is None:
            return []
        failures = [failure for m in state.measurements if (failure := self.compare(m)) is not None]
        marker = state.marker
        if body_completed and marker is not None:
            if not state.measurements:
                failures.insert(0, NoMeasurement())
            elif marker.max is not None and sum(m.total for m in state.measurements) > marker.max:
                failures.insert(0, MarkerBudgetExceeded(marker.max, tuple(state.measurements)))
        return failures

    def compare(self, m: Measurement) -> Failure | None:
        """Set ``m.status`` and ``m.baseline`` from the committed baseline; return a failure if any."""
        if not m.use_baseline:
            m.status = Status.UNCHECKED
            return None
        try:
            baseline = self._load(Path(m.baseline_file))
        except BaselineError as e:
            m.status = Status.UNREADABLE
            # --flops-update rewrites the file from this run's measurements.
            return None if self.options.update else BaselineUnreadable(self.display_path(e.path), e.reason)
        old = baseline.total(m.key)
        if old is None:
            m.status = Status.NEW
            return None
        m.baseline = old
        # Fractions keep the comparison exact for counts above 2**53 and for rel=0.
        rel = Fraction(m.rel)
        if m.total > old * (1 + rel):
            m.status = Status.INCREASED
            if not self.options.update:
                return BaselineChanged(m, old, self.display_path(Path(m.baseline_file)))
        elif m.total < old:
            m.status = Status.IMPROVED
            if self.options.strict and not self.options.update and m.total < old * (1 - rel):
                return BaselineChanged(m, old, self.display_path(Path(m.baseline_file)))
        else:
            m.status = Status.MATCHED
        return None

    def _load(self, path: Path) -> Baseline:
        # Read each file once per process; a corrupt file gives the same error to every test.
        if path not in self._baselines:
            try:
                self._baselines[path] = read_baseline(path)
            except BaselineError as e:
                self._baselines[path] = e
        cached = self._baselines[path]
        if isinstance(cached, BaselineError):
            raise cached
        return cached

    # -- xdist ------------------------------------------------------------------------------------

    def to_payload(self) -> dict[str, Any]:
        """Return what a worker sends to the controller (builtin types only, for execnet)."""
        return {
            "measurements": [m.to_payload() for m in self.measurements],
            "tests": [asdict(t) for t in self.tests.values()],
            "narrowed": self.narrowed,
        }

    def merge(self, payload: dict[str, Any] | None) -> None:
        """Add a worker's payload; ``None`` (a crashed worker) forbids pruning."""
        if payload is None:
            self.narrow("an xdist worker finished without reporting its measurements")
            return
        self.measurements.extend(Measurement.from_payload(m) for m in payload["measurements"])
        # Every worker collects every test, but only the one that ran a test knows it completed.
        for data in payload["tests"]:
            known = self.tests.setdefault(data["nodeid"], TestRecord(**data))
            known.complete = known.complete or data["complete"]
            known.marker_max = known.marker_max if known.marker_max is not None else data["marker_max"]
        if payload["narrowed"]:
            self.narrow(payload["narrowed"])

    # -- end of session ---------------------------------------------------------------------------

    def write_baselines(self) -> None:
        """Write the baseline file of every collected module (``--flops-update`` only).

        Entries of this run's measurements are added or refreshed. On runs that were not narrowed,
        entries are pruned when their test is gone, or when their test ran to completion without
        recording them; tests that were skipped, failed early or not run keep their entries. A file
        left without entries is deleted. Files whose entries did not change are not rewritten.
        """
        by_file: dict[str, list[Measurement]] = defaultdict(list)
        over_budget = self._over_budget()
        for m in self.measurements:
            if m.use_baseline:
                by_file[m.baseline_file].append(m)
        tests_by_file: dict[str, dict[str, TestRecord]] = defaultdict(dict)
        for t in self.tests.values():
            tests_by_file[t.baseline_file][t.test] = t
        recorded: dict[tuple[str, str], set[str]] = defaultdict(set)
        for m in self.measurements:
            if m.use_baseline:
                recorded[(m.baseline_file, m.test)].add(m.key)

        for file in sorted(set(by_file) | set(tests_by_file)):
            path = Path(file)
            result = WriteResult(self.display_path(path))
            try:
                old = read_baseline(path)
            except BaselineError:
                old = Baseline(path, exists=True)
                result.replaced_unreadable = True
            entries = dict(old.entries)
            for m in by_file.get(file, []):
                if id(m) in over_budget:
                    # A count that failed its budget must not become the baseline the next run passes.
                    result.over_budget.append(m.key)
                    continue
                entry = make_entry(m)
                if m.key not in entries:
                    result.added.append(m.key)
                elif entries[m.key] != entry:
                    result.changed.append(m.key)
                entries[m.key] = entry
            if not self.narrowed:
                tests = tests_by_file.get(file, {})
                for key, entry in sorted(entries.items()):
                    owner = tests.get(entry["test"])
                    gone = owner is None
                    dropped = owner is not None and owner.complete and key not in recorded[(file, owner.test)]
                    if gone or dropped:
                        del entries[key]
                        result.removed.append(key)
            if not (result.added or result.changed or result.removed or result.replaced_unreadable):
                if result.over_budget:
                    self.results.append(result)
                continue
            try:
                if entries:
                    write_atomic(path, render(entries))
                elif old.exists:
                    path.unlink()
                    with contextlib.suppress(OSError):  # only if now empty
                        path.parent.rmdir()
            except OSError as e:
                result.error = f"{type(e).__name__}: {e}"
            self.results.append(result)

    def _over_budget(self) -> set[int]:
        """ids of the measurements above their own ``max`` or whose test's sum is above its
        ``@pytest.mark.flops(max=...)``."""
        sums: dict[str, int] = defaultdict(int)
        for m in self.measurements:
            sums[m.nodeid] += m.total
        over = set()
        for m in self.measurements:
            test = self.tests.get(m.nodeid)
            test_max = test.marker_max if test is not None else None
            if (m.budget is not None and m.total > m.budget) or (test_max is not None and sums[m.nodeid] > test_max):
                over.add(id(m))
        return over

    def write_json(self, path: Path) -> None:
        """Write every measurement of the session to ``path`` (``--flops-json``).

        Sorted by node id and entry key, so that runs with and without xdist give the same file.
        ``status`` is the baseline comparison (:class:`~fxflops._pytest.measure.Status`).
        """
        measurements = sorted(self.measurements, key=lambda m: (m.nodeid, m.key))
        data = {
            "format": JSON_FORMAT,
            "unit": "FLOPs",
            "versions": recorded_with(),
            "measurements": [
                {
                    "nodeid": m.nodeid,
                    "key": m.key,
                    "total": m.total,
                    "convention": m.convention,
                    "budget": m.budget,
                    "test_budget": self.tests[m.nodeid].marker_max if m.nodeid in self.tests else None,
                    "baseline": m.baseline,
                    "status": m.status,
                    "baseline_file": self.display_path(Path(m.baseline_file)) if m.use_baseline else None,
                    "uncounted": m.uncounted,
                    "modules": dict(sorted(m.modules.items())),
                }
                for m in measurements
            ],
        }
        write_atomic(path, json.dumps(data, indent=2) + "\n")

    def display_path(self, path: Path) -> str:
        """Return ``path`` relative to the rootdir when it is inside it, else absolute."""
        try:
            return str(path.relative_to(self.rootpath))
        except ValueError:
            return str(path)


def _modules_of(baseline: Any, key: str) -> dict[str, int]:
    """The ``by_module`` of baseline entry ``key`` (empty when absent or malformed)."""
    modules = baseline.entries.get(key, {}).get("by_module", {})
    return {str(k): int(v) for k, v in modules.items()} if isinstance(modules, dict) else {}


def _narrowing_options(config: pytest.Config) -> str | None:
    """Return the option that selects part of the tests, or None for a full run."""
    if config.getoption("keyword", default=""):
        return "-k"
    if config.getoption("markexpr", default=""):
        return "-m"
    # "path::name" arguments select single tests; plain paths select whole modules, which is safe
    # because entries are only pruned in the files of modules that were collected.
    if any("::" in str(arg) for arg in config.args):
        return "node ids"
    return None


SESSION = pytest.StashKey[FlopsSession]()

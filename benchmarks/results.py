"""The data a run produces, as plain dataclasses that round-trip through JSON.

``benchmarks/results.json`` keeps the last full run, so the next run can print fxflops's timings
before and after a change to the engine.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PeerCell:
    """One tool's answer for one workload (or why there is none)."""

    value: float | None = None  # in the tool's own unit
    unit: str | None = None
    flops: float | None = None  # converted to FLOPs
    seconds: float | None = None
    error: str | None = None


@dataclass
class CaseResult:
    """One accuracy workload: fxflops's exact count, how it is checked, and every peer's answer."""

    key: str
    label: str
    short: str
    how: str
    reference: int | None = None  # fxflops's count
    hand: int | None = None  # hand arithmetic, where there is one
    fxflops_seconds: float | None = None
    fxflops_error: str | None = None
    uncounted: int = 0
    fallbacks: dict[str, str] = field(default_factory=dict)
    peers: dict[str, PeerCell] = field(default_factory=dict)


@dataclass
class SpeedRow:
    """One tool at one batch size: median seconds to produce its number, and its peak RSS rise."""

    tool: str
    label: str
    batch: int
    runs: list[float] = field(default_factory=list)
    median: float | None = None
    peak_rss_increase_mib: float | None = None
    flops: float | None = None
    error: str | None = None


@dataclass
class ProbeRow:
    """fxflops counting one model at one batch size in a fresh process."""

    model: str
    batch: int
    params: int | None = None
    flops: int | None = None
    build_seconds: float | None = None
    first_seconds: float | None = None  # the model's first count in the process
    runs: list[float] = field(default_factory=list)  # later counts
    median: float | None = None  # median of the later counts (the first if there are none)
    peak_rss_increase_mib: float | None = None  # over the first count, VmHWM above VmRSS before it
    rss_before_mib: float | None = None
    first_cpu_seconds: float | None = None  # process CPU time of the first count (robust to load)
    load: float | None = None  # 1-minute load average when the first count started
    error: str | None = None


@dataclass
class ZooResult:
    """The whole OpenCLIP zoo, built and counted end to end."""

    how: str
    seconds: float | None = None
    models: int = 0
    rows: int = 0
    failures: list[str] = field(default_factory=list)
    slowest: list[tuple[str, float]] = field(default_factory=list)
    jobs: int = 1
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class TargetResult:
    """One target of issue 6 and whether this run met it."""

    name: str
    status: str  # "PASS", "FAIL" or "SKIP"
    measured: str
    goal: str

    def line(self) -> str:
        return f"{self.status}  {self.name}: {self.measured} (target: {self.goal})"


@dataclass
class ProfileResult:
    """Where fxflops spends its time on one workload (cProfile)."""

    title: str
    total_seconds: float
    buckets: list[tuple[str, int, float]] = field(default_factory=list)  # label, calls, cumulative s
    top: list[tuple[str, int, float, float]] = field(
        default_factory=list
    )  # function, calls, tottime, cumtime


@dataclass
class Results:
    """Everything one run measured."""

    quick: bool
    machine: dict[str, Any] = field(default_factory=dict)
    skipped_peers: list[str] = field(default_factory=list)
    accuracy: list[CaseResult] = field(default_factory=list)
    speed: list[SpeedRow] = field(default_factory=list)
    batch_scaling: list[ProbeRow] = field(default_factory=list)
    model_scaling: list[ProbeRow] = field(default_factory=list)
    zoo: ZooResult | None = None
    #: The fair comparison (benchmarks/fair_speed.py): FairRow.as_dict() per model.
    fair: list[dict[str, Any]] = field(default_factory=list)
    targets: list[TargetResult] = field(default_factory=list)
    profiles: list[ProfileResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall_seconds: float | None = None


def save(results: Results, path: Path) -> None:
    """Write ``results`` as JSON."""
    path.write_text(json.dumps(dataclasses.asdict(results), indent=1, sort_keys=False) + "\n")


def load(path: Path) -> Results | None:
    """Read a previous run's JSON, or ``None`` if there is none or it cannot be read."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        return Results(
            quick=raw["quick"],
            machine=raw.get("machine", {}),
            skipped_peers=raw.get("skipped_peers", []),
            accuracy=[_case(c) for c in raw.get("accuracy", [])],
            speed=[SpeedRow(**r) for r in raw.get("speed", [])],
            batch_scaling=[ProbeRow(**r) for r in raw.get("batch_scaling", [])],
            model_scaling=[ProbeRow(**r) for r in raw.get("model_scaling", [])],
            zoo=ZooResult(**raw["zoo"]) if raw.get("zoo") else None,
            fair=raw.get("fair", []),
            targets=[TargetResult(**t) for t in raw.get("targets", [])],
            profiles=[ProfileResult(**p) for p in raw.get("profiles", [])],
            notes=raw.get("notes", []),
            wall_seconds=raw.get("wall_seconds"),
        )
    except (KeyError, TypeError):
        return None


def _case(raw: dict[str, Any]) -> CaseResult:
    peers = {k: PeerCell(**v) for k, v in raw.pop("peers", {}).items()}
    return CaseResult(**raw, peers=peers)

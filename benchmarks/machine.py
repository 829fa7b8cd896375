"""The machine and software a run happened on, for the header of RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata

#: Distributions whose versions a reader needs to reproduce the numbers.
TRACKED_DISTRIBUTIONS = (
    "fxflops",
    "torch",
    "torchvision",
    "open_clip_torch",
    "timm",
    "transformers",
    "fvcore",
    "thop",
    "ptflops",
    "torchinfo",
    "torch-flops",
    "calflops",
    "matplotlib",
)


@dataclass
class Machine:
    """What ran the benchmark: hardware, load, versions and the command line."""

    cpu_model: str
    nproc: int
    memory_gib: float
    python: str
    platform: str
    versions: dict[str, str | None]
    command: str
    started: str
    git_commit: str | None
    git_dirty: bool | None
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] | None = None
    torch_threads: int = 0
    notes: list[str] = field(default_factory=list)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def _nproc() -> int:
    # What `nproc` prints: the CPUs this process may run on, not the host's count.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def version_of(distribution: str) -> str | None:
    """The installed version of a distribution, or ``None`` when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git(repo: str, *args: str) -> str | None:
    # Read-only queries only: the runner never changes the repository.
    try:
        done = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def describe(repo: str, argv: list[str]) -> Machine:
    """Describe this machine now; ``argv`` is the runner's command line."""
    import torch

    status = _git(repo, "status", "--porcelain")
    return Machine(
        cpu_model=_cpu_model(),
        nproc=_nproc(),
        memory_gib=_memory_gib(),
        python=sys.version.split()[0],
        platform=platform.platform(),
        versions={name: version_of(name) for name in TRACKED_DISTRIBUTIONS},
        command=" ".join(["python", *argv]),
        started=datetime.datetime.now().isoformat(timespec="seconds"),
        git_commit=_git(repo, "rev-parse", "--short", "HEAD"),
        git_dirty=None if status is None else bool(status),
        load_before=os.getloadavg(),
        torch_threads=torch.get_num_threads(),
    )

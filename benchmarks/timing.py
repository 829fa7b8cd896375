"""Wall-clock medians and peak-RSS measurement of one call, without third-party packages.

Peak memory is read from Linux's ``VmHWM`` (the process's RSS high-water mark), which writing
``5`` to ``/proc/self/clear_refs`` resets: so a measurement sees the peak of *this* call, not of
whatever the process did before. Where that is not possible (not Linux, no permission), a
sampling thread reads ``VmRSS`` every few milliseconds instead.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_STATUS = "/proc/self/status"


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS) as f:
            match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def current_rss_mib() -> float | None:
    """This process's resident set size now, in MiB."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def _release_free_memory() -> None:
    """Hand memory that glibc keeps after ``free`` back to the OS (``malloc_trim``).

    Without it, a call that follows a bigger one reuses pages that are still resident, so its
    RSS barely rises and its peak looks near zero however much it allocates.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class _Sampler(threading.Thread):
    """Fallback: poll VmRSS while the call runs (misses spikes shorter than the period)."""

    def __init__(self, period: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.period = period
        self.peak_kib = _status_kib("VmRSS") or 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak_kib = max(self.peak_kib, _status_kib("VmRSS") or 0)
            time.sleep(self.period)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak_kib


@dataclass(frozen=True)
class Measured:
    """One call: its result, wall seconds, and how far RSS rose above its level before the call."""

    result: Any
    seconds: float
    peak_rss_increase_mib: float | None
    method: str  # "VmHWM" or "sampled VmRSS"


def measure(fn: Callable[[], T]) -> Measured:
    """Run ``fn()`` once; time it and measure its peak RSS increase."""
    _release_free_memory()
    before = _status_kib("VmRSS")
    exact = before is not None and _reset_high_water_mark()
    sampler = None
    if not exact and before is not None:
        sampler = _Sampler()
        sampler.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    if before is None:
        return Measured(result, seconds, None, "unavailable")
    peak = _status_kib("VmHWM") if exact else sampler.stop()  # type: ignore[union-attr]
    increase = max(0, (peak or before) - before) / 1024
    return Measured(result, seconds, increase, "VmHWM" if exact else "sampled VmRSS")


@dataclass(frozen=True)
class Timing:
    """Repeated timings of one call: every run's seconds and the median."""

    runs: tuple[float, ...]
    peak_rss_increase_mib: float | None = None
    result: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def repeat(fn: Callable[[], T], runs: int, warmup: int = 1) -> Timing:
    """Median timing of ``fn`` over ``runs`` calls after ``warmup`` untimed ones.

    The warm-up keeps one-off costs (lazy imports, first-call caches, allocator growth) out of
    the median for every tool alike. Peak RSS is taken from the first timed call.
    """
    for _ in range(warmup):
        fn()
    seconds: list[float] = []
    peak: float | None = None
    result: Any = None
    for i in range(max(1, runs)):
        measured = measure(fn)
        seconds.append(measured.seconds)
        if i == 0:
            peak, result = measured.peak_rss_increase_mib, measured.result
    return Timing(tuple(seconds), peak, result)

"""Failure texts of the plugin, and the report object that carries them.

Each failure kind is a small frozen dataclass with a ``long_repr`` (as in pytest-memray): its first
line is the headline that CI logs, ``-ra`` summaries and ``--junit-xml`` ``message`` attributes show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fxflops._pytest.measure import Measurement
from fxflops.budget import MODULE_DEPTH, budget_exceeded_message, format_change, top_modules_lines
from fxflops.units import format_count, format_flops

__all__ = [
    "BaselineChanged",
    "BaselineUnreadable",
    "Failure",
    "FlopsLongRepr",
    "MarkerBudgetExceeded",
    "NoMeasurement",
]

UPDATE_HINT = "re-run pytest with --flops-update if this is intended"


class Failure:
    """Base of the failure kinds: a multi-line :attr:`long_repr` whose first line is the headline."""

    @property
    def long_repr(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class MarkerBudgetExceeded(Failure):
    """The measurements of a test add up to more than its ``@pytest.mark.flops(max=...)``."""

    budget: int
    measurements: tuple[Measurement, ...]

    @property
    def long_repr(self) -> str:
        total = sum(m.total for m in self.measurements)
        if len(self.measurements) == 1:
            (m,) = self.measurements
            return "\n".join([budget_exceeded_message(total, self.budget, m.detail, uncounted=m.uncounted),
                              *moved_modules_lines(m)])
        lines = [
            budget_exceeded_message(total, self.budget),
            "",
            f"@pytest.mark.flops(max=...) bounds the sum of the test's "
            f"{len(self.measurements)} measurements:",
        ]
        lines += [f"  {m.key}: {format_flops(m.total)} ({format_count(m.total)})" for m in self.measurements]
        largest = max(self.measurements, key=lambda m: m.total)
        modules = top_modules_lines(largest.detail, total=largest.total)
        if modules:
            lines.append(f"top modules of {largest.key} (depth {MODULE_DEPTH}, FLOPs of each row's own ops):")
            lines += modules
        uncounted = sorted({m.uncounted for m in self.measurements if m.uncounted})
        if uncounted:
            lines.append(f"ops without a rule (counted as 0 FLOPs): {', '.join(uncounted)}")
        lines += moved_modules_lines(largest)
        return "\n".join(lines)


@dataclass(frozen=True)
class BaselineChanged(Failure):
    """A measurement moved away from its baseline entry by more than the allowed tolerance.

    Above the baseline it always fails; below it only under ``--flops-strict``.
    """

    measurement: Measurement
    old: int
    """The baseline's total."""
    baseline_file: str
    """The baseline file, as shown to the user (relative to the rootdir)."""

    @property
    def long_repr(self) -> str:
        m = self.measurement
        allowed = (f"allowed +{m.rel * 100:.1f}%" if m.total > self.old
                   else f"allowed -{m.rel * 100:.1f}% under --flops-strict")
        direction = "increased" if m.total > self.old else "decreased"
        return "\n".join(
            [
                f"FLOPs {direction} vs baseline: {format_flops(self.old)} -> {format_flops(m.total)} "
                f"({format_change(m.total, self.old)}, {allowed})",
                _baseline_line(m, self.old, self.baseline_file),
                *moved_modules_lines(m),
                UPDATE_HINT,
            ]
        )



@dataclass(frozen=True)
class BaselineUnreadable(Failure):
    """The baseline file of the test's module is corrupt or of another format."""

    baseline_file: str
    reason: str

    @property
    def long_repr(self) -> str:
        return (
            f"FLOP baseline file {self.baseline_file} {self.reason}\n"
            "fix or delete it, or re-run pytest with --flops-update to rewrite it "
            "(fxflops never changes it otherwise)"
        )


@dataclass(frozen=True)
class NoMeasurement(Failure):
    """A test marked ``@pytest.mark.flops`` finished without calling the ``flops`` fixture."""

    @property
    def long_repr(self) -> str:
        return "test is marked @pytest.mark.flops but recorded no measurement; call the flops fixture"


def moved_modules_lines(m: Measurement, limit: int = 5) -> list[str]:
    """The modules (depth 1) whose FLOPs changed against ``m``'s baseline entry, largest change
    first; nothing when there is no entry or nothing moved."""
    new, old = m.modules, m.baseline_modules
    names = [n for n in dict.fromkeys([*old, *new]) if n and new.get(n, 0) != old.get(n, 0)]
    if not old or not names:
        return []
    names.sort(key=lambda n: -abs(new.get(n, 0) - old.get(n, 0)))
    lines = ["modules that changed vs baseline (depth 1):"]
    for name in names[:limit]:
        before, after = old.get(name, 0), new.get(name, 0)
        change = format_change(after, before) if before else "new"
        lines.append(f"  {name}: {format_count(before)} -> {format_count(after)} FLOPs ({change})")
    if len(names) > limit:
        lines.append(f"  ... and {len(names) - limit} more")
    return lines


def _baseline_line(m: Measurement, old: int, baseline_file: str) -> str:
    return f"baseline: {baseline_file}, entry {m.key!r}: {format_count(old)} -> {format_count(m.total)} FLOPs"


@dataclass
class _Crash:
    """The ``reprcrash`` of :class:`FlopsLongRepr`: what ``-ra`` and ``--junit-xml`` show."""

    path: str
    lineno: int
    message: str

    def __str__(self) -> str:
        # pytest's ``--tb=line`` prints str(reprcrash).
        return f"{self.path}:{self.lineno}: {self.message}"


class FlopsLongRepr:
    """A report ``longrepr`` made of plain text, whose first line is the crash message.

    A plain string longrepr would work, but pytest then shows no message after ``FAILED x`` in the
    short summary and puts the whole text in the JUnit ``message`` attribute; ``reprcrash`` fixes
    both. Under xdist the plugin's report serialization hooks send it with :meth:`to_payload`.
    """

    def __init__(self, text: str, path: str, lineno: int) -> None:
        self.text = text
        self.reprcrash = _Crash(path, lineno, text.splitlines()[0] if text else "")

    def to_payload(self) -> dict[str, Any]:
        """Return the builtin values that :meth:`from_payload` rebuilds this from (for xdist)."""
        return {"text": self.text, "path": self.reprcrash.path, "lineno": self.reprcrash.lineno}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> FlopsLongRepr:
        """Rebuild a longrepr sent by :meth:`to_payload`."""
        return cls(str(data["text"]), str(data["path"]), int(data["lineno"]))

    def toterminal(self, tw: Any) -> None:
        """Write the text, one line at a time (``tw`` is pytest's ``TerminalWriter``)."""
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text

"""The end-of-session report, written through pytest's terminal reporter.

Printed by the process that saw every measurement (the xdist controller, or the only process), and
only when the plugin did something: a session without measurements prints nothing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fxflops._pytest.measure import Measurement, Status
from fxflops._pytest.session import FlopsSession
from fxflops.budget import format_change
from fxflops.units import format_flops

__all__ = ["summary_lines", "write_summary"]


def write_summary(terminalreporter: Any, session: FlopsSession) -> None:
    """Write the report of ``session`` to ``terminalreporter`` (pytest's ``TerminalReporter``)."""
    lines = summary_lines(session)
    if not lines:
        return
    title = "fxflops report" if session.options.report else "fxflops"
    terminalreporter.write_sep("=" if session.options.report else "-", title)
    for line in lines:
        terminalreporter.write_line(line)


def summary_lines(session: FlopsSession) -> list[str]:
    """Return the report lines: the table (with ``--flops-report``), counts, hints, writes."""
    measurements = sorted(session.measurements, key=lambda m: (m.nodeid, m.key))
    if not measurements and not session.results:
        return [session.json_error] if session.json_error else []
    options = session.options
    lines: list[str] = []
    if options.report and measurements:
        lines += _table(session, measurements)
        lines.append("")
    lines.append(_counts_line(session, measurements))

    improved = [m for m in measurements if m.status == Status.IMPROVED]
    if improved and not options.update:
        lines.append("improved vs baseline (re-run pytest with --flops-update to record the lower counts):")
        lines += [
            f"  {m.display}: {format_flops(m.baseline or 0)} -> {format_flops(m.total)} "
            f"({format_change(m.total, m.baseline or 0)})"
            for m in improved
        ]
    new = [m for m in measurements if m.status == Status.NEW]
    if new and not options.update:
        lines.append(
            f"{len(new)} measurement(s) have no baseline yet; "
            "re-run pytest with --flops-update to record them"
        )

    # Nothing silent: an op without a rule makes a count too low, budget or not.
    uncounted = [m for m in measurements if m.uncounted]
    if uncounted:
        lines.append("ops without a FLOP rule, counted as 0 (register a rule, or pass strict=True to fail):")
        lines += [f"  {m.display}: {m.uncounted}" for m in uncounted]

    for result in session.results:
        if result.error is not None:
            lines.append(f"could not write baseline {result.path}: {result.error}")
            continue
        parts = [
            f"{len(keys)} {what}"
            for what, keys in (
                ("added", result.added),
                ("changed", result.changed),
                ("removed", result.removed),
            )
            if keys
        ]
        note = " (the unreadable file was replaced)" if result.replaced_unreadable else ""
        if parts or result.replaced_unreadable or not result.over_budget:
            lines.append(f"baseline {result.path}: {', '.join(parts) or 'rewritten'}{note}")
        if result.over_budget:
            lines.append(f"baseline {result.path}: not updated for {', '.join(result.over_budget)}: "
                         "over budget (raise the budget first if the increase is intended)")
    if options.update:
        if not session.results:
            lines.append("baselines are up to date")
        if session.narrowed:
            lines.append(
                f"unused baseline entries were kept: the run was narrowed ({session.narrowed}); "
                "run the whole suite with --flops-update to prune them"
            )
    if session.json_error:
        lines.append(session.json_error)
    return lines


def _counts_line(session: FlopsSession, measurements: list[Measurement]) -> str:
    statuses: dict[str, int] = defaultdict(int)
    for m in measurements:
        statuses[m.status] += 1
    checked = exceeded = 0
    for m in measurements:
        if m.budget is not None:
            checked += 1
            exceeded += m.total > m.budget
    for nodeid, total in _sums(measurements).items():
        record = session.tests.get(nodeid)
        if record is not None and record.marker_max is not None:
            checked += 1
            exceeded += total > record.marker_max
    order = (
        Status.MATCHED,
        Status.INCREASED,
        Status.IMPROVED,
        Status.NEW,
        Status.UNREADABLE,
        Status.UNCHECKED,
    )
    baselines = ", ".join(f"{statuses[s]} {s}" for s in order if statuses[s] or s in order[:4])
    return (
        f"fxflops: {len(measurements)} measurement(s); budgets: {checked} checked, {exceeded} exceeded; "
        f"baselines: {baselines}"
    )


def _table(session: FlopsSession, measurements: list[Measurement]) -> list[str]:
    rows = [("test", "measured", "budget", "baseline", "change")]
    sums = _sums(measurements)
    count_by_test: dict[str, int] = defaultdict(int)
    for m in measurements:
        count_by_test[m.nodeid] += 1
    for m in measurements:
        record = session.tests.get(m.nodeid)
        budget = m.budget
        # A marker budget bounds the sum; on a single measurement the sum is that measurement.
        if (
            budget is None
            and record is not None
            and record.marker_max is not None
            and count_by_test[m.nodeid] == 1
        ):
            budget = record.marker_max
        rows.append(
            (
                m.display,
                format_flops(m.total),
                "-" if budget is None else format_flops(budget, exact=True),
                "-" if m.baseline is None else format_flops(m.baseline),
                _change(m),
            )
        )
    for nodeid, total in sums.items():
        record = session.tests.get(nodeid)
        if record is not None and record.marker_max is not None and count_by_test[nodeid] > 1:
            rows.append(
                (
                    f"{nodeid} (sum)",
                    format_flops(total),
                    format_flops(record.marker_max, exact=True),
                    "-",
                    "-",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def _change(m: Measurement) -> str:
    if m.status == Status.NEW:
        return "new"
    if m.status == Status.UNCHECKED:
        return "not compared"
    if m.status == Status.UNREADABLE:
        return "unreadable baseline"
    change = format_change(m.total, m.baseline or 0)
    if m.status == Status.INCREASED:
        return f"{change} (increased)"
    if m.status == Status.IMPROVED:
        return f"{change} (improved)"
    return change


def _sums(measurements: list[Measurement]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for m in measurements:
        sums[m.nodeid] += m.total
    return dict(sums)

"""Two reports side by side: totals, the difference, and what changed per module and per op.

``fxflops diff SPEC_A SPEC_B`` (two models, or one model at two configs or inputs) prints it;
``--format markdown`` gives GitHub tables for a pull-request comment. Rows are the modules (to
``depth``) and ops whose FLOPs differ, largest change first; modules present on one side only show
``-`` on the other.
"""

from __future__ import annotations

from typing import Any

import tabulate as _tabulate  # type: ignore[import-untyped]

from fxflops.budget import format_change
from fxflops.report import FlopReport
from fxflops.units import format_flops

HEADERS = ["A", "B", "change", "relative"]


def _change(a: int | None, b: int | None) -> tuple[str, str]:
    before, after = a or 0, b or 0
    relative = format_change(after, before) if before else ("new" if after else "-")
    return f"{after - before:+,}", relative


def _cell(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def changed_rows(a: dict[str, int], b: dict[str, int]) -> list[list[str]]:
    """``[name, A, B, change, relative]`` for every key whose value differs, largest change first."""
    names = [n for n in dict.fromkeys([*a, *b]) if a.get(n) != b.get(n)]
    names.sort(key=lambda n: -abs((b.get(n) or 0) - (a.get(n) or 0)))
    return [[n, _cell(a.get(n)), _cell(b.get(n)), *_change(a.get(n), b.get(n))] for n in names]


def diff_text(a: FlopReport, b: FlopReport, label_a: str, label_b: str, *, depth: int | None = 2,
              fmt: str = "table") -> str:
    """The diff of ``a`` and ``b`` (``fmt``: ``"table"`` or ``"markdown"``)."""
    for report in (a, b):
        if not isinstance(report.total, int):
            raise ValueError("a symbolic report has no single total: evaluate it at concrete sizes first")
    if a.convention != b.convention:
        raise ValueError(f"the reports use different conventions ({a.convention!r}, {b.convention!r}): "
                         "compare counts made under one convention")
    delta, relative = _change(a.total, b.total)
    markdown = fmt == "markdown"
    tablefmt = "github" if markdown else "simple"

    def table(name: str, rows: list[list[str]]) -> str:
        if not rows:
            return f"no {name} changed\n"
        if markdown:
            rows = [[f"`{row[0]}`" if row[0] else "(total)", *row[1:]] for row in rows]
        else:
            rows = [[row[0] or "(total)", *row[1:]] for row in rows]
        return str(_tabulate.tabulate(rows, headers=[name, *HEADERS], tablefmt=tablefmt, disable_numparse=True,
                                      colalign=("left", "right", "right", "right", "right"))) + "\n"

    lines = [
        f"A: {label_a} ({a.model}): {format_flops(a.total)} ({a.total:,} FLOPs)",
        f"B: {label_b} ({b.model}): {format_flops(b.total)} ({b.total:,} FLOPs)",
        f"difference: {delta} FLOPs ({relative}), params {b.params - a.params:+,}; {a.unit}, convention "
        f"{a.convention!r}",
    ]
    if markdown:
        lines = [f"- {line}" for line in lines]
    head = "\n".join(lines) + "\n\n"
    modules = table("module", changed_rows(a.by_module(depth), b.by_module(depth)))
    ops = table("op", changed_rows(_ops(a), _ops(b)))
    return head + modules + "\n" + ops


def _ops(report: FlopReport) -> dict[str, Any]:
    return {op: flops for op, flops in report.by_op().items() if flops}

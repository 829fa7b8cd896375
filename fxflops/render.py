"""Text tables of a FlopReport (tabulate), by module, op, node or category.

tabulate's module-level ``PRESERVE_WHITESPACE`` is saved and restored around every call, never
left changed (torch's ``FlopCounterMode.get_table`` sets it for good).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import tabulate as _tabulate

from fxflops.units import format_flops

if TYPE_CHECKING:
    from fxflops.report import FlopReport

BY_CHOICES = ("module", "op", "node", "category")


@contextlib.contextmanager
def _preserve_whitespace() -> Iterator[None]:
    saved = _tabulate.PRESERVE_WHITESPACE
    _tabulate.PRESERVE_WHITESPACE = True
    try:
        yield
    finally:
        _tabulate.PRESERVE_WHITESPACE = saved


def _share(flops: Any, total: Any) -> str:
    if not isinstance(flops, int) or not isinstance(total, int):
        return "-"  # symbolic counts: the share depends on the sizes
    return f"{100.0 * flops / total:.1f}%" if total else "-"


def _human(flops: Any) -> str:
    return format_flops(flops) if isinstance(flops, int) else f"{flops} FLOPs"


def _exact(flops: Any) -> str:
    return f"{flops:,}" if isinstance(flops, int) else str(flops)


def module_rows(report: FlopReport, depth: int | None) -> list[list[str]]:
    """Module tree rows (indented names, class names, FLOPs, exact FLOPs, share), depth-first in
    graph order: the same rows as ``fxflops count`` prints (:func:`fxflops.output.module_tree_rows`)."""
    from fxflops.output import module_tree_rows

    types = dict(report.module_types)
    for record in report.nodes:
        if record.module:
            types.setdefault(record.module, record.module_type)
    types[""] = report.model.split(".", 1)[0]
    return module_tree_rows(report, depth, types)


_GROUP_ALIGN = ("left", "right", "right", "right")


def render_table(report: FlopReport, by: str = "module", depth: int | None = 2, fmt: str = "simple",
                 top: int | None = None) -> str:
    """The rows of ``report`` grouped ``by`` module, op, node or category, as a tabulate table."""
    total = report.total
    if by == "module":
        from fxflops.output import _MODULE_ALIGN, MODULE_HEADERS

        headers = MODULE_HEADERS
        rows = module_rows(report, depth)
    elif by == "op":
        headers = ["op", "FLOPs", "exact", "share"]
        rows = [[op, _human(f), _exact(f), _share(f, total)] for op, f in report.by_op().items()]
    elif by == "category":
        headers = ["category", "FLOPs", "exact", "share"]
        rows = [[c, _human(f), _exact(f), _share(f, total)] for c, f in report.by_category().items()]
    elif by == "node":
        headers = ["node", "op", "target", "module", "output shape", "FLOPs", "rule"]
        rows = [
            [r.name, r.op, r.target, r.module, "x".join(map(str, r.output_shapes[0])) if r.output_shapes else "",
             _exact(r.total_flops), (r.rule or "NO RULE").rsplit(".", 1)[-1]]
            for r in report.nodes
            if r.op not in ("placeholder", "output", "get_attr")
        ]
    else:
        raise ValueError(f"cannot group a report by {by!r}; expected one of {', '.join(BY_CHOICES)}")
    if top is not None:
        rows = rows[:top]
    # tabulate >= 0.10 takes preserve_whitespace per call and ignores the module global.
    extra: dict[str, Any] = ({"preserve_whitespace": True}
                             if "preserve_whitespace" in inspect.signature(_tabulate.tabulate).parameters else {})
    if by == "module":
        extra["colalign"] = _MODULE_ALIGN  # numbers right-aligned, as the CLI prints them
    elif by in ("op", "category"):
        extra["colalign"] = _GROUP_ALIGN
    with _preserve_whitespace():
        return _tabulate.tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True, **extra)

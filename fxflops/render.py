"""The rows of a FlopReport, and the one text table they are printed in.

Every text view of a report is built here: ``report.table()``, the ``fxflops count`` output (its
module tree and top ops), the HTML page's tables and the budget failure's cells all take their rows
and cells from these functions, so a column, an order or a number format is changed in one place.

* cells: :func:`human` (``41.09 GFLOPs``), :func:`exact` (``41,086,447,616``), :func:`share`
  (``12.5%``); a symbolic count prints its formula and has no share;
* rows: :func:`module_rows` (the indented module tree, depth-first in graph order), and
  :func:`group_rows` for any grouping (module, op, category or node) with its headers and alignment;
* the table: :func:`tabulate_rows`, tabulate with the tree's indentation kept and numbers right-aligned.

tabulate's module-level ``PRESERVE_WHITESPACE`` is saved and restored around every call, never
left changed (torch's ``FlopCounterMode.get_table`` sets it for good).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import tabulate as _tabulate  # type: ignore[import-untyped]

from fxflops.units import format_flops

if TYPE_CHECKING:
    from fxflops.report import FlopReport

BY_CHOICES = ("module", "op", "node", "category")

#: The module tree's columns, and their alignment (numbers right-aligned, so digits line up).
MODULE_HEADERS = ["module", "type", "output shape", "params", "FLOPs", "exact", "share"]
MODULE_ALIGN = ("left", "left", "left", "right", "right", "right", "right")
#: An op's or a category's columns.
GROUP_HEADERS = ["FLOPs", "exact", "share"]
GROUP_ALIGN = ("left", "right", "right", "right")
NODE_HEADERS = ["node", "op", "target", "module", "output shape", "FLOPs", "rule"]


# -- cells --------------------------------------------------------------------------------------


def share(flops: Any, total: Any) -> str:
    """``12.5%`` of ``total``; ``-`` for a zero total or a symbolic count (its share depends on the sizes)."""
    if not isinstance(flops, int) or not isinstance(total, int):
        return "-"
    return f"{100.0 * flops / total:.1f}%" if total else "-"


def human(flops: Any) -> str:
    """``41.09 GFLOPs``, or a symbolic count's formula."""
    return format_flops(flops) if isinstance(flops, int) else f"{flops} FLOPs"


def exact(flops: Any) -> str:
    """``41,086,447,616``, or a symbolic count's formula."""
    return f"{flops:,}" if isinstance(flops, int) else str(flops)


def output_shapes(shapes: Sequence[Sequence[Any]], shown: int = 2) -> str:
    """``1x64x56x56``; several outputs comma-separated, the first ``shown`` of them."""
    text = ", ".join("x".join(map(str, shape)) for shape in list(shapes)[:shown])
    return text + (f", +{len(shapes) - shown}" if len(shapes) > shown else "")


# -- rows ---------------------------------------------------------------------------------------


def module_tree(report: FlopReport, depth: int | None) -> list[str]:
    """Module names to ``depth``, depth-first, children in the order the graph first reaches them."""
    totals = report.by_module(depth)
    children: dict[str, list[str]] = {"": []}
    for record in report.nodes:
        parts = record.module.split(".") if record.module else []
        for level in range(1, len(parts) + 1):
            name = ".".join(parts[:level])
            if name not in children:
                children[name] = []
                children[".".join(parts[: level - 1])].append(name)
    ordered: list[str] = []
    stack = [""]
    while stack:
        name = stack.pop()
        if name in totals:
            ordered.append(name)
        stack.extend(reversed(children.get(name, [])))
    return ordered


def module_classes(report: FlopReport, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """Module path -> class name: ``known`` (from ``model.named_modules()``) or the report's own, then
    the class of each module that owns nodes; the root is named after the model."""
    types = dict(known if known is not None else report.module_types)
    for record in report.nodes:
        if record.module:
            types.setdefault(record.module, record.module_type)
    types.setdefault("", report.model.split(".", 1)[0])
    return types


def module_rows(report: FlopReport, depth: int | None, types: Mapping[str, str] | None = None) -> list[list[str]]:
    """Rows of the indented module tree (:data:`MODULE_HEADERS`): name, type, output shape(s),
    parameters (submodules included), FLOPs, exact FLOPs, share of the total."""
    types = module_classes(report) if types is None else types
    totals = report.by_module(depth)
    rows = []
    for name in module_tree(report, depth):
        flops = totals[name]
        label = "  " * (name.count(".") + 1) + name.rsplit(".", 1)[-1] if name else "(total)"
        params = report.module_params.get(name)
        rows.append([label, types.get(name, ""), output_shapes(report.module_outputs.get(name, ())),
                     f"{params:,}" if params is not None else "", human(flops), exact(flops),
                     share(flops, report.total)])
    return rows


def total_rows(totals: Mapping[str, Any], total: Any, nonzero: bool = False) -> list[list[str]]:
    """One row per op or category: name, FLOPs, exact FLOPs, share (``nonzero``: free ones left out)."""
    return [[name, human(f), exact(f), share(f, total)] for name, f in totals.items() if f or not nonzero]


def node_rows(report: FlopReport) -> list[list[str]]:
    """One row per computing node (:data:`NODE_HEADERS`), in graph order; ``NO RULE`` where none matched."""
    return [[r.name, r.op, r.target, r.module, "x".join(map(str, r.output_shapes[0])) if r.output_shapes else "",
             exact(r.total_flops), (r.rule or "NO RULE").rsplit(".", 1)[-1]]
            for r in report.nodes if r.op not in ("placeholder", "output", "get_attr")]


def group_rows(report: FlopReport, by: str, depth: int | None = 2, module_types: Mapping[str, str] | None = None,
               nonzero: bool = False) -> tuple[list[str], list[list[str]], tuple[str, ...] | None]:
    """``(headers, rows, alignment)`` of the report grouped ``by`` module, op, category or node."""
    if by == "module":
        return MODULE_HEADERS, module_rows(report, depth, module_classes(report, module_types)), MODULE_ALIGN
    if by == "op":
        return ["op", *GROUP_HEADERS], total_rows(report.by_op(), report.total, nonzero), GROUP_ALIGN
    if by == "category":
        return ["category", *GROUP_HEADERS], total_rows(report.by_category(), report.total, nonzero), GROUP_ALIGN
    if by == "node":
        return NODE_HEADERS, node_rows(report), None
    raise ValueError(f"cannot group a report by {by!r}; expected one of {', '.join(BY_CHOICES)}")


# -- the table ----------------------------------------------------------------------------------


def tabulate_rows(rows: Sequence[Sequence[Any]], headers: Sequence[str], align: Sequence[str] | None = None,
                  fmt: str = "simple") -> str:
    """tabulate, keeping the leading spaces that indent the module tree and every cell as text.

    tabulate >= 0.10 takes ``preserve_whitespace=``; older versions only read the module global,
    which is set for this call and restored.
    """
    extra: dict[str, Any] = {} if align is None else {"colalign": tuple(align)}
    if "preserve_whitespace" in inspect.signature(_tabulate.tabulate).parameters:
        return str(_tabulate.tabulate(rows, headers=list(headers), tablefmt=fmt, disable_numparse=True,
                                      preserve_whitespace=True, **extra))
    saved = _tabulate.PRESERVE_WHITESPACE
    _tabulate.PRESERVE_WHITESPACE = True
    try:
        return str(_tabulate.tabulate(rows, headers=list(headers), tablefmt=fmt, disable_numparse=True, **extra))
    finally:
        _tabulate.PRESERVE_WHITESPACE = saved


def render_table(report: FlopReport, by: str = "module", depth: int | None = 2, fmt: str = "simple",
                 top: int | None = None, module_types: Mapping[str, str] | None = None,
                 nonzero: bool = False) -> str:
    """The rows of ``report`` grouped ``by`` module, op, node or category, as a tabulate table
    (the first ``top`` rows; ``nonzero``: ops and categories that cost nothing left out)."""
    headers, rows, align = group_rows(report, by, depth, module_types, nonzero)
    if top is not None:
        rows = rows[:top]
    return tabulate_rows(rows, headers, align, fmt)

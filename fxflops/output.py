"""What the CLI prints: a report, the zoo table and the rule list, as table, JSON, CSV or Markdown.

Text tables are for people (SI-prefixed FLOPs next to exact counts); JSON and CSV are for programs
(exact integers only). JSON output always carries ``"format"``, so readers can check the schema.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import tabulate as _tabulate  # type: ignore[import-untyped]

from fxflops.render import exact as _exact
from fxflops.render import human as _human
from fxflops.render import module_tree, render_table, tabulate_rows
from fxflops.render import share as _share
from fxflops.units import format_flops

if TYPE_CHECKING:
    from fxflops.registry import RuleEntry, RuleRegistry
    from fxflops.report import FlopReport

#: Version of the JSON written by ``fxflops zoo`` and ``fxflops rules``.
LIST_FORMAT = 1

#: How many ops the default ``count`` table lists under the module tree.
TOP_OPS = 10


# -- count --------------------------------------------------------------------------------------


def _params(count: int) -> str:
    return f"{count / 1e6:,.2f} M  ({count:,})" if count >= 1_000_000 else f"{count:,}"


def summary_lines(report: FlopReport, *, spec: str, inputs: str) -> list[str]:
    """The head of a ``count`` table: total, unit and convention, params and inputs."""
    macs = f", {_exact(report.macs)} MACs" if report.macs else ""
    total = (f"{format_flops(report.total)}  ({report.total:,} FLOPs{macs})" if isinstance(report.total, int)
             else f"{report.formula()} FLOPs  (symbolic in {', '.join(report.symbols)}{macs})")
    lines = [
        f"{spec} ({report.model})",
        f"total:   {total}",
        f"params:  {_params(report.params)}" + (
            f", active per token {_params(report.active_params)}" if report.active_params is not None else ""),
        f"inputs:  {inputs}",
        f"unit:    {report.convention_description or report.unit}",
    ]
    if report.includes_backward:
        lines.insert(2, f"passes:  forward {_exact(report.forward)} + backward {_exact(report.backward)} FLOPs")
    if report.routing is not None:
        from fxflops.routing import DESCRIPTIONS

        lines.append(f"routing: {DESCRIPTIONS[report.routing]}")
    if report.causal != "dense":
        lines.append(f"causal:  {report.causal} (attention counts only the scores a causal mask keeps)")
    if report.fallbacks:
        lines.append("traced:  " + "; ".join(f"{m or '(whole model)'}: {why}"
                                             for m, why in list(report.fallbacks.items())[:3])
                     + (f"; and {len(report.fallbacks) - 3} more" if len(report.fallbacks) > 3 else ""))
    return lines


def uncounted_note(report: FlopReport) -> str | None:
    """A warning naming the nodes that had no rule, or ``None`` when every node was counted."""
    records = report.uncounted
    if not records:
        return None
    shown = ", ".join(f"{r.name} ({r.target})" for r in records[:5])
    more = f" and {len(records) - 5} more" if len(records) > 5 else ""
    return (f"warning: {len(records)} node{'s' if len(records) != 1 else ''} had no FLOP rule, so the total "
            f"is a lower bound: {shown}{more}; --strict fails on them, --by node lists them")


def count_table(report: FlopReport, *, spec: str, inputs: str, by: str | None, depth: int | None,
                top: int | None, module_types: Mapping[str, str] | None = None) -> str:
    """The default ``count`` output: summary, then the module tree to ``depth``, then the top ops.

    With an explicit ``by``, the summary is followed by that one grouping instead. ``module_types``
    maps qualified module names to class names (from ``model.named_modules()``); without it, types
    are taken from the report, which only knows modules that own graph nodes directly.
    """
    parts = ["\n".join(summary_lines(report, spec=spec, inputs=inputs))]
    # The module tree is shown whole (``top`` cuts the other groupings and the top ops).
    parts.append(render_table(report, by=by or "module", depth=depth, top=None if by in (None, "module") else top,
                              module_types=module_types))
    if by is None:
        ops = render_table(report, by="op", top=top or TOP_OPS, nonzero=True)
        if any(report.by_op().values()):
            parts.append("top ops\n" + ops)
    note = uncounted_note(report)
    if note:
        parts.append(note)
    return "\n\n".join(parts) + "\n"


def count_json(report: FlopReport, *, spec: str, method: str, inputs: list[dict[str, Any]]) -> str:
    """``FlopReport.to_dict()`` (format 1) with what was counted: ``spec``, ``method``, ``inputs``."""
    data = report.to_dict()
    head = {"format": data.pop("format"), "spec": spec, "method": method, "inputs": inputs}
    return json.dumps({**head, **data}, indent=2) + "\n"


def grouping_rows(report: FlopReport, by: str, depth: int | None) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of one grouping, exact integers only (CSV and Markdown).

    Modules are listed by qualified name (``""`` is the whole model), so every row stands alone.
    """
    if by == "module":
        types = {r.module: r.module_type for r in report.nodes if r.module}
        types[""] = report.model
        return (["module", "type", "flops"],
                [[name, types.get(name, ""), flops] for name, flops in report.by_module(depth).items()])
    if by == "op":
        return ["op", "flops"], [[op, flops] for op, flops in report.by_op().items()]
    if by == "category":
        return ["category", "flops"], [[c, flops] for c, flops in report.by_category().items()]
    if by == "node":
        return (["node", "op", "target", "module", "output_shape", "flops", "rule", "category"],
                [[r.name, r.op, r.target, r.module, _shape(r.output_shapes), r.flops, r.rule or "",
                  r.category or ""]
                 for r in report.nodes if r.op not in ("placeholder", "output", "get_attr")])
    raise ValueError(f"cannot group a report by {by!r}")


def _shape(shapes: tuple[tuple[int, ...], ...]) -> str:
    return "x".join(map(str, shapes[0])) if shapes else ""


def count_markdown(report: FlopReport, by: str, depth: int | None, top: int | None = None) -> str:
    """One grouping as a GitHub Markdown table, with a human-readable FLOPs column and shares."""
    headers, rows = grouping_rows(report, by, depth)
    rows = rows[:top] if top else rows
    index = headers.index("flops")
    headers = [*headers[:index], "FLOPs", "exact", "share", *headers[index + 1:]]
    rows = [[*row[:index], _human(row[index]), _exact(row[index]), _share(row[index], report.total),
             *row[index + 1:]] for row in rows]
    if by == "module":
        rows = [[f"`{row[0]}`" if row[0] else "(total)", *row[1:]] for row in rows]
    return str(_tabulate.tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)) + "\n"


def to_csv(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV text with ``\\n`` line ends (the csv module's default ``\\r\\n`` shows up in diffs)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


# -- zoo ----------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    # 2 decimals always ("92.30", not "92.3"), as OpenCLIP's table prints them.
    return f"{value:.2f}" if isinstance(value, float) else value


def zoo_output(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str, *,
               failures: Sequence[Any] = (), versions: dict[str, str] | None = None) -> str:
    """The zoo rows as ``table``, ``csv``, ``markdown`` or ``json`` (JSON also lists failures)."""
    if fmt == "json":
        data = {
            "format": LIST_FORMAT,
            "columns": list(columns),
            "rows": rows,
            "failures": [{"model": f.model, "stage": f.stage, "reason": f.reason, "hint": f.hint}
                         for f in failures],
            "versions": versions or {},
        }
        return json.dumps(data, indent=2) + "\n"
    table = [[_cell(row[column]) for column in columns] for row in rows]
    if fmt == "csv":
        return to_csv(columns, table)
    tablefmt = "github" if fmt == "markdown" else "simple"
    align = ("left",) + ("right",) * (len(columns) - 1)  # model name, then numbers
    text = _tabulate.tabulate(table, headers=list(columns), tablefmt=tablefmt, disable_numparse=True,
                              colalign=align)
    return str(text) + "\n"


# -- rules --------------------------------------------------------------------------------------


RULE_COLUMNS = ("target", "rule", "category", "where")


def rule_rows(registry: RuleRegistry, pattern: str | None = None) -> list[dict[str, str]]:
    """One row per registered target: its readable name, rule, category and definition site.

    ``pattern`` keeps rows whose target, rule or category contains it (case-insensitive).
    """
    from fxflops.registry import describe_target

    rows = [{"target": describe_target(entry.target), "rule": entry.name, "category": entry.category,
             "where": _where(entry)} for entry in registry]
    if pattern:
        needle = pattern.lower()
        rows = [row for row in rows
                if any(needle in row[key].lower() for key in ("target", "rule", "category"))]
    return sorted(rows, key=lambda row: (row["category"], row["target"]))


def _where(entry: RuleEntry) -> str:
    where = entry.where
    # Paths under the current directory are shown relative: shorter, and the same on every machine
    # for a checkout; others (site-packages) stay absolute so they can be opened.
    path, sep, line = where.rpartition(":")
    if sep and os.path.isabs(path):
        try:
            relative = os.path.relpath(path)
        except ValueError:  # another drive on Windows
            return where
        if not relative.startswith(".."):
            return f"{relative}:{line}"
    return where


def rules_output(rows: list[dict[str, str]], fmt: str) -> str:
    """The rule list as ``table``, ``csv``, ``markdown`` or ``json``."""
    if fmt == "json":
        return json.dumps({"format": LIST_FORMAT, "rules": rows}, indent=2) + "\n"
    if fmt == "csv":
        return to_csv(RULE_COLUMNS, ([row[c] for c in RULE_COLUMNS] for row in rows))
    tablefmt = "github" if fmt == "markdown" else "simple"
    table = [[row[c] for c in RULE_COLUMNS] for row in rows]
    return str(_tabulate.tabulate(table, headers=list(RULE_COLUMNS), tablefmt=tablefmt,
                                  disable_numparse=True)) + "\n"


ROOFLINE_HEADERS = ["module", "FLOPs", "bytes", "FLOPs/byte", "time", "bound"]
_ROOFLINE_ALIGN = ("left", "right", "right", "right", "right", "left")


def format_bytes(count: Any) -> str:
    """``15.04 GB``: decimal prefixes, as bandwidths are quoted (3.35 TB/s)."""
    if not isinstance(count, int):
        return f"{count} B"
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f} {prefix}B"
    return f"{count} B"


def roofline_table(report: FlopReport, line: Any, depth: int | None) -> str:
    """The module tree to ``depth`` with bytes moved, arithmetic intensity, roofline time and bound,
    then the accelerator, the traffic convention and the one-line summary (``line`` is a
    :class:`fxflops.roofline.Roofline` of ``report``)."""
    from fxflops.roofline import format_seconds

    flops = report.by_module(depth)
    moved = report.bytes_by_module(depth)
    seconds = line.by_module(depth)
    bounds = line.bound_by_module(depth)
    rows = []
    for name in module_tree(report, depth):
        label = "  " * (name.count(".") + 1) + name.rsplit(".", 1)[-1] if name else "(total)"
        intensity = f"{flops[name] / moved[name]:.1f}" if moved.get(name) else "-"
        rows.append([label, _human(flops[name]), format_bytes(moved.get(name, 0)), intensity,
                     format_seconds(seconds.get(name, 0.0)), bounds.get(name, "-")])
    chip = line.accelerator
    peaks = ", ".join(f"{dtype} {peak / 1e12:g}" for dtype, peak in chip.peaks.items())
    header = (f"roofline on {chip.name}: dense TFLOP/s {peaks}; HBM {chip.bandwidth / 1e12:g} TB/s\n"
              "bytes: an upper bound of memory traffic (no cache, no fusion); time per node = "
              "max(FLOPs / peak, bytes / bandwidth); not validated against a GPU")
    table = tabulate_rows(rows, ROOFLINE_HEADERS, _ROOFLINE_ALIGN)
    return f"{header}\n\n{table}\n{line.summary()}\n"

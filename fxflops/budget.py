"""FLOP budgets: ``assert_flops`` for plain code, and the failure text shared with the pytest plugin.

Importing this module does not import torch; :func:`assert_flops` imports the counting engine when
it is called.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from fxflops.errors import FlopBudgetError
from fxflops.render import share as _share
from fxflops.units import format_count, format_flops, parse_flops

if TYPE_CHECKING:
    from fxflops.report import FlopReport

__all__ = [
    "TOP_MODULES",
    "assert_flops",
    "budget_exceeded_message",
    "format_change",
    "top_modules_lines",
    "uncounted_summary",
]

TOP_MODULES = 5
"""How many modules the failure section lists before summarising the rest."""

MODULE_DEPTH = 2
"""Depth of :meth:`FlopReport.by_module` used for the failure section."""


def assert_flops(
    model: Any,
    inputs: Any,
    *,
    max: str | int | float,
    kwargs: Mapping[str, Any] | None = None,
    rules: Any = None,
    **count_kwargs: Any,
) -> FlopReport:
    """Count ``model(*inputs, **kwargs)`` and raise if it needs more than ``max`` FLOPs.

    ``max`` is a budget such as ``"40 GFLOPs"``, ``"1.5e9"`` or an ``int`` (see
    :func:`fxflops.units.parse_flops`); it is parsed before the model is traced, so a malformed
    budget fails fast with :class:`~fxflops.units.FlopValueError`. Other keywords (``method``,
    ``leaf_modules``, ``strict``) go to :func:`fxflops.count`. A count equal to the budget passes.

    Returns the :class:`~fxflops.report.FlopReport`; raises :class:`fxflops.FlopBudgetError` (an
    ``AssertionError``) whose message starts with
    ``FLOP budget exceeded: measured 41.09 GFLOPs (41,086,447,616), budget 40 GFLOPs (+2.7%)``
    followed by the modules that cost the most.

    >>> import torch
    >>> from fxflops import assert_flops
    >>> report = assert_flops(torch.nn.Linear(8, 4), torch.randn(1, 8), max="64 FLOPs")
    >>> report.total
    64
    """
    budget = parse_flops(max)
    # Imported here so that ``import fxflops.budget`` (and the pytest plugin) stays torch-free.
    from fxflops.api import count

    report = count(model, inputs, kwargs=kwargs, rules=rules, **count_kwargs)
    if report.total > budget:
        raise FlopBudgetError(
            budget_exceeded_message(
                report.total,
                budget,
                report.by_module(depth=MODULE_DEPTH),
                uncounted=uncounted_summary(report.uncounted),
            )
        )
    return report


def format_change(new: int, old: int) -> str:
    """Return the signed relative change from ``old`` to ``new`` with one decimal: ``"+2.7%"``.

    A change from 0 is ``"+inf%"`` (or ``"+0.0%"`` when both are 0).
    """
    if old == 0:
        return "+0.0%" if new == 0 else "+inf%"
    return f"{(new - old) / old * 100:+.1f}%"


def budget_exceeded_message(
    measured: int,
    budget: int,
    modules: Mapping[str, int] | None = None,
    *,
    uncounted: str | None = None,
    title: str | None = None,
) -> str:
    """Return the full budget failure text: the headline, then the top-modules section.

    The headline is ``FLOP budget exceeded: measured <rounded> (<exact>), budget <budget> (+x%)``;
    the budget is printed exactly as a parseable string (``40 GFLOPs``). ``modules`` is a
    ``by_module(depth=2)`` mapping; ``uncounted`` a one-line summary of ops without a rule.
    ``title`` replaces the heading of the module section (the plugin names the measurement there).
    """
    lines = [
        f"FLOP budget exceeded: measured {format_flops(measured)} ({format_count(measured)}), "
        f"budget {format_flops(budget, exact=True)} ({format_change(measured, budget)})"
    ]
    if modules:
        lines.append("")
        lines.append(title or f"top modules (depth {MODULE_DEPTH}, FLOPs of each row's own ops):")
        lines.extend(top_modules_lines(modules, total=measured))
    if uncounted:
        lines.append(f"ops without a rule (counted as 0 FLOPs): {uncounted}")
    return "\n".join(lines)


def top_modules_lines(modules: Mapping[str, int], *, total: int, limit: int = TOP_MODULES) -> list[str]:
    """Return an aligned table of the modules that cost the most, most expensive first.

    ``modules`` maps qualified module names to *inclusive* FLOPs (as ``FlopReport.by_module``),
    ``""`` being the root. Inclusive counts overlap (``visual`` contains ``visual.transformer``), so
    each row shows the FLOPs of a module minus those of its listed descendants: the rows then add up
    to the total. Rows with 0 FLOPs are dropped; after ``limit`` rows the rest is summarised.
    """
    own = dict(modules)
    parents: set[str] = set()
    for name, flops in modules.items():
        ancestor = _nearest_listed_ancestor(name, modules) if name else None
        if ancestor is not None:
            own[ancestor] -= flops
            parents.add(ancestor)
    ranked = sorted(((name, flops) for name, flops in own.items() if flops > 0), key=lambda r: (-r[1], r[0]))
    shown, hidden = ranked[:limit], ranked[limit:]
    if not shown:
        return []
    rows = []
    for name, flops in shown:
        # A module with listed descendants keeps only the ops run directly in its own forward.
        label = f"{name} (own ops)" if name and name in parents else name or "(root)"
        rows.append((label, format_flops(flops), _share(flops, total)))
    width = max(len("module"), *(len(label) for label, _, _ in rows))
    flops_width = max(len("FLOPs"), *(len(text) for _, text, _ in rows))
    lines = [f"  {'module':<{width}}  {'FLOPs':>{flops_width}}  {'share':>6}"]
    lines += [f"  {label:<{width}}  {text:>{flops_width}}  {share:>6}" for label, text, share in rows]
    if hidden:
        rest = sum(flops for _, flops in hidden)
        lines.append(f"  ...and {len(hidden)} more ({format_flops(rest)}, {_share(rest, total)})")
    return lines


def uncounted_summary(records: Iterable[Any]) -> str | None:
    """Return ``"aten.erfinv x2, my_op"`` for the nodes that had no FLOP rule, or None if none.

    ``records`` are ``FlopReport.uncounted`` entries; each has a ``target``.
    """
    counts = Counter(_target_name(getattr(record, "target", record)) for record in records)
    if not counts:
        return None
    return ", ".join(
        name if n == 1 else f"{name} x{n}"
        for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _target_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if name is None:
        return str(target)
    return f"{module}.{name}" if module and module != "builtins" else name


def _nearest_listed_ancestor(name: str, modules: Mapping[str, int]) -> str | None:
    """Return the closest proper prefix of ``name`` (by dotted parts) present in ``modules``."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        candidate = ".".join(parts[:cut])
        if candidate in modules:
            return candidate
    return "" if "" in modules else None

"""The one counting step every front end shares: call a node's rule once, check its result, and
derive MACs and the backward formula from it.

Every front end (the torch.fx interpreter in :mod:`fxflops.counter`, the run-on-meta recorder in
:mod:`fxflops.recorder`, the torch.export path in :mod:`fxflops.export`) builds a
:class:`~fxflops.context.NodeContext` for a node and hands it here with the node's rule, so a
rule's result means the same thing whatever captured the node:

* the rule is called exactly once;
* its result must be a non-negative integer (``bool`` is refused, ``1.5`` and ``-5`` are errors),
  or a :class:`~fxflops.cost.Cost` whose fields are (a fused node: FLOPs ``matmul + extra``);
  on the symbolic path (``dynamic=``) a sympy polynomial in the user's symbols is accepted;
* MACs are a Cost's ``macs`` (``ctx.macs`` for rules that set it), else half the FLOPs of
  matmul-class categories (2 FLOPs per multiply-accumulate), else 0;
* the backward FLOPs come from the formula attached to the rule (:mod:`fxflops.backward`), and
  matmul-class backward work adds its MACs too.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

from fxflops.context import NodeContext
from fxflops.convention import MATMUL_CLASS
from fxflops.cost import Cost, half
from fxflops.errors import InputError, RuleError, TraceError
from fxflops.registry import RuleEntry


@dataclass(frozen=True)
class NodeCount:
    """What one node costs: forward FLOPs, MACs (forward and backward) and backward FLOPs."""

    flops: Any = 0
    macs: Any = 0
    backward: Any = 0


ZERO_COUNT = NodeCount()


def count_node(
    entry: RuleEntry,
    ctx: NodeContext,
    *,
    backward: bool = False,
    symbols: Mapping[Any, Any] | None = None,
    where: Callable[[str, str], str],
) -> NodeCount:
    """Count one node with its rule (see the module docstring for the contract).

    ``where(problem, hint)`` formats an error naming the node, its module and its source line;
    it is called only when something is wrong. ``symbols`` is given on the symbolic path only.
    """
    try:
        raw = entry.rule(ctx)
    except RuleError:
        raise
    except InputError as e:
        if "\n  node: " in str(e):
            raise
        raise InputError(where(str(e), "give the op operands of one dtype (e.g. x.to(model.dtype), or build the "
                               "model in the input's dtype), or count under torch.autocast")) from None
    except Exception as e:
        raise RuleError(where(f"the rule {entry.name} raised {type(e).__name__}: {e}",
                              f"input shapes {ctx.input_shapes}; fix the rule or override it with "
                              "rules={...}")) from e
    macs = ctx.macs
    if isinstance(raw, Cost):  # a fused node: its FLOPs by kind, its MACs those of the matmul part
        matmul = _checked(raw.matmul, entry, symbols, where, what="matmul FLOPs (Cost.matmul)")
        flops = matmul + _checked(raw.extra, entry, symbols, where, what="extra FLOPs (Cost.extra)")
        macs = raw.macs if raw.macs is not None else half(matmul)
        what = "MACs (Cost.macs)"
    else:
        flops = _checked(raw, entry, symbols, where)
        what = "MACs (ctx.macs)"
    if macs is not None:
        macs = _checked(macs, entry, symbols, where, what=what)
    matmul_class = entry.category in MATMUL_CLASS
    if macs is None:
        macs = half(flops) if matmul_class else 0
    backward_count: Any = 0
    if backward:
        from fxflops.backward import backward_flops, backward_rule

        if matmul_class and backward_rule(entry) is None:
            raise RuleError(where(
                f"the rule {entry.name} ({entry.category}) has no backward formula: its gradients would count 0",
                "give it one, fxflops.rule(target, category=..., backward=lambda ctx, forward: 2 * forward) "
                "(or rule_of(fn, category, backward=...)), or backward=fxflops.NO_BACKWARD if it has none"))
        try:
            backward_count = _checked(backward_flops(entry, ctx, flops), entry, symbols, where,
                                      what="backward FLOPs")
        except RuleError:
            raise
        except Exception as e:
            raise RuleError(where(f"the backward formula of {entry.name} raised {type(e).__name__}: {e}",
                                  "count without backward=True, or override the rule with rules={...}")) from e
        if matmul_class:
            macs = macs + half(backward_count)
    return NodeCount(flops=flops, macs=macs, backward=backward_count)


def _checked(value: Any, entry: RuleEntry, symbols: Mapping[Any, Any] | None,
             where: Callable[[str, str], str], what: str = "FLOPs") -> Any:
    """``value`` as a non-negative int (or, with ``symbols``, a sympy polynomial)."""
    if symbols is not None:
        from fxflops.symbolic import to_count

        value = to_count(value, symbols)
        if not isinstance(value, int):
            return value  # a polynomial in the user's symbols
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, bool):
                raise TypeError
            value = operator.index(value)
        except GuardOnDataDependentSymNode:
            # torch.export left a size symbolic because it depends on tensor values (x[mask],
            # nonzero): a TraceError, so that count(trace="auto") runs the model with its data.
            raise TraceError(where(f"the {what} of this node depend on tensor values (a size torch.export "
                                   f"left symbolic: {value})",
                                   "count with trace='run' (it reads the values the inputs carry), or pass "
                                   "the inputs on the CPU with their real data")) from None
        except TypeError:
            kind = type(value).__name__
            article = "an" if kind[:1].lower() in "aeiou" else "a"
            raise RuleError(where(f"the rule {entry.name} returned {value!r} ({article} {kind}) as {what}",
                                  "return a non-negative Python int")) from None
    if value < 0:
        raise RuleError(where(f"the rule {entry.name} returned {value} {what}", f"{what} cannot be negative"))
    return int(value)

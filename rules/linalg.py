"""Dense linear algebra beyond products: triangular solves. Counted under a convention that counts
``linalg`` (``"full"``); 0 under ``"default"``, as FlopCounterMode counts them.

``torch.linalg.solve_triangular(A, B)`` with ``A`` of ``n x n`` and ``k`` right-hand sides (``B``
of ``n x k``, or ``k x n`` with ``left=False``): substitution costs, per right-hand side,
``n(n-1)/2`` multiplies and as many adds plus ``n`` divides, ``n^2`` FLOPs (``n^2 - n`` when
``unitriangular``: no divides); times the batch. Linear-attention layers (Qwen3-Next's gated delta
rule, OLMo hybrids) solve one per chunk.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fxflops.context import NodeContext
from fxflops.registry import DEFAULT_REGISTRY

from .by_convention import named_arg


def solve_triangular_flops(ctx: NodeContext) -> Any:
    """``batch * k * n^2`` (``n^2 - n`` per right-hand side when ``unitriangular``)."""
    a, b = ctx.tensor("A"), ctx.tensor("B")
    if a is None:
        a = ctx.tensor("input")
    if b is None:
        b = ctx.tensor("other")
    if a is None or b is None:
        raise ValueError("solve_triangular needs the matrix A and the right-hand sides B")
    n = int(a.shape[-1])
    left = named_arg(ctx, "left", default=True)
    rhs = int(b.shape[-1]) if left else int(b.shape[-2])
    batch = math.prod(int(s) for s in (b.shape[:-2] if b.dim() >= a.dim() else a.shape[:-2]))
    per_rhs = n * n - (n if named_arg(ctx, "unitriangular", default=False) else 0)
    return ctx.convention.constant("linalg", 1) * batch * rhs * per_rhs


DEFAULT_REGISTRY.add(torch.linalg.solve_triangular, solve_triangular_flops, category="linalg")
if hasattr(torch.ops.aten, "linalg_solve_triangular"):
    DEFAULT_REGISTRY.add(torch.ops.aten.linalg_solve_triangular, solve_triangular_flops, category="linalg")

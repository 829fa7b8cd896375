"""Mixture-of-experts: grouped matrix multiplies (``F.grouped_mm``, ``torch._grouped_mm``).

Hugging Face's default experts implementation sorts the ``S`` (token, expert) pairs by expert
and multiplies each expert's rows by that expert's weights in one grouped GEMM. Its cost does not
depend on the routing: every pair goes through exactly one expert, so

* ``a (M, K)`` against ``b (G, K, N)`` (rows grouped by ``offs``): ``2 * M * K * N``;
* ``a (G, M, K)`` against ``b (G, K, N)``: ``2 * G * M * K * N``;
* ``a (M, K)`` against ``b (K, N)`` grouped along ``K`` (weight gradients): ``2 * M * K * N``.

Rows beyond ``offs[-1]`` (expert-parallel sentinels) are counted: on meta tensors ``offs`` has
no value, and without sentinels ``offs[-1] == M``. ``torch.histc`` (tokens per expert) and the
sort and gathers around the GEMMs are index bookkeeping: 0 FLOPs.

The meta kernels of these ops accept only bfloat16 (they mirror the CUDA kernels); the output
function below gives their output from shapes for any dtype, so an fp32 MoE counts on meta.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fxflops.context import NodeContext
from fxflops.registry import DEFAULT_REGISTRY

from .by_convention import named_arg


def operands(ctx: NodeContext) -> tuple[torch.Tensor, torch.Tensor]:
    """The two matrices of a grouped matmul, however passed and named (F.grouped_mm's mat_a/mat_b,
    torch._grouped_mm's input/mat2, aten's self/mat2)."""
    def given(position: int, names: tuple[str, ...]) -> torch.Tensor:
        if len(ctx.args) > position:
            return ctx.args[position]
        return next(ctx.kwargs[n] for n in names if n in ctx.kwargs)

    return given(0, ("mat_a", "input", "self")), given(1, ("mat_b", "mat2"))


def grouped_mm_flops(ctx: NodeContext) -> int:
    """``2 * M * K * N`` per group layout (module docstring); bias adds are not counted."""
    a, b = operands(ctx)
    if a.dim() == 3 and b.dim() == 3:
        groups, rows, inner = a.shape
        return 2 * groups * rows * inner * b.shape[-1]
    if a.dim() == 2 and b.dim() == 3:
        rows, inner = a.shape
        return 2 * rows * inner * b.shape[-1]
    if a.dim() == 2 and b.dim() == 2:
        rows, inner = a.shape
        return 2 * rows * inner * b.shape[-1]
    # a (G, M, K) against a 2-D b sliced by offs: every row of a meets its group's columns once
    groups, rows, inner = a.shape
    return 2 * groups * rows * inner * b.shape[-1] // max(1, groups)


def grouped_mm_output(ctx: NodeContext) -> Any:
    """The output of a grouped matmul from its operands' shapes (module docstring)."""
    a, b = operands(ctx)
    dtype = named_arg(ctx, "out_dtype", default=None) or a.dtype
    if a.dim() == 2 and b.dim() == 3:
        shape: tuple[int, ...] = (a.shape[0], b.shape[-1])
    elif a.dim() == 3 and b.dim() == 3:
        shape = (a.shape[0], a.shape[1], b.shape[-1])
    elif a.dim() == 2 and b.dim() == 2:
        offs = named_arg(ctx, "offs", default=None)
        groups = offs.shape[0] if isinstance(offs, torch.Tensor) else 1
        shape = (groups, a.shape[0], b.shape[-1])
    else:
        shape = (a.shape[1], b.shape[-1])
    return torch.empty(shape, dtype=dtype, device="meta")


_TARGETS: list[Any] = [getattr(F, "grouped_mm", None), getattr(torch, "_grouped_mm", None)]
for _target in [t for t in _TARGETS if t is not None]:
    DEFAULT_REGISTRY.add(_target, grouped_mm_flops, category="matmul", output=grouped_mm_output)
if hasattr(torch.ops.aten, "_grouped_mm"):
    DEFAULT_REGISTRY.add(torch.ops.aten._grouped_mm, grouped_mm_flops, category="matmul")

# Tokens per expert: bookkeeping for the grouped GEMM.
DEFAULT_REGISTRY.zero(torch.histc, "histc", torch.bincount, "bincount")
if hasattr(torch.ops.aten, "histc"):
    DEFAULT_REGISTRY.zero(torch.ops.aten.histc)

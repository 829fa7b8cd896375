"""Linear layers and matrix products: 2 FLOPs per multiply-accumulate, bias adds not counted.

For a product whose output has ``numel(out)`` elements, each a dot product of length ``k``, the
cost is ``2 * numel(out) * k``. This holds with broadcasting on either side, because the
broadcast batch dimensions are part of the output (as torch's kernels run them after ``expand``).
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import nn

from fxflops.context import NodeContext
from fxflops.registry import rule


@rule(nn.Linear, F.linear, category="matmul")
def linear_flops(ctx: NodeContext) -> int:
    """y = x W^T + b: ``2 * numel(y) * in_features``; the bias add is not counted."""
    x = ctx.tensor("input", 0)
    if x is None:
        raise ValueError("linear without a tensor input")
    in_features = x.shape[-1] if x.dim() > 0 else 1
    return 2 * ctx.output_numel * in_features


@rule(nn.Bilinear, F.bilinear, category="matmul")
def bilinear_flops(ctx: NodeContext) -> int:
    """y_k = x1^T A_k x2 + b_k: ``2 * numel(y) * in1 * in2`` (torch computes it as one contraction)."""
    x1, x2 = ctx.tensor("input1", 0), ctx.tensor("input2", 1)
    if x1 is None or x2 is None:
        raise ValueError("bilinear needs two tensor inputs")
    return 2 * ctx.output_numel * x1.shape[-1] * x2.shape[-1]


@rule(torch.matmul, operator.matmul, torch.Tensor.matmul, "__matmul__", "__rmatmul__", category="matmul")
def matmul_flops(ctx: NodeContext) -> int:
    """a @ b with torch.matmul's broadcasting and 1-D rules: ``2 * numel(out) * k``.

    ``k`` is the contracted size, ``a.shape[-1]``. A 1-D operand contributes no output dimension,
    so 1-D @ 1-D costs ``2 * k``, (n, k) @ (k,) costs ``2 * n * k``.
    """
    a, b = ctx.args[0], ctx.args[1]
    if ctx.node.target == "__rmatmul__":
        a, b = b, a
    k = a.shape[-1]
    return 2 * max(ctx.output_numel, 1) * k


@rule(torch.mm, torch.Tensor.mm, torch.bmm, torch.Tensor.bmm, category="matmul")
def mm_flops(ctx: NodeContext) -> int:
    """(b, n, k) @ (b, k, m), or without b: ``2 * b * n * k * m`` = ``2 * numel(out) * k``."""
    a = ctx.args[0]
    return 2 * ctx.output_numel * a.shape[-1]


@rule(torch.addmm, torch.Tensor.addmm, torch.baddbmm, torch.Tensor.baddbmm, category="matmul")
def addmm_flops(ctx: NodeContext) -> int:
    """beta * c + alpha * (a @ b): the product only, ``2 * numel(out) * k``; scaling and add free."""
    a = ctx.tensor("mat1", 1)
    if a is None:
        a = ctx.tensor("batch1", 1)
    if a is None:
        raise ValueError("addmm/baddbmm without matrix operands")
    return 2 * ctx.output_numel * a.shape[-1]


@rule(torch.addbmm, torch.Tensor.addbmm, category="matmul")
def addbmm_flops(ctx: NodeContext) -> int:
    """c + sum_b a_b @ b_b for (B, n, k) @ (B, k, m): ``2 * B * n * k * m`` (the sum over b free)."""
    a = ctx.tensor("batch1", 1)
    b = ctx.tensor("batch2", 2)
    if a is None or b is None:
        raise ValueError("addbmm without batch operands")
    batch, n, k = a.shape
    return 2 * batch * n * k * b.shape[-1]


@rule(torch.mv, torch.Tensor.mv, torch.dot, torch.Tensor.dot, torch.vdot, torch.inner, category="matmul")
def matrix_vector_flops(ctx: NodeContext) -> int:
    """(n, k) @ (k,) or a dot product of length k: ``2 * numel(out) * k``."""
    a = ctx.args[0]
    return 2 * max(ctx.output_numel, 1) * a.shape[-1]


@rule(torch.einsum, category="matmul")
def einsum_flops(ctx: NodeContext) -> int:
    """Pairwise contractions in torch's order (left to right): each ``2 * prod(kept index sizes)``.

    torch.einsum first sums out indices that occur in one operand only (free: reductions), then
    contracts operands pairwise with bmm. A pairwise contraction of X and Y costs 2 FLOPs for each
    combination of the indices it iterates: those in both X and Y, and those of either that
    survive into the result (the output or a later operand).
    """
    equation = ctx.args[0]
    operands = ctx.args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return einsum_cost(equation, [tuple(t.shape) for t in operands])


def einsum_cost(equation: str, shapes: list[tuple[int, ...]]) -> int:
    """FLOPs of ``torch.einsum(equation, *operands)`` for operands of ``shapes`` (see einsum_flops)."""
    lhs, _, rhs = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum equation {equation!r} names {len(terms)} operands, got {len(shapes)}")
    sizes: dict[str, int] = {}
    subscripts: list[str] = []
    ellipsis_letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    max_ellipsis = 0
    for term, shape in zip(terms, shapes):
        if "..." in term:
            n_ellipsis = len(shape) - (len(term) - 3)
            max_ellipsis = max(max_ellipsis, n_ellipsis)
            letters = ellipsis_letters[26 - n_ellipsis:] if n_ellipsis else ""
            # Right-align ellipsis dims so broadcasting lines up across operands.
            term = term.replace("...", letters)
        subscripts.append(term)
        for letter, size in zip(term, shape):
            sizes[letter] = max(sizes.get(letter, 1), size)
    if not rhs and "->" not in equation:
        counts: dict[str, int] = {}
        for term in subscripts:
            for letter in term:
                counts[letter] = counts.get(letter, 0) + 1
        rhs = ellipsis_letters[26 - max_ellipsis:] if max_ellipsis else ""
        rhs += "".join(sorted(letter for letter, c in counts.items() if c == 1 and letter.islower()))
    else:
        rhs = rhs.replace("...", ellipsis_letters[26 - max_ellipsis:] if max_ellipsis else "")
    if len(subscripts) == 1:
        return 0  # a permutation, diagonal or reduction: no products
    total = 0
    current = set(subscripts[0])
    for position in range(1, len(subscripts)):
        other = set(subscripts[position])
        later = set(rhs).union(*[set(s) for s in subscripts[position + 1:]])
        # Indices of one side only that nobody needs later are summed out first, for free.
        left = {i for i in current if i in other or i in later}
        right = {i for i in other if i in current or i in later}
        iterated = left | right
        total += 2 * math.prod(sizes[i] for i in iterated)
        current = {i for i in iterated if i in later}
    return total

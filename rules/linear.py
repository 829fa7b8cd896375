"""Linear layers and matrix products: 2 FLOPs per multiply-accumulate; bias adds counted only
under a convention that counts the ``bias`` category (``"full"``): 1 FLOP per output element.

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
from fxflops.cost import Cost
from fxflops.errors import InputError
from fxflops.registry import rule

from .by_convention import BIAS_PER_ELEMENT, _tensor_arg, named_arg, op_name

_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps")


def _autocast_enabled() -> bool:
    for device in _AUTOCAST_DEVICES:
        try:
            if torch.is_autocast_enabled(device):
                return True
        except (RuntimeError, TypeError):  # a device type this torch build does not know
            continue
    return False


def require_same_dtype(op: str, **operands: torch.Tensor | None) -> None:
    """Refuse operands of different dtypes, as torch's CPU and CUDA kernels do (``mat1 and mat2
    must have the same dtype``). Meta kernels do not check, so without this a float16 input to a
    float32 ``nn.Linear`` would be counted although the real forward raises. Under
    ``torch.autocast`` the cast happens below the call, so mixed dtypes are allowed there."""
    given = {name: t.dtype for name, t in operands.items() if isinstance(t, torch.Tensor)}
    if len(set(given.values())) <= 1 or _autocast_enabled():
        return
    listed = ", ".join(f"{name} {str(dtype).removeprefix('torch.')}" for name, dtype in given.items())
    raise InputError(f"{op} got {listed}: a real forward raises, as its operands must share one dtype")


def with_bias(ctx: NodeContext, macs: int, has_bias: bool) -> int | Cost:
    """``2 * macs`` FLOPs, plus the bias add (1 per output element) when ``has_bias`` and the
    convention counts ``bias``: then a :class:`~fxflops.cost.Cost`, whose MACs are the
    product's alone."""
    flops = 2 * macs
    if not has_bias:
        return flops
    extra = ctx.convention.charge("bias", BIAS_PER_ELEMENT, ctx.output_numel)
    if isinstance(extra, int) and extra == 0:
        return flops
    return Cost(matmul=flops, extra=extra, macs=macs)


def _beta_adds(ctx: NodeContext) -> bool:
    """addmm-style ops add their ``input`` unless ``beta == 0`` (then torch ignores it)."""
    return named_arg(ctx, "beta", default=1) != 0


@rule(nn.Linear, F.linear, category="matmul")
def linear_flops(ctx: NodeContext) -> int:
    """y = x W^T + b: ``2 * numel(y) * in_features``; the bias add, ``numel(y)``, only under a
    convention that counts ``bias`` (MACs stay ``numel(y) * in_features``)."""
    x = ctx.tensor("input")
    if x is None:
        raise ValueError("linear without a tensor input")
    in_features = x.shape[-1] if x.dim() > 0 else 1
    if ctx.module is not None:
        weight, bias = getattr(ctx.module, "weight", None), getattr(ctx.module, "bias", None)
    else:
        weight, bias = _tensor_arg(ctx, "weight"), _tensor_arg(ctx, "bias")
    require_same_dtype("linear", input=x, weight=weight, bias=bias)
    return with_bias(ctx, ctx.output_numel * in_features, bias is not None)


@rule(nn.Bilinear, F.bilinear, category="matmul")
def bilinear_flops(ctx: NodeContext) -> int:
    """y_k = x1^T A_k x2 + b_k: ``2 * numel(y) * in2 * (in1 + 1)``; the bias add, ``numel(y)``,
    only under a convention that counts ``bias``.

    torch's ``_trilinear`` loops over the output features k: it contracts x1 with A_k
    (``2 * N * in1 * in2``), then that with x2 (``2 * N * in2``).
    """
    x1, x2 = ctx.tensor("input1"), ctx.tensor("input2")
    if x1 is None or x2 is None:
        raise ValueError("bilinear needs two tensor inputs")
    if ctx.module is not None:
        has_bias = getattr(ctx.module, "bias", None) is not None
    else:
        has_bias = _tensor_arg(ctx, "bias") is not None
    return with_bias(ctx, ctx.output_numel * x2.shape[-1] * (x1.shape[-1] + 1), has_bias)


@rule(torch.matmul, operator.matmul, torch.Tensor.matmul, "__matmul__", "__rmatmul__", category="matmul")
def matmul_flops(ctx: NodeContext) -> int:
    """a @ b with torch.matmul's broadcasting and 1-D rules: ``2 * numel(out) * k``.

    ``k`` is the contracted size, ``a.shape[-1]``. A 1-D operand contributes no output dimension,
    so 1-D @ 1-D costs ``2 * k``, (n, k) @ (k,) costs ``2 * n * k``.
    """
    a = ctx.tensor("input")
    if ctx.node.target == "__rmatmul__":  # b.__rmatmul__(a) is a @ b
        a = ctx.tensor("other")
    if a is None:
        raise ValueError("matmul without a tensor operand")
    require_same_dtype("matmul", input=ctx.tensor("input"), other=ctx.tensor("other"))
    return 2 * ctx.output_numel * a.shape[-1]


@rule(torch.mm, torch.Tensor.mm, torch.bmm, torch.Tensor.bmm, category="matmul")
def mm_flops(ctx: NodeContext) -> int:
    """(b, n, k) @ (b, k, m), or without b: ``2 * b * n * k * m`` = ``2 * numel(out) * k``."""
    a = ctx.tensor("input")
    if a is None:
        raise ValueError("mm/bmm without a tensor operand")
    require_same_dtype(op_name(ctx), input=a, mat2=ctx.tensor("mat2"))
    return 2 * ctx.output_numel * a.shape[-1]


@rule(torch.addmm, torch.Tensor.addmm, torch.baddbmm, torch.Tensor.baddbmm, category="matmul")
def addmm_flops(ctx: NodeContext) -> int:
    """beta * c + alpha * (a @ b): the product, ``2 * numel(out) * k``; the add of ``c`` (a linear
    layer's bias once lowered to aten) counts ``numel(out)`` under a convention that counts
    ``bias``; the scalings by alpha and beta are free."""
    a = ctx.tensor("mat1")
    if a is None:
        a = ctx.tensor("batch1")
    if a is None:
        raise ValueError("addmm/baddbmm without matrix operands")
    b = ctx.tensor("mat2")
    require_same_dtype(op_name(ctx), input=ctx.tensor("input"), mat1=a, mat2=b if b is not None
                       else ctx.tensor("batch2"))
    return with_bias(ctx, ctx.output_numel * a.shape[-1], _beta_adds(ctx))


@rule(torch.addbmm, torch.Tensor.addbmm, category="matmul")
def addbmm_flops(ctx: NodeContext) -> int:
    """c + sum_b a_b @ b_b for (B, n, k) @ (B, k, m): ``2 * B * n * k * m`` (the sum over b free);
    the add of ``c``, ``n * m``, under a convention that counts ``bias``."""
    a = ctx.tensor("batch1")
    b = ctx.tensor("batch2")
    if a is None or b is None:
        raise ValueError("addbmm without batch operands")
    batch, n, k = a.shape
    return with_bias(ctx, batch * n * k * b.shape[-1], _beta_adds(ctx))


@rule(torch.mv, torch.Tensor.mv, torch.dot, torch.Tensor.dot, torch.vdot, torch.inner, category="matmul")
def matrix_vector_flops(ctx: NodeContext) -> int:
    """(n, k) @ (k,) or a dot product of length k: ``2 * numel(out) * k``."""
    a = ctx.tensor("input")
    if a is None:
        raise ValueError("mv/dot/inner without a tensor operand")
    return 2 * ctx.output_numel * a.shape[-1]


@rule(torch.einsum, category="matmul")
def einsum_flops(ctx: NodeContext) -> int:
    """Pairwise contractions in torch's order, each ``2 * prod(sizes of the indices it iterates)``.

    torch.einsum contracts two operands at a time, left to right, or along opt_einsum's path when
    opt_einsum is installed and enabled and there are 3+ operands (see :func:`einsum_path`). A
    contraction that sums an index runs as one bmm over every index of either operand: ``2 *
    prod(sizes)``. Indices held by only one remaining operand are summed out of it first, and a
    contraction that sums nothing is a broadcast multiply (an outer or Hadamard product): both
    are free under the default convention, as in FlopCounterMode.
    """
    equation = ctx.args[0]
    operands = ctx.args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    shapes = [tuple(t.shape) for t in operands]
    if isinstance(ctx.node.target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        # aten.einsum carries the path torch.einsum chose (flat pairs), or None: left to right
        flat = ctx.arg("path", default=None)
        path = list(zip(flat[0::2], flat[1::2], strict=True)) if flat else None
        return einsum_cost(equation, shapes, path)
    return einsum_cost(equation, shapes)


_ELLIPSIS = "..."


def _ellipsis_labels(count: int, total: int) -> list[str]:
    """Labels of the last ``count`` of ``total`` broadcast (ellipsis) dimensions, right-aligned."""
    return [f"{_ELLIPSIS}{j}" for j in range(total - count, total)]


def _split_term(term: str) -> list[str]:
    """``"b...ij"`` -> ``["b", "...", "i", "j"]``."""
    labels: list[str] = []
    rest = term
    while rest:
        if rest.startswith(_ELLIPSIS):
            labels.append(_ELLIPSIS)
            rest = rest[3:]
        else:
            labels.append(rest[0])
            rest = rest[1:]
    return labels


def parse_einsum(equation: str, shapes: list[tuple[int, ...]]) -> tuple[list[dict[str, int]], list[str]]:
    """Each operand's ``{label: size}`` (ellipsis dims get labels ``...0``, ``...1``, ...) and the
    output labels, explicit or implicit (ellipsis dims, then labels used once, A-Z before a-z)."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    terms = [_split_term(term) for term in lhs.split(",")]
    if len(terms) != len(shapes):
        raise ValueError(f"einsum equation {equation!r} names {len(terms)} operands, got {len(shapes)}")
    ellipsis_dims = max(
        (len(s) - len(t) + 1 for t, s in zip(terms, shapes, strict=True) if _ELLIPSIS in t), default=0
    )
    operands: list[dict[str, int]] = []
    occurrences: dict[str, int] = {}
    for term, shape in zip(terms, shapes, strict=True):
        labels: list[str] = []
        for label in term:
            if label == _ELLIPSIS:
                labels += _ellipsis_labels(len(shape) - len(term) + 1, ellipsis_dims)
            else:
                labels.append(label)
                occurrences[label] = occurrences.get(label, 0) + 1
        if len(labels) != len(shape):
            raise ValueError(f"einsum term {''.join(term)!r} does not match an operand of shape {shape}")
        sizes: dict[str, int] = {}
        for label, size in zip(labels, shape, strict=True):
            sizes[label] = size  # a repeated label takes a diagonal: same size
        operands.append(sizes)
    if arrow:
        output: list[str] = []
        for label in _split_term(rhs):
            output += _ellipsis_labels(ellipsis_dims, ellipsis_dims) if label == _ELLIPSIS else [label]
    else:
        once = sorted(label for label, n in occurrences.items() if n == 1)
        output = _ellipsis_labels(ellipsis_dims, ellipsis_dims) + once
    return operands, output


def einsum_path(equation: str, shapes: list[tuple[int, ...]]) -> list[tuple[int, int]] | None:
    """The pairs torch.einsum contracts: opt_einsum's ``contract_path`` with torch's strategy when
    ``torch.backends.opt_einsum`` is available and enabled and there are 3+ operands; ``None``
    (left to right) otherwise. Read at count time, as torch reads it at run time."""
    from torch.backends import opt_einsum

    if len(shapes) < 3 or not opt_einsum.enabled or not opt_einsum.is_available():
        return None
    path, _ = opt_einsum.get_opt_einsum().contract_path(
        equation, *shapes, optimize=opt_einsum.strategy, shapes=True
    )
    flat = [index for step in path for index in step]
    return list(zip(flat[0::2], flat[1::2], strict=True))


_TORCH_PATH = "torch"


def _contract_pair(
    a: dict[str, int], b: dict[str, int], remaining: dict[str, int]
) -> tuple[int, dict[str, int]]:
    """FLOPs and result of contracting ``a`` with ``b``, as torch.einsum's ``sumproduct_pair``.

    ``remaining`` counts, for each index not in the output, the operands still holding it with
    size != 1; it is updated in place.
    """
    a, b = dict(a), dict(b)
    summed: list[str] = []
    for label in remaining:
        size_a, size_b = a.get(label, 1), b.get(label, 1)
        if size_a != 1 and size_b != 1:
            remaining[label] -= 1
            if remaining[label] == 1:
                summed.append(label)
                remaining[label] = 0
        elif remaining[label] == 1 and (size_a != 1 or size_b != 1):
            (a if size_a != 1 else b)[label] = 1  # held by one operand only: summed out first, free
            remaining[label] = 0
    result = {label: max(a.get(label, 1), b.get(label, 1)) for label in {*a, *b}}
    flops = 2 * math.prod(result.values()) if summed else 0  # nothing summed: a multiply
    for label in summed:
        result[label] = 1
    return flops, result


def einsum_cost(
    equation: str, shapes: list[tuple[int, ...]], path: list[tuple[int, int]] | str | None = _TORCH_PATH
) -> int:
    """FLOPs of ``torch.einsum(equation, *operands)`` for operands of ``shapes`` (see einsum_flops).

    ``path`` lists the pairs to contract as opt_einsum does (the result goes last); ``None`` is
    torch's left to right; the default, ``"torch"``, is what torch.einsum would do now.
    """
    if isinstance(path, str):
        path = einsum_path(equation, shapes)
    operands, output = parse_einsum(equation, shapes)
    if len(operands) < 2:
        return 0  # a permutation, diagonal or reduction: no products
    outputs = set(output)
    remaining: dict[str, int] = {}
    for sizes in operands:
        for label, size in sizes.items():
            if label not in outputs:
                remaining[label] = remaining.get(label, 0) + (size != 1)
    total = 0
    for step in range(len(operands) - 1):
        i, j = sorted(path[step]) if path is not None else (0, 1)
        a, b = operands[i], operands[j]
        del operands[j], operands[i]
        flops, result = _contract_pair(a, b, remaining)
        total += flops
        if path is not None:
            operands.append(result)
        else:
            operands.insert(0, result)
    return total

"""Fast Fourier transforms (``torch.fft``): ``5 N log2 N`` FLOPs per complex transform of ``N``
points, counted under a convention that counts ``fft`` (``"full"``); 0 under ``"default"``, as
FlopCounterMode counts them.

``5 N log2 N`` is the standard estimate of a radix-2 complex FFT (FFTW's benchmark convention:
``N/2 log2 N`` butterflies of one complex multiply, 6 real FLOPs, and two complex adds, 4). A
transform over several dimensions is one transform per dimension over all the others, so an
``n``-dimensional FFT of a tensor of ``E`` elements costs ``5 E log2(prod of transformed sizes)``.
Real-input (``rfft``) and real-output (``irfft``, ``hfft``) transforms cost half: the symmetric half
of the spectrum is never computed. ``fftshift``, ``fftfreq`` and the like move or create values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from fxflops.context import NodeContext
from fxflops.registry import DEFAULT_REGISTRY, zero

FFT_FLOPS_PER_POINT_LOG = 5

_ONE_DIM = ("fft", "ifft", "rfft", "irfft", "hfft", "ihfft")
_TWO_DIM = ("fft2", "ifft2", "rfft2", "irfft2", "hfft2", "ihfft2")
_N_DIM = ("fftn", "ifftn", "rfftn", "irfftn", "hfftn", "ihfftn")


def _transformed(ctx: NodeContext, name: str, shape: Sequence[int]) -> tuple[list[int], list[int]]:
    """The dimensions the transform runs over and their signal lengths (``n``/``s`` when given,
    else the input's sizes)."""
    rank = len(shape)
    if name in _ONE_DIM:
        n = ctx.arg("n", default=None)
        dim = int(ctx.arg("dim", default=-1)) % rank
        return [dim], [int(n) if n is not None else int(shape[dim])]
    sizes = ctx.arg("s", default=None)
    dims = ctx.arg("dim", default=(-2, -1) if name in _TWO_DIM else None)
    if dims is None:
        dims = tuple(range(rank - len(sizes), rank)) if sizes is not None else tuple(range(rank))
    if isinstance(dims, int):
        dims = (dims,)
    dims = [int(d) % rank for d in dims]
    lengths = [int(v) for v in sizes] if sizes is not None else [int(shape[d]) for d in dims]
    return dims, lengths


def _transforms_cost(ctx: NodeContext, x: torch.Tensor, dims: Sequence[int], points: int, real: bool) -> int:
    """``5 N log2 N`` per transform of ``points`` points, one transform per element outside ``dims``;
    half when ``real`` (the symmetric half of the spectrum is not computed)."""
    if points <= 1:
        return 0
    transforms = math.prod(int(size) for d, size in enumerate(x.shape) if d not in dims)
    flops = FFT_FLOPS_PER_POINT_LOG * transforms * points * math.log2(points)
    return ctx.convention.constant("fft", 1) * round(flops / 2 if real else flops)


def fft_flops(ctx: NodeContext) -> Any:
    """``5 N log2(N)`` per complex transform of ``N`` points (the product of the signal lengths),
    times the number of transforms (the elements outside the transformed dimensions); half for
    real-input and real-output transforms."""
    target = ctx.node.target
    if isinstance(target, torch._ops.OpOverload):  # aten.fft_rfft.default: torch.fft.rfft's aten twin
        target = target.overloadpacket
    name = getattr(target, "__name__", str(target)).removeprefix("fft_")
    x = ctx.tensor("input")
    if x is None:
        raise ValueError("an FFT without a tensor input")
    dims, lengths = _transformed(ctx, name, tuple(x.shape))
    points = math.prod(lengths)
    return _transforms_cost(ctx, x, dims, points, real=name.startswith(("r", "ir", "h", "ih")))


for _name in (*_ONE_DIM, *_TWO_DIM, *_N_DIM):
    DEFAULT_REGISTRY.add(getattr(torch.fft, _name), fft_flops, category="fft")
zero(torch.fft.fftshift, torch.fft.ifftshift, torch.fft.fftfreq, torch.fft.rfftfreq)


def aten_fft_flops(ctx: NodeContext) -> Any:
    """The aten FFT primitives torch.export records (``_fft_c2c``, ``_fft_r2c``, ``_fft_c2r``): the
    same ``5 N log2 N`` per transform over their ``dim`` list; real-input and real-output ones half."""
    name = ctx.node.target.overloadpacket.__name__  # type: ignore[union-attr]
    x = ctx.args[0]
    dims = [int(d) % x.dim() for d in ctx.args[1]]
    # c2r produces the real signal: its lengths are the output's along dim
    shape = ctx.output_shapes[0] if name == "_fft_c2r" and ctx.output_shapes else tuple(x.shape)
    points = math.prod(int(shape[d]) for d in dims)
    return _transforms_cost(ctx, x, dims, points, real=name != "_fft_c2c")


for _name in ("_fft_c2c", "_fft_r2c", "_fft_c2r"):
    if hasattr(torch.ops.aten, _name):
        DEFAULT_REGISTRY.add(getattr(torch.ops.aten, _name), aten_fft_flops, category="fft")

"""Convolutions: 2 FLOPs per multiply-accumulate; the bias add (1 FLOP per output element) only
under a convention that counts the ``bias`` category (``"full"``).

A convolution computes, for every output position, a dot product of length
``(C_in / groups) * prod(kernel)`` per output channel:
``2 * N * C_out * (C_in / groups) * prod(kernel) * prod(out_spatial)``, i.e.
``2 * N * prod(weight.shape) * prod(out_spatial)`` with weight ``(C_out, C_in/groups, *kernel)``.

A transposed convolution scatters every *input* position through the kernel: with weight
``(C_in, C_out/groups, *kernel)`` it costs ``2 * N * prod(weight.shape) * prod(in_spatial)``
(stride and output padding do not change the work). This is FlopCounterMode's and fvcore's formula.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fxflops.context import NodeContext
from fxflops.registry import rule

from .by_convention import _tensor_arg
from .linear import with_bias


def conv_macs(x_shape: tuple[int, ...], w_shape: tuple[int, ...], out_shape: tuple[int, ...],
              transposed: bool) -> int:
    """Multiply-accumulates of a (transposed) convolution from its input, weight and output shapes."""
    spatial_dims = len(w_shape) - 2
    batched = len(x_shape) == spatial_dims + 2
    batch = x_shape[0] if batched else 1
    spatial = (x_shape if transposed else out_shape)[-spatial_dims:] if spatial_dims else ()
    return batch * math.prod(w_shape) * math.prod(spatial)


def conv_cost(x_shape: tuple[int, ...], w_shape: tuple[int, ...], out_shape: tuple[int, ...],
              transposed: bool) -> int:
    """FLOPs of a (transposed) convolution from its input, weight and output shapes (no bias)."""
    return 2 * conv_macs(x_shape, w_shape, out_shape, transposed)


def _functional_bias(ctx: NodeContext) -> bool:
    return _tensor_arg(ctx, "bias") is not None


@rule(nn.Conv1d, nn.Conv2d, nn.Conv3d, category="conv")
def conv_module_flops(ctx: NodeContext) -> int:
    """``nn.ConvNd``: ``2 * N * prod(weight.shape) * prod(out_spatial)``; the bias add,
    ``numel(out)``, only under a convention that counts ``bias``."""
    assert ctx.module is not None
    macs = conv_macs(ctx.input_shapes[0], tuple(ctx.module.weight.shape), ctx.output_shape, transposed=False)
    return with_bias(ctx, macs, ctx.module.bias is not None)


@rule(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, category="conv")
def conv_transpose_module_flops(ctx: NodeContext) -> int:
    """``nn.ConvTransposeNd``: ``2 * N * prod(weight.shape) * prod(in_spatial)``; the bias add,
    ``numel(out)``, only under a convention that counts ``bias``."""
    assert ctx.module is not None
    macs = conv_macs(ctx.input_shapes[0], tuple(ctx.module.weight.shape), ctx.output_shape, transposed=True)
    return with_bias(ctx, macs, ctx.module.bias is not None)


@rule(F.conv1d, F.conv2d, F.conv3d, category="conv")
def conv_flops(ctx: NodeContext) -> int:
    """``F.convNd(input, weight, ...)``: as ``nn.ConvNd``; groups are read from the weight shape."""
    x, weight = ctx.tensor("input"), ctx.tensor("weight")
    if x is None or weight is None:
        raise ValueError("convolution without input or weight tensors")
    macs = conv_macs(tuple(x.shape), tuple(weight.shape), ctx.output_shape, transposed=False)
    return with_bias(ctx, macs, _functional_bias(ctx))


@rule(F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, category="conv")
def conv_transpose_flops(ctx: NodeContext) -> int:
    """``F.conv_transposeNd(input, weight, ...)``: as ``nn.ConvTransposeNd``."""
    x, weight = ctx.tensor("input"), ctx.tensor("weight")
    if x is None or weight is None:
        raise ValueError("transposed convolution without input or weight tensors")
    macs = conv_macs(tuple(x.shape), tuple(weight.shape), ctx.output_shape, transposed=True)
    return with_bias(ctx, macs, _functional_bias(ctx))


@rule(torch.convolution, category="conv")
def convolution_flops(ctx: NodeContext) -> int:
    """``torch.convolution(input, weight, bias, stride, padding, dilation, transposed, ...)``."""
    x, weight = ctx.tensor("input"), ctx.tensor("weight")
    if x is None or weight is None:
        raise ValueError("convolution without input or weight tensors")
    transposed = bool(ctx.arg("transposed", default=False))
    macs = conv_macs(tuple(x.shape), tuple(weight.shape), ctx.output_shape, transposed=transposed)
    return with_bias(ctx, macs, _functional_bias(ctx))

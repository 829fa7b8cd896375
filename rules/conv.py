"""Convolutions: 2 FLOPs per multiply-accumulate, bias adds not counted.

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


def conv_cost(x_shape: tuple[int, ...], w_shape: tuple[int, ...], out_shape: tuple[int, ...],
              transposed: bool) -> int:
    """FLOPs of a (transposed) convolution from its input, weight and output shapes."""
    spatial_dims = len(w_shape) - 2
    batched = len(x_shape) == spatial_dims + 2
    batch = x_shape[0] if batched else 1
    spatial = (x_shape if transposed else out_shape)[-spatial_dims:] if spatial_dims else ()
    return 2 * batch * math.prod(w_shape) * math.prod(spatial)


@rule(nn.Conv1d, nn.Conv2d, nn.Conv3d, category="conv")
def conv_module_flops(ctx: NodeContext) -> int:
    """``nn.ConvNd``: ``2 * N * prod(weight.shape) * prod(out_spatial)``; bias not counted."""
    assert ctx.module is not None
    return conv_cost(ctx.input_shapes[0], tuple(ctx.module.weight.shape), ctx.output_shape, transposed=False)


@rule(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, category="conv")
def conv_transpose_module_flops(ctx: NodeContext) -> int:
    """``nn.ConvTransposeNd``: ``2 * N * prod(weight.shape) * prod(in_spatial)``; bias not counted."""
    assert ctx.module is not None
    return conv_cost(ctx.input_shapes[0], tuple(ctx.module.weight.shape), ctx.output_shape, transposed=True)


@rule(F.conv1d, F.conv2d, F.conv3d, category="conv")
def conv_flops(ctx: NodeContext) -> int:
    """``F.convNd(input, weight, ...)``: as ``nn.ConvNd``; groups are read from the weight shape."""
    x, weight = ctx.tensor("input", 0), ctx.tensor("weight", 1)
    if x is None or weight is None:
        raise ValueError("convolution without input or weight tensors")
    return conv_cost(tuple(x.shape), tuple(weight.shape), ctx.output_shape, transposed=False)


@rule(F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, category="conv")
def conv_transpose_flops(ctx: NodeContext) -> int:
    """``F.conv_transposeNd(input, weight, ...)``: as ``nn.ConvTransposeNd``."""
    x, weight = ctx.tensor("input", 0), ctx.tensor("weight", 1)
    if x is None or weight is None:
        raise ValueError("transposed convolution without input or weight tensors")
    return conv_cost(tuple(x.shape), tuple(weight.shape), ctx.output_shape, transposed=True)


@rule(torch.convolution, category="conv")
def convolution_flops(ctx: NodeContext) -> int:
    """``torch.convolution(input, weight, bias, stride, padding, dilation, transposed, ...)``."""
    x, weight = ctx.tensor("input", 0), ctx.tensor("weight", 1)
    if x is None or weight is None:
        raise ValueError("convolution without input or weight tensors")
    transposed = bool(ctx.arg("transposed", 6, default=False))
    return conv_cost(tuple(x.shape), tuple(weight.shape), ctx.output_shape, transposed=transposed)

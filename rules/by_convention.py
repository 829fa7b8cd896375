"""Known ops that the default convention counts as 0 FLOPs.

Norms, activations, softmax, elementwise arithmetic, reductions, pooling and interpolation are
real arithmetic, but OpenCLIP's table and torch's FlopCounterMode do not count them. They are
registered here with their category, so the default convention records them as "0 by convention"
(never as uncounted), and conventions that count a category use the formula in each docstring:

* elementwise, activation: 1 FLOP per output element (``numel(out)``);
* norm, softmax: a few FLOPs per element, ``NORM_PER_ELEMENT`` and ``SOFTMAX_PER_ELEMENT``;
* reduction: 1 FLOP per input element;
* pooling: 1 FLOP per input element read by a window, approximated by ``numel(input)``;
* interpolation: ``INTERPOLATION_PER_ELEMENT`` per output element.

These constants are provisional until the "full" convention is specified (issue 5).
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import nn

from fxflops.context import NodeContext
from fxflops.registry import DEFAULT_REGISTRY, Rule

NORM_PER_ELEMENT = 5
SOFTMAX_PER_ELEMENT = 3
INTERPOLATION_PER_ELEMENT = 4


def _output_numel(ctx: NodeContext) -> int:
    shapes = ctx.output_shapes
    return math.prod(shapes[0]) if shapes else 0


def _input_numel(ctx: NodeContext) -> int:
    shapes = ctx.input_shapes
    return math.prod(shapes[0]) if shapes else 0


def elementwise_flops(ctx: NodeContext) -> int:
    """1 FLOP per output element (broadcasting: the cost follows the output)."""
    return _output_numel(ctx)


def activation_flops(ctx: NodeContext) -> int:
    """1 FLOP per output element."""
    return _output_numel(ctx)


def norm_flops(ctx: NodeContext) -> int:
    """``NORM_PER_ELEMENT`` FLOPs per output element (mean, variance, normalize, scale, shift)."""
    return NORM_PER_ELEMENT * _output_numel(ctx)


def softmax_flops(ctx: NodeContext) -> int:
    """``SOFTMAX_PER_ELEMENT`` FLOPs per element (exp, sum, divide)."""
    return SOFTMAX_PER_ELEMENT * _output_numel(ctx)


def reduction_flops(ctx: NodeContext) -> int:
    """1 FLOP per input element."""
    return _input_numel(ctx)


def pooling_flops(ctx: NodeContext) -> int:
    """1 FLOP per input element."""
    return _input_numel(ctx)


def interpolation_flops(ctx: NodeContext) -> int:
    """``INTERPOLATION_PER_ELEMENT`` FLOPs per output element."""
    return INTERPOLATION_PER_ELEMENT * _output_numel(ctx)


def _register(category: str, rule_fn: Rule, *targets: object) -> None:
    for target in dict.fromkeys(targets):  # some aliases are one object (F.relu_ is torch.relu_)
        DEFAULT_REGISTRY.add(target, rule_fn, category=category)  # type: ignore[arg-type]


_register(
    "norm", norm_flops,
    nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LocalResponseNorm, nn.RMSNorm,
    nn.CrossMapLRN2d, F.layer_norm, F.batch_norm, F.group_norm, F.instance_norm, F.rms_norm,
    F.local_response_norm, F.normalize, torch.layer_norm, torch.batch_norm, torch.group_norm,
)

_ACTIVATION_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
    nn.LogSigmoid, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Threshold, nn.GLU,
)
_ACTIVATION_FUNCTIONS = (
    F.relu, F.relu_, F.relu6, F.leaky_relu, F.prelu, F.rrelu, F.elu, F.selu, F.celu, F.gelu, F.silu,
    F.mish, F.sigmoid, F.tanh, F.softplus, F.softsign, F.hardtanh, F.hardswish, F.hardsigmoid,
    F.logsigmoid, F.tanhshrink, F.softshrink, F.hardshrink, F.threshold, F.glu, torch.relu,
    torch.relu_, torch.sigmoid, torch.tanh, torch.selu, torch.celu, torch.prelu, torch.rrelu,
)
_register("activation", activation_flops, *_ACTIVATION_MODULES, *_ACTIVATION_FUNCTIONS,
          "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_")

_register("softmax", softmax_flops, nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d, F.softmax,
          F.log_softmax, F.softmin, torch.softmax, torch.log_softmax, "softmax", "log_softmax")

_ELEMENTWISE_OPERATORS = (
    operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.pow,
    operator.neg, operator.mod, operator.iadd, operator.isub, operator.imul, operator.itruediv,
    operator.lt, operator.le, operator.gt, operator.ge, operator.and_, operator.or_,
    operator.xor, operator.invert, operator.abs, operator.pos,
)
_ELEMENTWISE_FUNCTIONS = (
    torch.add, torch.sub, torch.subtract, torch.mul, torch.multiply, torch.div, torch.divide,
    torch.true_divide, torch.floor_divide, torch.remainder, torch.fmod, torch.pow, torch.float_power,
    torch.neg, torch.exp, torch.exp2, torch.expm1, torch.log, torch.log2, torch.log10, torch.log1p,
    torch.sqrt, torch.rsqrt, torch.abs, torch.square, torch.reciprocal, torch.sign, torch.sgn,
    torch.clamp, torch.clip, torch.clamp_min, torch.clamp_max, torch.maximum, torch.minimum,
    torch.fmax, torch.fmin, torch.sin, torch.cos, torch.tan, torch.asin, torch.acos, torch.atan,
    torch.atan2, torch.sinh, torch.cosh, torch.erf, torch.erfc, torch.erfinv, torch.floor,
    torch.ceil, torch.round, torch.trunc, torch.frac, torch.lerp, torch.addcmul, torch.addcdiv,
    torch.eq, torch.ne, torch.lt, torch.le, torch.gt, torch.ge, torch.logical_and,
    torch.logical_or, torch.logical_not, torch.logical_xor, torch.isnan, torch.isinf,
    torch.isfinite, torch.nan_to_num, torch.bitwise_and, torch.bitwise_or, torch.bitwise_not,
    torch.hypot, torch.logit, torch.xlogy, torch.outer, torch.cross,
)
_ELEMENTWISE_METHODS = (
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "true_divide", "floor_divide",
    "remainder", "fmod", "pow", "pow_", "neg", "neg_", "exp", "exp_", "expm1", "log", "log_", "log2",
    "log10", "log1p", "sqrt", "sqrt_", "rsqrt", "abs", "abs_", "square", "reciprocal", "sign", "sgn",
    "clamp", "clamp_", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "sin", "cos", "tan",
    "erf", "erfinv", "floor", "ceil", "round", "trunc", "frac", "lerp", "lerp_", "addcmul",
    "addcmul_", "addcdiv", "addcdiv_", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
    "logical_or", "logical_not", "isnan", "isinf", "nan_to_num", "float_power", "outer", "cross",
    "__add__", "__radd__", "__iadd__", "__sub__", "__rsub__", "__isub__", "__mul__", "__rmul__",
    "__imul__", "__truediv__", "__rtruediv__", "__itruediv__", "__floordiv__", "__pow__",
    "__rpow__", "__neg__", "__and__", "__or__", "__xor__", "__invert__", "__lt__", "__le__",
    "__gt__", "__ge__", "__eq__", "__ne__", "__mod__", "logit",
)
_register("elementwise", elementwise_flops, *_ELEMENTWISE_OPERATORS, *_ELEMENTWISE_FUNCTIONS,
          *_ELEMENTWISE_METHODS)

_REDUCTION_FUNCTIONS = (
    torch.sum, torch.mean, torch.nansum, torch.nanmean, torch.prod, torch.max, torch.min, torch.amax,
    torch.amin, torch.aminmax, torch.argmax, torch.argmin, torch.std, torch.var, torch.std_mean,
    torch.var_mean, torch.norm, torch.logsumexp, torch.cumsum, torch.cumprod, torch.cummax,
    torch.cummin, torch.any, torch.all, torch.count_nonzero, torch.median, torch.nanmedian,
    torch.linalg.norm, torch.linalg.vector_norm, torch.linalg.matrix_norm, F.cosine_similarity,
    F.pairwise_distance, torch.cdist, torch.dist, torch.trace, torch.diff,
)
_REDUCTION_METHODS = (
    "sum", "mean", "nansum", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "std", "var",
    "norm", "logsumexp", "cumsum", "cumprod", "any", "all", "count_nonzero", "median", "diff",
)
_register("reduction", reduction_flops, *_REDUCTION_FUNCTIONS, *_REDUCTION_METHODS, nn.EmbeddingBag,
          F.embedding_bag, nn.CosineSimilarity, nn.PairwiseDistance)

_register(
    "pooling", pooling_flops,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.LPPool1d, nn.LPPool2d, nn.LPPool3d,
    nn.FractionalMaxPool2d, nn.FractionalMaxPool3d, F.max_pool1d, F.max_pool2d, F.max_pool3d,
    F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d,
    F.lp_pool1d, F.lp_pool2d, torch.max_pool1d, torch.max_pool2d, torch.avg_pool1d,
    torch.adaptive_avg_pool1d, torch.adaptive_max_pool1d,
)

_register("interpolation", interpolation_flops, nn.Upsample, nn.UpsamplingNearest2d,
          nn.UpsamplingBilinear2d, F.interpolate, F.upsample, F.upsample_nearest, F.upsample_bilinear,
          F.grid_sample, F.affine_grid)

"""Norms, activations, softmax, elementwise arithmetic, reductions, pooling and interpolation.

These ops are real arithmetic, but OpenCLIP's table and torch's FlopCounterMode do not count
them: under the ``"default"`` convention they are recorded as "0 by convention" (never as
uncounted). Conventions that count a category (``"full"`` counts them all) use the formulas
below. Every formula is ``constant * elements``; ``Convention.per_element`` can replace the
constant of a category (the table with the reasoning and the peers' choices is in
``docs/conventions.md``).

The unit is one FLOP per element per elementwise function application, whatever the function:
``add``, ``exp``, ``erf``, ``tanh``, ``sigmoid``, ``gelu`` alike (the cost of a transcendental is
hardware-defined, from one special-function-unit instruction to a 20-term polynomial, so we count
applications, not instructions). Composite ops count the elementwise passes of their textbook
definition, and weighted sums count 2 FLOPs per term (one multiply-accumulate, the library's
unit):

* elementwise, activation: 1 per output element (broadcasting: the cost follows the output);
* softmax, log-softmax: 3 per element (exp, sum, divide; the max subtraction that keeps it
  stable is not part of the maths);
* norms over batch statistics (layer, group, instance, batch in training): 5 per element (sum
  for the mean, subtract, square, sum for the variance, multiply by the reciprocal standard
  deviation) + 1 for a scale (weight) + 1 for a shift (bias); RMS norm 3 (+1 weight);
  batch norm with running statistics (eval) 2 (torch folds it into one multiply and one add per
  element); ``F.normalize`` 3; local response norm ``size + 5``;
* reductions: 1 per input element (sum, mean, max, argmax, cumsum, ...); variance and standard
  deviation 4, vector norms 2, logsumexp 2, cosine similarity 6, distances 3;
* pooling: 1 per window element read (``numel(out) * prod(kernel)``; adaptive pooling sums its
  exact window sizes); LP pooling 2;
* interpolation: 2 per neighbour read (one multiply-accumulate each): nearest 1 neighbour,
  linear 2, bilinear 4, trilinear 8, bicubic 16; ``area`` counts as adaptive average pooling;
  ``grid_sample`` the same by mode; ``affine_grid`` ``d + 1`` multiply-accumulates per output
  coordinate.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fxflops.context import NodeContext
from fxflops.registry import DEFAULT_REGISTRY, Rule

#: Built-in per-element constants, by category (``Convention.per_element`` replaces them).
ELEMENTWISE_PER_ELEMENT = 1
ACTIVATION_PER_ELEMENT = 1
SOFTMAX_PER_ELEMENT = 3
NORM_STATISTICS_PER_ELEMENT = 5
RMS_NORM_PER_ELEMENT = 3
BATCH_NORM_EVAL_PER_ELEMENT = 2
NORMALIZE_PER_ELEMENT = 3
WEIGHT_NORM_PER_ELEMENT = 4
REDUCTION_PER_ELEMENT = 1
POOLING_PER_ELEMENT = 1
INTERPOLATION_PER_NEIGHBOUR = 2
BIAS_PER_ELEMENT = 1

#: Neighbours each output element of an interpolation reads, by mode.
INTERPOLATION_NEIGHBOURS = {"nearest": 1, "nearest-exact": 1, "linear": 2, "bilinear": 4, "trilinear": 8,
                            "bicubic": 16}

#: Reductions that take more than one pass over their input (squeezed names, see ``op_name``).
_REDUCTION_CONSTANTS = {
    "var": 4, "std": 4, "varmean": 4, "stdmean": 4,  # sum (mean), subtract, square, sum
    "norm": 2, "linalgvectornorm": 2, "vectornorm": 2, "linalgnorm": 2, "linalgmatrixnorm": 2,
    "matrixnorm": 2, "frobeniusnorm": 2,  # |x|^p, sum
    "logsumexp": 2,  # exp, sum
    "cosinesimilarity": 6,  # x*y, sum, x*x, sum, y*y, sum
    "pairwisedistance": 3, "dist": 3, "cdist": 3, "cdistforward": 3,  # subtract, |d|^p, sum
    # pointwise regression losses, per input element (a reduced mean or sum; "none" keeps them all)
    "mseloss": 3, "l1loss": 3,  # subtract, square or |d|, sum
    "smoothl1loss": 4, "huberloss": 4,  # subtract, |d|, the quadratic or linear branch, sum
}

_GRID_SAMPLER_MODES = {0: "bilinear", 1: "nearest", 2: "bicubic"}


# -- helpers ------------------------------------------------------------------------------------


def op_name(ctx: NodeContext) -> str:
    """The node's op as a squeezed lower-case name: ``maxpool2d`` for ``nn.MaxPool2d``,
    ``F.max_pool2d``, ``aten.max_pool2d_with_indices``... (``withindices`` kept), ``layernorm``."""
    target: Any = ctx.node.target
    if ctx.module is not None:
        # a user subclass of nn.LayerNorm is a layer norm: name it by its torch.nn base
        cls = next((c for c in type(ctx.module).__mro__ if c.__module__.startswith("torch.nn")),
                   type(ctx.module))
        name = cls.__name__
    elif isinstance(target, str):
        name = target
    elif isinstance(target, torch._ops.OpOverload):
        name = target.overloadpacket.__name__
    else:
        name = getattr(target, "__name__", None) or str(target)
    return name.lower().replace("_", "")


def _numel(shape: Sequence[Any]) -> Any:
    return math.prod(shape)


def _output_numel(ctx: NodeContext) -> Any:
    shapes = ctx.output_shapes
    return _numel(shapes[0]) if shapes else 0


def _spatial_dims(name: str, fallback: int) -> int:
    match = re.search(r"([123])d", name)
    return int(match.group(1)) if match else fallback


def _expand(value: Any, dims: int) -> tuple[Any, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value) * dims if len(value) == 1 else tuple(value)
    return (value,) * dims


def _window_reads(in_size: Any, out_size: Any) -> Any:
    """Elements read along one dimension by adaptive pooling from ``in_size`` to ``out_size``:
    window i spans ``[floor(i*I/O), ceil((i+1)*I/O))``. Symbolic sizes: ``I`` (exact when O | I)."""
    if not (isinstance(in_size, int) and isinstance(out_size, int)) or out_size <= 0:
        return in_size
    return sum(-((-(i + 1) * in_size) // out_size) - (i * in_size) // out_size for i in range(out_size))


def _adaptive_reads(in_shape: Sequence[Any], out_shape: Sequence[Any], dims: int) -> Any:
    """Elements read by an adaptive average/max pooling (or ``area`` interpolation)."""
    lead = _numel(out_shape[:-dims]) if dims else _numel(out_shape)
    reads = 1
    for in_size, out_size in zip(in_shape[-dims:], out_shape[-dims:], strict=True):
        reads = reads * _window_reads(in_size, out_size)
    return lead * reads


def named_arg(ctx: NodeContext, name: str, default: Any = None) -> Any:
    """An argument by name however it was passed (:meth:`NodeContext.arg`), ``default`` when absent
    or when torch cannot bind the call's signature."""
    try:
        return ctx.arg(name, default=default)
    except Exception:  # a signature torch cannot bind: treat the argument as absent
        return default


def _tensor_arg(ctx: NodeContext, name: str) -> torch.Tensor | None:
    """A tensor argument by name, ``None`` when absent."""
    value = named_arg(ctx, name)
    return value if isinstance(value, torch.Tensor) else None


def _is_aten(ctx: NodeContext) -> bool:
    return isinstance(ctx.node.target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket))


# -- elementwise, activations, softmax ------------------------------------------------------------


def elementwise_flops(ctx: NodeContext) -> int:
    """Elementwise arithmetic, comparisons and math functions: 1 FLOP per output element.

    Broadcasting: the cost follows the output, ``x + y`` on (1000,) and (1000,) is 1000, on
    (1000, 1) and (1, 8) is 8000. Fused ops (``addcmul``, ``lerp``) and transcendentals
    (``exp``, ``sin``) are one application each, so 1 too.
    """
    return ctx.convention.constant("elementwise", ELEMENTWISE_PER_ELEMENT) * _output_numel(ctx)


def activation_flops(ctx: NodeContext) -> int:
    """ReLU family, GELU (exact and tanh), SiLU, sigmoid, tanh, softplus, ...: 1 FLOP per output
    element (one function application; ptflops, calflops and DeepSpeed count the same)."""
    return ctx.convention.constant("activation", ACTIVATION_PER_ELEMENT) * _output_numel(ctx)


def softmax_flops(ctx: NodeContext) -> int:
    """Softmax, log-softmax, softmin: 3 FLOPs per element, exp + sum + divide (log-softmax:
    exp + sum + subtract). thop's ``3F - 1`` per row up to the first add of each sum."""
    return ctx.convention.constant("softmax", SOFTMAX_PER_ELEMENT) * _output_numel(ctx)


# -- norms ----------------------------------------------------------------------------------------


def _affine(weight: Any, bias: Any) -> int:
    return (weight is not None) + (bias is not None)


def _module_norm_constant(module: nn.Module) -> int:
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if isinstance(module, (nn.LocalResponseNorm, nn.CrossMapLRN2d)):
        return int(module.size) + 5
    if isinstance(module, nn.RMSNorm):
        return RMS_NORM_PER_ELEMENT + (weight is not None)
    if isinstance(module, nn.modules.batchnorm._NormBase):
        # BatchNorm uses batch statistics in training or without running stats; InstanceNorm
        # unless it tracks running stats and is in eval
        if isinstance(module, nn.modules.instancenorm._InstanceNorm):
            batch_stats = module.training or not module.track_running_stats
        else:
            batch_stats = module.training or module.running_mean is None
        if not batch_stats:
            return BATCH_NORM_EVAL_PER_ELEMENT
    return NORM_STATISTICS_PER_ELEMENT + _affine(weight, bias)


def _function_norm_constant(ctx: NodeContext, name: str) -> int:
    if name in ("localresponsenorm",):
        return int(named_arg(ctx, "size", default=5)) + 5
    if name == "normalize":
        return NORMALIZE_PER_ELEMENT
    if name in ("weightnorm", "weightnorminterface"):
        return WEIGHT_NORM_PER_ELEMENT
    weight = _tensor_arg(ctx, "weight")
    if "rmsnorm" in name:
        return RMS_NORM_PER_ELEMENT + (weight is not None)
    bias = _tensor_arg(ctx, "bias")
    if "batchnorm" in name:
        if "notraining" in name or "noupdate" in name:
            return BATCH_NORM_EVAL_PER_ELEMENT
        if "withupdate" not in name:
            training = named_arg(ctx, "training", default=True)
            if not training:
                return BATCH_NORM_EVAL_PER_ELEMENT
    if "instancenorm" in name and not named_arg(ctx, "use_input_stats", default=True):
        return BATCH_NORM_EVAL_PER_ELEMENT
    return NORM_STATISTICS_PER_ELEMENT + _affine(weight, bias)


def norm_constant(ctx: NodeContext) -> int:
    """The built-in FLOPs per element of the norm at ``ctx`` (before any convention override)."""
    if ctx.module is not None:
        return _module_norm_constant(ctx.module)
    return _function_norm_constant(ctx, op_name(ctx))


def norm_flops(ctx: NodeContext) -> int:
    """Norms, FLOPs per output element:

    * layer, group, instance norm, and batch norm on batch statistics (training): 5 (sum for
      the mean, subtract it, square, sum for the variance, multiply by 1/std; the per-row
      square root is negligible) + 1 with a weight + 1 with a bias: 7 for an affine LayerNorm;
    * batch norm on running statistics (eval): 2, one multiply and one add (torch folds mean,
      std, weight and bias into per-channel constants); instance norm likewise with
      ``use_input_stats=False``;
    * RMS norm: 3 (square, sum, multiply by 1/rms) + 1 with a weight;
    * ``F.normalize``: 3 (|x|^p, sum, divide); ``torch._weight_norm`` (``weight_norm``'s
      reparametrization ``g * v / ||v||``): 4 per weight element (square, sum, divide, multiply);
      local response norm: ``size + 5`` (square, a
      window sum of ``size``, scale and add, power, divide).
    """
    return ctx.convention.constant("norm", norm_constant(ctx)) * _output_numel(ctx)


# -- reductions -----------------------------------------------------------------------------------


def reduction_flops(ctx: NodeContext) -> int:
    """Reductions: 1 FLOP per input element (sum, mean, prod, max, argmax, any, cumsum, median,
    ...; a mean's final divide per output is negligible), and for multi-pass reductions:

    * ``var``/``std`` (and ``*_mean``): 4 per input element (sum, subtract, square, sum);
    * ``norm``/``vector_norm``: 2 (|x|^p, sum); ``logsumexp``: 2 (exp, sum);
    * ``cosine_similarity``: 6 per element of the broadcast inputs (x*y, x*x, y*y and their sums);
      ``pairwise_distance``, ``dist``: 3 (subtract, |d|^p, sum); ``cdist`` of (.., P, M) and
      (.., R, M): 3 per (p, r, m) triple, ``3 * numel(out) * M``;
    * ``EmbeddingBag``: 1 per element gathered, ``numel(indices) * embedding_dim``;
    * ``trace``: 1 per diagonal element; ``diff``: 1 per output element;
    * pointwise regression losses, per element of the input: ``mse_loss``, ``l1_loss`` 3 (subtract,
      square or absolute value, sum); ``smooth_l1_loss``, ``huber_loss`` 4 (and the branch).
    """
    name = op_name(ctx)
    constant = ctx.convention.constant("reduction", _REDUCTION_CONSTANTS.get(name, REDUCTION_PER_ELEMENT))
    shapes = ctx.input_shapes
    if not shapes:
        return 0
    if name.startswith("cdist"):
        return constant * _output_numel(ctx) * shapes[0][-1]
    if name in ("cosinesimilarity", "pairwisedistance", "dist") and len(shapes) >= 2:
        return constant * _numel(torch.broadcast_shapes(shapes[0], shapes[1]))
    if "embeddingbag" in name:
        if ctx.module is not None:
            return constant * _numel(shapes[0]) * ctx.module.embedding_dim
        if _is_aten(ctx):
            weight, indices = ctx.args[0], ctx.args[1]
        else:
            indices, weight = ctx.tensor("input"), ctx.tensor("weight")
        if weight is None or indices is None:
            return 0
        return constant * indices.numel() * weight.shape[-1]
    if name == "trace":
        return constant * min(shapes[0])
    if name == "diff":
        return constant * _output_numel(ctx)
    return constant * _numel(shapes[0])


# -- pooling --------------------------------------------------------------------------------------


def pooling_flops(ctx: NodeContext) -> int:
    """Pooling: 1 FLOP per window element read (a compare for max, an add for average; the
    average's divide per output is negligible), ``numel(out) * prod(kernel_size)``.

    Windows that overlap (stride < kernel) are read once per window; padded positions count.
    Adaptive pooling reads window ``i`` of ``[floor(i*I/O), ceil((i+1)*I/O))`` along each
    dimension: the exact sum (``numel(input)`` when O divides I). LP pooling: 2 per element
    read (|x|^p, sum).
    """
    name = op_name(ctx)
    out_shape = ctx.output_shape
    if "adaptive" in name:
        dims = _spatial_dims(name, 2)
        reads = _adaptive_reads(ctx.input_shapes[0], out_shape, dims)
        return ctx.convention.constant("pooling", POOLING_PER_ELEMENT) * reads
    lp = "lppool" in name
    if ctx.module is not None:
        kernel = ctx.module.kernel_size
    else:
        kernel = ctx.arg("kernel_size")
    dims = _spatial_dims(name, len(kernel) if isinstance(kernel, (list, tuple)) else len(out_shape) - 2)
    window = math.prod(_expand(kernel, dims))
    constant = ctx.convention.constant("pooling", 2 if lp else POOLING_PER_ELEMENT)
    return constant * _numel(out_shape) * window


# -- interpolation --------------------------------------------------------------------------------


def _interpolation_mode(ctx: NodeContext, name: str) -> tuple[str, bool]:
    """(mode, antialias) of an interpolation node."""
    module = ctx.module
    if module is not None:
        return str(getattr(module, "mode", "nearest")), False
    if name in ("interpolate", "upsample"):
        mode = ctx.arg("mode", default="nearest")
        antialias = bool(ctx.arg("antialias", default=False)) if name == "interpolate" else False
        return str(mode), antialias
    if name == "upsamplenearest":
        return "nearest", False
    if name == "upsamplebilinear":
        return "bilinear", False
    if name == "gridsample":
        return str(ctx.arg("mode", default="bilinear")), False
    if name.startswith("gridsampler"):
        return _GRID_SAMPLER_MODES.get(int(ctx.args[2]), "bilinear"), False
    # aten upsample kernels: upsample_nearest2d, _upsample_bilinear2d_aa, upsample_linear1d, ...
    antialias = name.endswith("aa")
    for mode in ("nearest", "bicubic", "trilinear", "bilinear", "linear"):
        if mode in name:
            return mode, antialias
    return "nearest", False


def interpolation_flops(ctx: NodeContext) -> int:
    """Interpolation: 2 FLOPs per neighbour read (each output is a weighted sum: one
    multiply-accumulate per neighbour), ``2 * numel(out) * neighbours``:

    * nearest (and nearest-exact) 1 neighbour, linear 2, bilinear 4, trilinear 8, bicubic 16;
      with ``antialias=True`` and downsampling, the filter widens by ``ceil(in / out)`` per
      dimension; ``area`` is adaptive average pooling (torch runs it) and counts as pooling:
      1 per element read;
    * ``grid_sample``: the same by mode (bilinear on a 5-D input is trilinear, 8);
    * ``affine_grid``: each output coordinate is a dot product of length ``d + 1``: ``2 *
      numel(out) * (d + 1)``.

    The weights (one set per output coordinate, shared by batch and channels) are not counted.
    fvcore counts the same neighbours in MACs (nearest 1, bilinear 4).
    """
    name = op_name(ctx)
    per_neighbour = ctx.convention.constant("interpolation", INTERPOLATION_PER_NEIGHBOUR)
    if "affinegrid" in name:
        theta = _tensor_arg(ctx, "theta")
        width = theta.shape[-1] if theta is not None else 3
        return per_neighbour * _output_numel(ctx) * width
    mode, antialias = _interpolation_mode(ctx, name)
    in_shape, out_shape = ctx.input_shapes[0], ctx.output_shape
    if mode == "area":
        # torch runs adaptive average pooling for it: counted as pooling counts
        reads = _adaptive_reads(in_shape, out_shape, len(out_shape) - 2)
        return ctx.convention.constant("pooling", POOLING_PER_ELEMENT) * reads
    if name.startswith("gridsample") and len(in_shape) == 5 and mode == "bilinear":
        mode = "trilinear"
    neighbours = INTERPOLATION_NEIGHBOURS.get(mode, 1)
    if antialias and mode in ("bilinear", "bicubic"):
        taps = 2 if mode == "bilinear" else 4
        neighbours = 1
        for in_size, out_size in zip(in_shape[-2:], out_shape[-2:], strict=True):
            widen = -(-in_size // out_size) if isinstance(in_size, int) and isinstance(out_size, int) else 1
            neighbours *= taps * max(1, widen)
    return per_neighbour * _numel(out_shape) * neighbours


def _register(category: str, rule_fn: Rule, *targets: object) -> None:
    for target in dict.fromkeys(targets):  # some aliases are one object (F.relu_ is torch.relu_)
        DEFAULT_REGISTRY.add(target, rule_fn, category=category)  # type: ignore[arg-type]


_register(
    "norm", norm_flops,
    nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LocalResponseNorm, nn.RMSNorm,
    nn.CrossMapLRN2d, F.layer_norm, F.batch_norm, F.group_norm, F.instance_norm, F.rms_norm,
    F.local_response_norm, F.normalize, torch.layer_norm, torch.batch_norm, torch.group_norm,
    torch._weight_norm,
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
    torch.polar, torch.add, torch.sub, torch.subtract, torch.mul, torch.multiply, torch.div, torch.divide,
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
    torch.hypot, torch.logit, torch.xlogy, torch.outer, torch.cross, torch.isin,
    # torch's aliases of the ops above
    torch.greater, torch.greater_equal, torch.less, torch.less_equal, torch.not_equal, torch.negative,
    torch.absolute, torch.arcsin, torch.arccos, torch.arctan, torch.arctan2, torch.asinh, torch.acosh,
    torch.atanh, torch.arcsinh, torch.arccosh, torch.arctanh,
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
    "__gt__", "__ge__", "__eq__", "__ne__", "__mod__", "logit", "__rdiv__", "__div__", "__rfloordiv__",
    "__rmod__", "__ifloordiv__", "__ipow__", "__rand__", "__ror__", "__rxor__", "isin", "isfinite",
    # torch's aliases of the methods above
    "greater", "greater_equal", "less", "less_equal", "not_equal", "negative", "absolute", "arcsin", "arccos",
    "arctan", "arctan2", "asinh", "acosh", "atanh", "arcsinh", "arccosh", "arctanh", "asin", "acos", "atan",
    "atan2", "sinh", "cosh", "multiply", "subtract", "divide",
)
_register("elementwise", elementwise_flops, *_ELEMENTWISE_OPERATORS, *_ELEMENTWISE_FUNCTIONS,
          *_ELEMENTWISE_METHODS)

_REDUCTION_FUNCTIONS = (
    torch.sum, torch.mean, torch.nansum, torch.nanmean, torch.prod, torch.max, torch.min, torch.amax,
    torch.amin, torch.aminmax, torch.argmax, torch.argmin, torch.std, torch.var, torch.std_mean,
    torch.var_mean, torch.norm, torch.logsumexp, torch.cumsum, torch.cumprod, torch.cummax,
    torch.cummin, torch.any, torch.all, torch.count_nonzero, torch.median, torch.nanmedian,
    torch.linalg.norm, torch.linalg.vector_norm, torch.linalg.matrix_norm, F.cosine_similarity,
    F.pairwise_distance, torch.cdist, torch.dist, torch.trace, torch.diff, torch._is_all_true,
    F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss, nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss,
    nn.HuberLoss,
)
_REDUCTION_METHODS = (
    "sum", "mean", "nansum", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "std", "var",
    "norm", "logsumexp", "cumsum", "cumprod", "any", "all", "count_nonzero", "median", "diff", "_is_all_true",
)
def scatter_reduce_flops(ctx: NodeContext) -> int:
    """``scatter_add``, ``scatter_reduce``, ``index_add``: one reduction step (add, multiply, max)
    per source element, ``1 * numel(src)``; where they land is indexing (free)."""
    src = ctx.tensor("src")
    if src is None:
        src = ctx.tensor("source")
    if src is None:
        return 0  # a scalar source: scatter_reduce of a value is a fill
    return ctx.convention.constant("reduction", REDUCTION_PER_ELEMENT) * src.numel()


_register("reduction", scatter_reduce_flops, torch.scatter_reduce, torch.scatter_add, torch.index_add,
          "scatter_reduce", "scatter_add", "index_add", "index_reduce")
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

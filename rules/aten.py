"""aten-level rules, for graphs captured by ``torch.export`` (the ``"export"`` and ``"auto"`` paths).

Most aten operators take the same arguments, in the same positions, as their torch-level
functions, so they reuse the torch-level rules (``aten.linear`` -> ``linear_flops``). Operators
that exist only at the aten level (fused attention kernels with other layouts, the fused
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` fast paths, the recurrent ops that
take a flat list of weights) have their own rules here, with the same conventions: 2 FLOPs per
multiply-accumulate; bias adds, softmax and the rest only under a convention that counts them;
causal attention dense unless ``causal="exact"`` and the op takes a causal flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fxflops.context import NodeContext
from fxflops.registry import DEFAULT_REGISTRY, Rule, zero

from .attention import _mha, _mha_extras, bshd_attention_flops, scaled_dot_product_attention_flops
from .by_convention import (
    ACTIVATION_PER_ELEMENT,
    BIAS_PER_ELEMENT,
    ELEMENTWISE_PER_ELEMENT,
    NORM_STATISTICS_PER_ELEMENT,
    activation_flops,
    elementwise_flops,
    interpolation_flops,
    named_arg,
    norm_flops,
    pooling_flops,
    reduction_flops,
    softmax_flops,
)
from .conv import conv_flops, conv_transpose_flops, convolution_flops
from .linear import (
    addbmm_flops,
    addmm_flops,
    einsum_flops,
    linear_flops,
    matmul_flops,
    matrix_vector_flops,
    mm_flops,
)
from .recurrent import steps_and_batch

aten = torch.ops.aten


def _ops(*names: str) -> list[torch._ops.OpOverloadPacket]:
    """The aten operators among ``names`` that this torch build has."""
    return [getattr(aten, name) for name in dict.fromkeys(names) if hasattr(aten, name)]


def _register(category: str, rule_fn: Rule, *names: str) -> None:
    for op in _ops(*names):
        DEFAULT_REGISTRY.add(op, rule_fn, category=category)


# -- matmul class: same arguments as the torch-level functions ----------------------------------
_register("matmul", linear_flops, "linear")
_register("matmul", matmul_flops, "matmul")
_register("matmul", mm_flops, "mm", "bmm", "_int_mm")
_register("matmul", addmm_flops, "addmm", "baddbmm")
_register("matmul", addbmm_flops, "addbmm")
_register("matmul", matrix_vector_flops, "mv", "dot", "vdot", "inner")
_register("matmul", einsum_flops, "einsum")
_register("conv", conv_flops, "conv1d", "conv2d", "conv3d", "cudnn_convolution", "mkldnn_convolution",
          "miopen_convolution", "miopen_depthwise_convolution", "_convolution_mode", "_nnpack_spatial_convolution",
          "thnn_conv2d", "_slow_conv2d_forward", "slow_conv3d", "slow_conv_dilated2d", "slow_conv_dilated3d",
          "_conv_depthwise2d", "conv_depthwise3d")
_register("conv", conv_transpose_flops, "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
          "cudnn_convolution_transpose", "miopen_convolution_transpose", "slow_conv_transpose2d",
          "slow_conv_transpose3d")
_register("conv", convolution_flops, "convolution", "_convolution", "convolution_overrideable")
_register("attention", scaled_dot_product_attention_flops, "scaled_dot_product_attention",
          "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention",
          "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention",
          "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_fused_attention_overrideable",
          "_scaled_dot_product_attention_math_for_mps")


_register("attention", bshd_attention_flops, "_flash_attention_forward", "_efficient_attention_forward")


def native_multi_head_attention_flops(ctx: NodeContext) -> int:
    """``aten._native_multi_head_attention`` (MHA fast path; (N, L, E) inputs, kdim = vdim = E).

    Projections ``2*N*(2L + 2S)*E*E`` (q, out; k, v) plus the dense core ``4*N*L*S*E``. The op
    takes its mask as a tensor (no causal flag), so ``causal="exact"`` cannot apply. Under a
    convention that counts them: projection biases, scaling and softmax (see ``attention``).
    """
    q, k = ctx.args[0], ctx.args[1]
    batch, length, embed = (q.shape if q.dim() == 3 else (1, *q.shape))
    source = k.shape[-2]
    cost, scores = _mha(batch=batch, target_len=length, source_len=source, embed_dim=embed, kdim=embed,
                        vdim=embed)
    mask = named_arg(ctx, "mask", default=None)
    cost.extra = _mha_extras(ctx.convention, batch=batch, target_len=length, source_len=source,
                             embed_dim=embed, heads=named_arg(ctx, "num_head", default=1), scores=scores,
                             float_mask=isinstance(mask, torch.Tensor) and mask.dtype.is_floating_point,
                             need_weights=bool(named_arg(ctx, "need_weights", default=True)),
                             averaged=bool(named_arg(ctx, "average_attn_weights", default=True)))
    return cost


def transformer_encoder_layer_fwd_flops(ctx: NodeContext) -> int:
    """``aten._transformer_encoder_layer_fwd`` (encoder layer fast path; (N, L, E) input).

    Self-attention as :func:`native_multi_head_attention_flops` plus the feed-forward
    ``2*N*L*E*F * 2`` with ``F`` the rows of ``ffn_weight_1``. Under a convention that counts
    them: the biases, the activation, two residual adds and two affine layer norms.
    """
    src = ctx.args[0]
    batch, length, embed = (src.shape if src.dim() == 3 else (1, *src.shape))
    ffn_weight_1 = ctx.tensor("ffn_weight_1")
    hidden = ffn_weight_1.shape[0] if ffn_weight_1 is not None else 0
    cost, scores = _mha(batch=batch, target_len=length, source_len=length, embed_dim=embed, kdim=embed,
                        vdim=embed)
    tokens = batch * length
    cost.matmul += 2 * 2 * tokens * embed * hidden
    cost.macs += 2 * tokens * embed * hidden
    mask = named_arg(ctx, "mask", default=None)
    convention = ctx.convention
    cost.extra = _mha_extras(convention, batch=batch, target_len=length, source_len=length, embed_dim=embed,
                             heads=named_arg(ctx, "num_heads", default=1), scores=scores,
                             float_mask=isinstance(mask, torch.Tensor) and mask.dtype.is_floating_point)
    cost.extra += convention.charge("bias", BIAS_PER_ELEMENT, tokens * hidden + tokens * embed)
    cost.extra += convention.charge("activation", ACTIVATION_PER_ELEMENT, tokens * hidden)
    cost.extra += convention.charge("elementwise", ELEMENTWISE_PER_ELEMENT, 2 * tokens * embed)
    cost.extra += convention.charge("norm", NORM_STATISTICS_PER_ELEMENT + 2, 2 * tokens * embed)
    return cost


_register("attention", native_multi_head_attention_flops, "_native_multi_head_attention")
_register("attention", transformer_encoder_layer_fwd_flops, "_transformer_encoder_layer_fwd")


def _weights_per_layer(params: Sequence[torch.Tensor], layers: int, directions: int) -> list[list[torch.Tensor]]:
    chunk = len(params) // (layers * directions)
    return [list(params[i:i + chunk]) for i in range(0, len(params), chunk)]


def recurrent_op_flops(ctx: NodeContext) -> int:
    """``aten.lstm`` / ``aten.gru`` / ``aten.rnn_tanh`` / ``aten.rnn_relu`` (the ``.input`` form).

    Per time step and batch row: ``2 * (numel(w_ih) + numel(w_hh) + numel(w_hr))`` summed over
    layers and directions; biases not counted. Same figure as the ``nn.LSTM`` module rule.
    """
    x, params = ctx.args[0], ctx.args[2]
    has_biases, layers = ctx.args[3], ctx.args[4]
    bidirectional, batch_first = ctx.args[7], ctx.args[8]
    if not isinstance(params, (list, tuple)):
        raise ValueError("packed-sequence recurrent ops are not supported; pass a padded tensor")
    directions = 2 if bidirectional else 1
    per_token = 0
    for weights in _weights_per_layer(params, layers, directions):
        matrices = [weights[0], weights[1]]
        if len(weights) in (3, 5):  # proj_size: w_hr follows the (optional) biases
            matrices.append(weights[-1])
        per_token += 2 * sum(w.numel() for w in matrices)
    del has_biases
    steps, batch = steps_and_batch(tuple(x.shape), batch_first)
    return per_token * steps * batch


def recurrent_cell_op_flops(ctx: NodeContext) -> int:
    """``aten.lstm_cell`` / ``gru_cell`` / ``rnn_tanh_cell`` / ``rnn_relu_cell``: one step,
    ``2 * N * (numel(w_ih) + numel(w_hh))``."""
    x, w_ih, w_hh = ctx.args[0], ctx.args[2], ctx.args[3]
    batch = x.shape[0] if x.dim() == 2 else 1
    return 2 * batch * (w_ih.numel() + w_hh.numel())


_register("recurrent", recurrent_op_flops, "lstm", "gru", "rnn_tanh", "rnn_relu")
_register("recurrent", recurrent_cell_op_flops, "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell")

# -- counted only by conventions that count their category --------------------------------------
_register("norm", norm_flops, "layer_norm", "native_layer_norm", "batch_norm", "native_batch_norm",
          "_native_batch_norm_legit", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional",
          "_batch_norm_with_update", "_batch_norm_no_update", "cudnn_batch_norm", "group_norm",
          "native_group_norm", "instance_norm", "rms_norm", "_fused_rms_norm", "local_response_norm")
_register("activation", activation_flops, "relu", "relu_", "relu6", "gelu", "gelu_", "silu", "silu_", "sigmoid",
          "sigmoid_", "tanh", "tanh_", "hardtanh", "hardtanh_", "hardswish", "hardswish_", "hardsigmoid",
          "hardsigmoid_", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "softplus", "mish",
          "mish_", "glu", "threshold", "prelu", "_prelu_kernel", "log_sigmoid", "log_sigmoid_forward",
          "softshrink", "hardshrink", "rrelu")
_register("softmax", softmax_flops, "softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax")
_register("elementwise", elementwise_flops, "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_",
          "pow", "pow_", "neg", "exp", "exp_", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt",
          "rsqrt", "abs", "clamp", "clamp_", "clamp_min", "clamp_max", "maximum", "minimum", "erf", "erfinv",
          "sin", "cos", "tan", "atan", "atan2", "sinh", "cosh", "eq", "ne", "lt", "le", "gt", "ge",
          "__and__", "__or__", "__xor__", "__invert__", "logical_and", "logical_or", "logical_not",
          "logical_xor", "bitwise_and", "bitwise_or", "bitwise_not", "bitwise_xor", "reciprocal", "square",
          "sign", "sgn", "floor", "ceil", "round", "trunc", "frac", "lerp", "addcmul", "addcdiv",
          "remainder", "fmod", "floor_divide", "true_divide", "isnan", "isinf", "nan_to_num", "hypot",
          "logit", "xlogy", "outer", "cross", "linalg_cross", "copysign", "float_power", "signbit")
_register("reduction", reduction_flops, "sum", "mean", "nansum", "prod", "amax", "amin", "aminmax", "max",
          "min", "argmax", "argmin", "var", "std", "var_mean", "std_mean", "norm", "linalg_vector_norm",
          "logsumexp", "cumsum", "cumprod", "cummax", "cummin", "any", "all", "count_nonzero", "median",
          "diff", "embedding_bag", "_embedding_bag", "cosine_similarity", "pairwise_distance", "cdist",
          "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
          "_cdist_forward", "dist")
_register("pooling", pooling_flops, "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices",
          "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
          "adaptive_avg_pool2d", "adaptive_avg_pool3d", "_adaptive_avg_pool2d", "_adaptive_avg_pool3d",
          "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "mkldnn_max_pool2d",
          "fractional_max_pool2d", "fractional_max_pool3d", "lp_pool1d", "lp_pool2d")
_register("interpolation", interpolation_flops, "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
          "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d",
          "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d", "upsample_bicubic2d",
          "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa", "grid_sampler", "grid_sampler_2d",
          "grid_sampler_3d", "affine_grid_generator")

# -- 0 by definition: views, copies, indexing, creation, assertions ------------------------------
zero(*_ops(
    "view", "_unsafe_view", "reshape", "view_as", "reshape_as", "expand", "expand_as", "permute",
    "transpose", "t", "unsqueeze", "squeeze", "slice", "select", "index", "index_select", "gather",
    "clone", "contiguous", "copy", "copy_", "_to_copy", "to", "alias", "detach", "lift_fresh_copy",
    "cat", "concat", "stack", "hstack", "vstack", "split", "split_with_sizes", "tensor_split", "chunk",
    "unbind", "narrow", "embedding", "dropout", "native_dropout", "feature_dropout", "alpha_dropout",
    "arange", "zeros", "ones", "full", "empty", "empty_strided", "new_ones", "new_zeros", "new_empty",
    "new_full", "zeros_like", "ones_like", "full_like", "empty_like", "rand", "randn", "randint",
    "rand_like", "randn_like", "bernoulli", "scalar_tensor", "tensor", "_assert_tensor_metadata",
    "_assert_async", "_assert_scalar", "sym_constrain_range_for_size", "_functional_assert_async",
    "sym_size", "sym_numel", "sym_stride", "sym_storage_offset", "tril", "triu", "flip", "roll",
    "repeat", "repeat_interleave", "tile", "flatten", "unflatten", "scatter", "scatter_", "index_put",
    "index_put_", "select_scatter", "slice_scatter", "diagonal_scatter", "as_strided_scatter",
    "constant_pad_nd", "pad", "reflection_pad1d", "reflection_pad2d", "replication_pad1d",
    "replication_pad2d", "_unsafe_index", "unfold", "im2col", "col2im", "movedim", "diagonal",
    "diag_embed", "_local_scalar_dense", "item", "sort", "topk", "argsort", "masked_select",
    "nonzero", "one_hot", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle",
    "as_strided", "view_as_real", "view_as_complex", "_reshape_alias", "expand_copy", "permute_copy",
    "view_copy", "unsqueeze_copy", "squeeze_copy", "t_copy", "transpose_copy", "slice_copy",
    "select_copy", "detach_", "requires_grad_", "set_", "resize_", "_unsafe_index_put", "index_fill",
    "masked_fill_", "masked_scatter", "index_copy", "searchsorted", "bucketize", "unique", "_unique2",
    "unique_consecutive", "lift", "lift_fresh", "zero_", "uniform_", "normal_", "random_", "broadcast_to",
    "meshgrid", "linspace", "logspace", "eye", "randperm", "multinomial", "_to_dense", "to_dense",
    "_make_dep_token", "_foreach_copy", "fill", "fill_", "masked_fill", "where", "tril_", "triu_",
    "numpy_T", "real", "imag", "conj", "_conj", "resolve_conj", "resolve_neg",
))

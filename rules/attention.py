"""Attention: the score and value matmuls, plus the projections of attention layers.

Scaled dot-product attention with queries (..., L, E), keys (..., S, E) and values (..., S, Ev)
computes scores = Q K^T, (..., L, S), and out = softmax(scores) V, (..., L, Ev):
``2 * B * L * S * E + 2 * B * L * S * Ev`` with ``B`` the product of the output's batch and head
dimensions: the query's, broadcast against the keys' and values' (grouped-query attention shares
keys but still computes every query head). Softmax,
scaling, masking and dropout are not counted (default convention). ``is_causal=True`` is counted
dense, as FlopCounterMode and OpenCLIP's table do.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import nn

from fxflops.context import NodeContext
from fxflops.registry import rule


def sdpa_cost(
    q_shape: tuple[int, ...],
    k_shape: tuple[int, ...],
    v_shape: tuple[int, ...],
    out_shape: tuple[int, ...] | None = None,
) -> int:
    """FLOPs of softmax(Q K^T) V for query, key, value and output shapes (..., L, E), (..., S, E),
    (..., S, Ev), (B..., L, Ev): ``2 * prod(B...) * L * S * (E + Ev)``.

    ``B...`` are the output's batch and head dimensions: the query's, broadcast against the keys'
    and values'. Without ``out_shape``, the query's own.
    """
    length, dim = q_shape[-2], q_shape[-1]
    source = k_shape[-2]
    value_dim = v_shape[-1]
    batch = math.prod((q_shape if out_shape is None else out_shape)[:-2])
    return 2 * batch * length * source * (dim + value_dim)


@rule(F.scaled_dot_product_attention, category="attention")
def scaled_dot_product_attention_flops(ctx: NodeContext) -> int:
    """``F.scaled_dot_product_attention``: ``2 * B * H_q * L * S * (E + Ev)``."""
    q, k, v = ctx.tensor("query", 0), ctx.tensor("key", 1), ctx.tensor("value", 2)
    if q is None or k is None or v is None:
        raise ValueError("scaled_dot_product_attention needs query, key and value tensors")
    return sdpa_cost(tuple(q.shape), tuple(k.shape), tuple(v.shape), ctx.output_shape)


def mha_cost(
    *,
    batch: int,
    target_len: int,
    source_len: int,
    embed_dim: int,
    kdim: int,
    vdim: int,
    extra_keys: int = 0,
    attended_len: int | None = None,
    out_dim: int | None = None,
) -> int:
    """FLOPs of multi-head attention with ``embed_dim`` split over the heads.

    Projections: q ``2*N*L*E*E``, k ``2*N*S*kdim*E``, v ``2*N*S*vdim*E``, out ``2*N*L*E*out_dim``
    (``out_dim`` is ``E`` except in functional calls whose output projection changes the width).
    Core: scores and values ``2 * 2*N*L*S'*E`` where ``S' = S + extra_keys`` (``add_bias_kv`` and
    ``add_zero_attn`` each append one key after projection); ``S`` is ``attended_len`` when the
    attended keys are not the projected ones (``static_k``). The number of heads cancels out.
    """
    n, length, source, e = batch, target_len, source_len, embed_dim
    projections = 2 * n * length * e * e + 2 * n * length * e * (e if out_dim is None else out_dim)
    projections += 2 * n * source * kdim * e + 2 * n * source * vdim * e
    attended = source if attended_len is None else attended_len
    core = 2 * 2 * n * length * (attended + extra_keys) * e
    return projections + core


def _layout(shape: tuple[int, ...], batch_first: bool) -> tuple[int, int]:
    """(batch, length) of an attention input: (L, N, E), (N, L, E) when batch_first, or (L, E)."""
    if len(shape) == 2:
        return 1, shape[0]
    return (shape[0], shape[1]) if batch_first else (shape[1], shape[0])


@rule(nn.MultiheadAttention, category="attention")
def multihead_attention_flops(ctx: NodeContext) -> int:
    """``nn.MultiheadAttention``: projections + dense attention core (see :func:`mha_cost`).

    Independent of ``need_weights`` and of the fused fast path: both do the same matmuls.
    """
    module = ctx.module
    assert isinstance(module, nn.MultiheadAttention)
    q, k, v = ctx.tensor("query", 0), ctx.tensor("key", 1), ctx.tensor("value", 2)
    if q is None or k is None or v is None:
        raise ValueError("MultiheadAttention needs query, key and value tensors")
    batch, target_len = _layout(tuple(q.shape), module.batch_first)
    _, source_len = _layout(tuple(k.shape), module.batch_first)
    extra = (1 if module.bias_k is not None else 0) + (1 if module.add_zero_attn else 0)
    return mha_cost(batch=batch, target_len=target_len, source_len=source_len, embed_dim=module.embed_dim,
                    kdim=module.kdim, vdim=module.vdim, extra_keys=extra)


@rule(F.multi_head_attention_forward, category="attention")
def multi_head_attention_forward_flops(ctx: NodeContext) -> int:
    """``F.multi_head_attention_forward``: as ``nn.MultiheadAttention`` (inputs are (L, N, E)).

    With ``static_k`` the attention core runs over the static keys' length, but ``key`` and
    ``value`` are still projected (torch computes the in-projection before it looks at
    ``static_k``), so their projections are counted over ``key``'s length.
    """
    q, k, v = ctx.tensor("query", 0), ctx.tensor("key", 1), ctx.tensor("value", 2)
    if q is None or k is None or v is None:
        raise ValueError("multi_head_attention_forward needs query, key and value tensors")
    batch, target_len = _layout(tuple(q.shape), batch_first=False)
    _, source_len = _layout(tuple(k.shape), batch_first=False)
    embed_dim = q.shape[-1]
    static_k = ctx.tensor("static_k", 21)
    extra = (1 if ctx.tensor("bias_k", 7) is not None else 0) + (1 if ctx.arg("add_zero_attn", 9) else 0)
    attended_len = static_k.shape[1] if static_k is not None else None
    out_weight = ctx.tensor("out_proj_weight", 11)
    out_dim = out_weight.shape[0] if out_weight is not None else embed_dim
    return mha_cost(batch=batch, target_len=target_len, source_len=source_len, embed_dim=embed_dim,
                    kdim=k.shape[-1], vdim=v.shape[-1], extra_keys=extra,
                    attended_len=attended_len, out_dim=out_dim)


def _feedforward_cost(tokens: int, layer: nn.Module) -> int:
    linear1, linear2 = layer.linear1, layer.linear2
    return 2 * tokens * linear1.in_features * linear1.out_features + \
        2 * tokens * linear2.in_features * linear2.out_features


def encoder_layer_cost(layer: nn.TransformerEncoderLayer, batch: int, length: int) -> int:
    """Self-attention over ``length`` tokens plus the two feed-forward linears."""
    attn = layer.self_attn
    extra = (1 if attn.bias_k is not None else 0) + (1 if attn.add_zero_attn else 0)
    attention = mha_cost(batch=batch, target_len=length, source_len=length, embed_dim=attn.embed_dim,
                         kdim=attn.kdim, vdim=attn.vdim, extra_keys=extra)
    return attention + _feedforward_cost(batch * length, layer)


def decoder_layer_cost(layer: nn.TransformerDecoderLayer, batch: int, length: int, source: int) -> int:
    """Self-attention, cross-attention over ``source`` memory tokens, feed-forward."""
    total = 0
    for attn, src in ((layer.self_attn, length), (layer.multihead_attn, source)):
        extra = (1 if attn.bias_k is not None else 0) + (1 if attn.add_zero_attn else 0)
        total += mha_cost(batch=batch, target_len=length, source_len=src, embed_dim=attn.embed_dim,
                          kdim=attn.kdim, vdim=attn.vdim, extra_keys=extra)
    return total + _feedforward_cost(batch * length, layer)


def _batch_first(module: nn.Module) -> bool:
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        return bool(module.self_attn.batch_first)
    layers = getattr(module, "layers", None)
    if layers is not None and len(layers):
        return _batch_first(layers[0])
    return bool(getattr(module, "batch_first", False))


@rule(nn.TransformerEncoderLayer, category="attention")
def transformer_encoder_layer_flops(ctx: NodeContext) -> int:
    """``nn.TransformerEncoderLayer``: self-attention + ``linear1`` + ``linear2`` (norms free)."""
    module = ctx.module
    assert isinstance(module, nn.TransformerEncoderLayer)
    batch, length = _layout(ctx.input_shapes[0], _batch_first(module))
    return encoder_layer_cost(module, batch, length)


@rule(nn.TransformerDecoderLayer, category="attention")
def transformer_decoder_layer_flops(ctx: NodeContext) -> int:
    """``nn.TransformerDecoderLayer``: self-attention, cross-attention to memory, feed-forward."""
    module = ctx.module
    assert isinstance(module, nn.TransformerDecoderLayer)
    first = _batch_first(module)
    batch, length = _layout(ctx.input_shapes[0], first)
    _, source = _layout(ctx.input_shapes[1], first)
    return decoder_layer_cost(module, batch, length, source)


@rule(nn.TransformerEncoder, category="attention")
def transformer_encoder_flops(ctx: NodeContext) -> int:
    """``nn.TransformerEncoder``: the sum of its layers (the final norm is free)."""
    module = ctx.module
    assert isinstance(module, nn.TransformerEncoder)
    batch, length = _layout(ctx.input_shapes[0], _batch_first(module))
    return sum(encoder_layer_cost(layer, batch, length) for layer in module.layers)


@rule(nn.TransformerDecoder, category="attention")
def transformer_decoder_flops(ctx: NodeContext) -> int:
    """``nn.TransformerDecoder``: the sum of its layers (the final norm is free)."""
    module = ctx.module
    assert isinstance(module, nn.TransformerDecoder)
    first = _batch_first(module)
    batch, length = _layout(ctx.input_shapes[0], first)
    _, source = _layout(ctx.input_shapes[1], first)
    return sum(decoder_layer_cost(layer, batch, length, source) for layer in module.layers)


@rule(nn.Transformer, category="attention")
def transformer_flops(ctx: NodeContext) -> int:
    """``nn.Transformer``: encoder over ``src``, then decoder over ``tgt`` attending to it."""
    module = ctx.module
    assert isinstance(module, nn.Transformer)
    first = module.batch_first
    batch, source = _layout(ctx.input_shapes[0], first)
    _, length = _layout(ctx.input_shapes[1], first)
    encoder = module.encoder
    decoder = module.decoder
    enc = sum(encoder_layer_cost(layer, batch, source) for layer in encoder.layers)
    dec = sum(decoder_layer_cost(layer, batch, length, source) for layer in decoder.layers)
    return enc + dec

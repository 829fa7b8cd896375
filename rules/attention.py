"""Attention: the score and value matmuls, plus the projections of attention layers.

Scaled dot-product attention with queries (..., L, E), keys (..., S, E) and values (..., S, Ev)
computes scores = Q K^T, (..., L, S), and out = softmax(scores) V, (..., L, Ev):
``2 * B * L * S * E + 2 * B * L * S * Ev`` with ``B`` the product of the output's batch and head
dimensions: the query's, broadcast against the keys' and values' (grouped-query attention shares
keys but still computes every query head).

**Causal masks.** With ``count(..., causal="dense")`` (the default) a causal mask saves nothing, as
FlopCounterMode and OpenCLIP's table count. With ``causal="exact"`` only the score entries the mask
keeps are counted: ``L * S`` becomes, for torch's ``is_causal=True`` (top-left aligned: query i sees
keys 0..i), ``sum over i < L of min(i + 1, S)`` = ``m(m+1)/2 + (L - m) * S`` with ``m = min(L, S)``,
``L(L+1)/2`` when ``L == S``. Kernels whose causal flag is bottom-right aligned (the CUDA flash
kernels, ``_efficient_attention_forward`` with ``custom_mask_type=2``: query i sees keys
0..i + S - L) keep ``m(m+1)/2 + m * (S - m)``. A mask passed as a tensor counts as causal when it
evaluates to torch's top-left causal mask (``_alignment``, :mod:`fxflops.masks`); a mask without
data (meta) is counted dense, with a warning.

**Conventions.** A fused attention op costs what its unfused equivalent costs under the same
convention. Under ``"default"`` that is the matmuls alone (FlopCounterMode's count). A convention
that counts more categories adds, per kept score entry, the scaling by ``1/sqrt(E)``
(``elementwise``, 1), a float mask add (``elementwise``, 1; boolean and causal masks select, 0) and
the softmax (``softmax``, 3); attention layers add their projection biases (``bias``, 1 per output
element) and the Transformer layers their norms, activation and residual adds. MACs stay those of
the matmuls.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fxflops.context import NodeContext
from fxflops.convention import Convention
from fxflops.cost import Cost
from fxflops.masks import MHA, SDPA
from fxflops.registry import rule

from .by_convention import (
    ACTIVATION_PER_ELEMENT,
    BIAS_PER_ELEMENT,
    ELEMENTWISE_PER_ELEMENT,
    REDUCTION_PER_ELEMENT,
    SOFTMAX_PER_ELEMENT,
    _module_norm_constant,
    named_arg,
    op_name,
)

#: Causal mask alignments: query i sees keys 0..i (torch's ``is_causal``), or 0..i + S - L.
TOP_LEFT = "top_left"
BOTTOM_RIGHT = "bottom_right"


# -- score entries ----------------------------------------------------------------------------


class Scores(NamedTuple):
    """Score entries an attention head computes: ``twice`` is 2x the count (an exact polynomial,
    also for symbolic sizes), ``half`` the count itself."""

    twice: Any
    count: Any

    def __add__(self, other: object) -> Scores:  # type: ignore[override]
        assert isinstance(other, Scores)
        return Scores(self.twice + other.twice, self.count + other.count)


def _same_size(a: Any, b: Any) -> bool:
    """``a == b`` for sizes that may be ``SymInt``s, without adding a guard: symbolic sizes are
    the same only when they are the same expression."""
    symbolic = isinstance(a, torch.SymInt) or isinstance(b, torch.SymInt)
    if not symbolic:
        return bool(a == b)
    if isinstance(a, torch.SymInt) and isinstance(b, torch.SymInt):
        return bool(a.node.expr == b.node.expr)
    return False


def _min(a: Any, b: Any) -> Any:
    if isinstance(a, torch.SymInt) or isinstance(b, torch.SymInt):
        return torch.sym_min(a, b)
    return min(a, b)


def kept_scores(length: Any, source: Any, alignment: str | None = None) -> Scores:
    """Score entries of one head with ``length`` queries and ``source`` keys.

    ``alignment`` ``None``: every entry, ``L * S``. :data:`TOP_LEFT` (torch's ``is_causal``):
    ``sum_{i<L} min(i + 1, S)`` = ``m(m+1)/2 + (L - m) * S``, ``m = min(L, S)``.
    :data:`BOTTOM_RIGHT`: ``sum_{i<L} clamp(i + 1 + S - L, 0, S)`` = ``m(m+1)/2 + m * (S - m)``.
    Both are ``L(L+1)/2`` when ``L`` and ``S`` are the same size (for symbolic sizes: the same
    expression; otherwise ``min`` stays symbolic).

    >>> kept_scores(16, 16, TOP_LEFT).count  # 16 * 17 / 2
    136
    """
    if alignment is None:
        return Scores(2 * length * source, length * source)
    if _same_size(length, source):
        triangle = length * (length + 1)
        return Scores(triangle, triangle // 2)
    m = _min(length, source)
    rest = (length - m) * source if alignment == TOP_LEFT else m * (source - m)
    return Scores(m * (m + 1) + 2 * rest, m * (m + 1) // 2 + rest)


def _times(constant: int, scores: Scores) -> Any:
    """``constant * scores.count``, from ``twice`` when that needs no division."""
    if constant % 2 == 0:
        return (constant // 2) * scores.twice
    return constant * scores.count


def _half_times(factor: Any, scores: Scores) -> Any:
    """``factor * scores.count``, from ``twice`` when ``factor`` is an even int (no division)."""
    if isinstance(factor, int) and factor % 2 == 0:
        return (factor // 2) * scores.twice
    return factor * scores.count


def _alignment(ctx: NodeContext, is_causal: Any, bottom_right: bool = False,
               mask: tuple[str, str] | None = None) -> str | None:
    """The causal alignment to count under ``causal="exact"``, or ``None`` (dense).

    Causal when the kernel's flag says so, or when ``mask`` (the mask argument's name and
    semantics) evaluates to torch's top-left causal mask (:mod:`fxflops.masks`).
    """
    if ctx.causal != "exact":
        return None
    if not is_causal and not (mask is not None and ctx.mask_is_causal(*mask)):
        return None
    return BOTTOM_RIGHT if bottom_right and is_causal else TOP_LEFT


def _is_float_mask(mask: Any) -> bool:
    return isinstance(mask, torch.Tensor) and mask.dtype.is_floating_point


def score_extras(convention: Convention, heads: Any, scores: Scores, *, float_mask: bool = False,
                 averaged: bool = False, scale_scores: bool = True) -> Any:
    """Non-matmul work on ``heads`` score matrices of ``scores`` entries each, under ``convention``:
    scaling (elementwise, 1; ``scale_scores=False`` when the caller scales the queries instead),
    a float mask add (elementwise, 1), softmax (3), and the mean over heads of ``need_weights``
    (reduction, 1). 0 under ``"default"``."""
    per_entry = convention.charge("elementwise", ELEMENTWISE_PER_ELEMENT, 1) if scale_scores else 0
    if float_mask:
        per_entry += convention.charge("elementwise", ELEMENTWISE_PER_ELEMENT, 1)
    per_entry += convention.charge("softmax", SOFTMAX_PER_ELEMENT, 1)
    if averaged:
        per_entry += convention.charge("reduction", REDUCTION_PER_ELEMENT, 1)
    return heads * _times(per_entry, scores) if per_entry else 0


def _mm(macs: Any) -> Cost:
    return Cost(matmul=2 * macs, macs=macs)


# -- scaled dot-product attention -------------------------------------------------------------


def sdpa_cost(
    q_shape: tuple[int, ...],
    k_shape: tuple[int, ...],
    v_shape: tuple[int, ...],
    out_shape: tuple[int, ...] | None = None,
    *,
    alignment: str | None = None,
) -> int:
    """FLOPs of softmax(Q K^T) V for query, key, value and output shapes (..., L, E), (..., S, E),
    (..., S, Ev), (B..., L, Ev): ``2 * prod(B...) * L * S * (E + Ev)``.

    ``B...`` are the output's batch and head dimensions: the query's, broadcast against the keys'
    and values'. Without ``out_shape``, the query's own. With a causal ``alignment``, ``L * S``
    becomes the kept entries of :func:`kept_scores`.
    """
    return _sdpa(q_shape, k_shape, v_shape, out_shape, alignment)[0].matmul


def _sdpa(q_shape: tuple[Any, ...], k_shape: tuple[Any, ...], v_shape: tuple[Any, ...],
          out_shape: tuple[Any, ...] | None, alignment: str | None) -> tuple[Cost, Any, Scores]:
    length, dim = q_shape[-2], q_shape[-1]
    source = k_shape[-2]
    value_dim = v_shape[-1]
    batch = math.prod((q_shape if out_shape is None else out_shape)[:-2])
    scores = kept_scores(length, source, alignment)
    factor = batch * (dim + value_dim)
    return Cost(matmul=factor * scores.twice, macs=_half_times(factor, scores)), batch, scores


# aten kernels whose causal flag is bottom-right aligned (flash attention's own convention)
_BOTTOM_RIGHT_KERNELS = frozenset({"scaleddotproductflashattention", "flashattentionforward"})


@rule(F.scaled_dot_product_attention, category="attention")
def scaled_dot_product_attention_flops(ctx: NodeContext) -> int:
    """``F.scaled_dot_product_attention`` and the aten SDPA kernels:
    ``2 * B * H_q * L * S * (E + Ev)``.

    ``causal="exact"`` with ``is_causal=True``: ``L * S`` becomes the kept entries (top-left,
    :func:`kept_scores`); the CUDA flash kernels' flag is bottom-right aligned. Conventions
    counting more than matmuls add :func:`score_extras` per kept entry.
    """
    q, k, v = ctx.tensor("query"), ctx.tensor("key"), ctx.tensor("value")
    if q is None or k is None or v is None:
        raise ValueError("scaled_dot_product_attention needs query, key and value tensors")
    is_causal = named_arg(ctx, "is_causal", default=False)
    mask = named_arg(ctx, "attn_mask", default=None)
    if mask is None:  # the memory-efficient kernels call it attn_bias
        mask = named_arg(ctx, "attn_bias", default=None)
    alignment = _alignment(ctx, is_causal, bottom_right=op_name(ctx) in _BOTTOM_RIGHT_KERNELS,
                           mask=("attn_mask", SDPA))
    cost, batch, scores = _sdpa(tuple(q.shape), tuple(k.shape), tuple(v.shape), ctx.output_shape, alignment)
    cost.extra = score_extras(ctx.convention, batch, scores, float_mask=_is_float_mask(mask))
    return cost


def bshd_attention_flops(ctx: NodeContext) -> int:
    """``_flash_attention_forward`` / ``_efficient_attention_forward``: q, k, v are (B, S, H, D).

    Same cost as SDPA, ``2 * B * H * L * S * (E + Ev)``, read from the batch-sequence-head layout.
    With variable-length batches (``cum_seq_q`` given) the padded maximum lengths are an upper
    bound. Causal: ``_flash_attention_forward``'s ``is_causal`` is bottom-right aligned;
    ``_efficient_attention_forward``'s ``custom_mask_type`` is 1 top-left, 2 bottom-right.
    """
    q, k, v = ctx.args[0], ctx.args[1], ctx.args[2]
    b, length, heads, dim = q.shape[-4:] if q.dim() == 4 else (1, *q.shape)
    source = k.shape[-3]
    if op_name(ctx) == "efficientattentionforward":
        mask_type = named_arg(ctx, "custom_mask_type", default=0)
        alignment = _alignment(ctx, mask_type in (1, 2), bottom_right=mask_type == 2)
        mask = named_arg(ctx, "bias", default=None)
    else:
        alignment = _alignment(ctx, named_arg(ctx, "is_causal", default=False), bottom_right=True)
        mask = None
    cost, batch, scores = _sdpa((b, heads, length, dim), (b, heads, source, dim),
                                (b, heads, source, v.shape[-1]), None, alignment)
    cost.extra = score_extras(ctx.convention, batch, scores, float_mask=_is_float_mask(mask))
    return cost


# -- multi-head attention ---------------------------------------------------------------------


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
    alignment: str | None = None,
) -> int:
    """FLOPs of multi-head attention with ``embed_dim`` split over the heads.

    Projections: q ``2*N*L*E*E``, k ``2*N*S*kdim*E``, v ``2*N*S*vdim*E``, out ``2*N*L*E*out_dim``
    (``out_dim`` is ``E`` except in functional calls whose output projection changes the width).
    Core: scores and values ``2 * 2*N*L*S'*E`` where ``S' = S + extra_keys`` (``add_bias_kv`` and
    ``add_zero_attn`` each append one key after projection); ``S`` is ``attended_len`` when the
    attended keys are not the projected ones (``static_k``). The number of heads cancels out.
    With a causal ``alignment`` the core covers the kept entries of :func:`kept_scores` over
    ``(L, S)`` plus the appended keys, which every query sees.
    """
    return _mha(batch=batch, target_len=target_len, source_len=source_len, embed_dim=embed_dim, kdim=kdim,
                vdim=vdim, extra_keys=extra_keys, attended_len=attended_len, out_dim=out_dim,
                alignment=alignment)[0].matmul


def _mha(*, batch: Any, target_len: Any, source_len: Any, embed_dim: Any, kdim: Any, vdim: Any,
         extra_keys: int = 0, attended_len: Any = None, out_dim: Any = None,
         alignment: str | None = None) -> tuple[Cost, Scores]:
    n, length, source, e = batch, target_len, source_len, embed_dim
    out = e if out_dim is None else out_dim
    projections = n * length * e * e + n * length * e * out + n * source * kdim * e + n * source * vdim * e
    attended = source if attended_len is None else attended_len
    scores = kept_scores(length, attended, alignment)
    if extra_keys:
        scores = scores + Scores(2 * length * extra_keys, length * extra_keys)
    # the head count cancels: heads * (E / heads) = E
    core = Cost(matmul=2 * n * e * scores.twice, macs=n * e * scores.twice)
    return _mm(projections) + core, scores


def _mha_extras(convention: Convention, *, batch: Any, target_len: Any, source_len: Any, embed_dim: Any,
                heads: Any, scores: Scores, out_dim: Any = None, in_bias: bool = True, out_bias: bool = True,
                float_mask: bool = False, need_weights: bool = False, averaged: bool = False) -> Any:
    """Projection biases (q over L, k and v over S, out over L) and :func:`score_extras`.

    As torch: with ``need_weights`` the queries are scaled (``N*L*E``) and the weights averaged
    over heads when ``averaged``; without, SDPA scales the scores.
    """
    n, e = batch, embed_dim
    out = e if out_dim is None else out_dim
    biased = (n * target_len * e + 2 * n * source_len * e if in_bias else 0) + \
        (n * target_len * out if out_bias else 0)
    extra = convention.charge("bias", BIAS_PER_ELEMENT, biased) if biased else 0
    if need_weights:
        extra += convention.charge("elementwise", ELEMENTWISE_PER_ELEMENT, n * target_len * e)
    return extra + score_extras(convention, n * heads, scores, float_mask=float_mask,
                                averaged=need_weights and averaged, scale_scores=not need_weights)


def _layout(shape: tuple[int, ...], batch_first: bool) -> tuple[int, int]:
    """(batch, length) of an attention input: (L, N, E), (N, L, E) when batch_first, or (L, E)."""
    if len(shape) == 2:
        return 1, shape[0]
    return (shape[0], shape[1]) if batch_first else (shape[1], shape[0])


def _extra_keys(attn: nn.MultiheadAttention) -> int:
    return (1 if attn.bias_k is not None else 0) + (1 if attn.add_zero_attn else 0)


def _module_attention(convention: Convention, attn: nn.MultiheadAttention, *, batch: Any, length: Any,
                      source: Any, alignment: str | None, float_mask: bool = False,
                      need_weights: bool = False, averaged: bool = False) -> Cost:
    """Cost of an ``nn.MultiheadAttention`` module over ``length`` queries and ``source`` keys."""
    cost, scores = _mha(batch=batch, target_len=length, source_len=source, embed_dim=attn.embed_dim,
                        kdim=attn.kdim, vdim=attn.vdim, extra_keys=_extra_keys(attn), alignment=alignment)
    cost.extra = _mha_extras(convention, batch=batch, target_len=length, source_len=source,
                             embed_dim=attn.embed_dim, heads=attn.num_heads, scores=scores,
                             in_bias=attn.in_proj_bias is not None, out_bias=attn.out_proj.bias is not None,
                             float_mask=float_mask, need_weights=need_weights, averaged=averaged)
    return cost


def _mask_added(is_causal: Any, attn_mask: Any, key_padding_mask: Any = None,
                need_weights: bool = False) -> bool:
    """Whether multi-head attention adds a mask to its scores, as torch does: it turns boolean
    masks into float ones and adds them, except that with ``is_causal`` (and no padding mask,
    no weights) it drops ``attn_mask`` and lets SDPA apply the causal mask by selection."""
    if key_padding_mask is not None:
        return True
    if attn_mask is None:
        return False
    return not (is_causal and not need_weights)


def multihead_attention_alignment(ctx: NodeContext) -> str | None:
    """The causal alignment of an ``nn.MultiheadAttention`` node (its ``is_causal`` hint, or an
    ``attn_mask`` that evaluates to the causal mask); shared with its backward formula."""
    return _alignment(ctx, ctx.arg("is_causal", default=False), mask=("attn_mask", MHA))


@rule(nn.MultiheadAttention, category="attention")
def multihead_attention_flops(ctx: NodeContext) -> int:
    """``nn.MultiheadAttention``: projections + attention core (see :func:`mha_cost`).

    Independent of ``need_weights`` and of the fused fast path under ``"default"``: both do the
    same matmuls. ``causal="exact"`` with ``is_causal=True`` (the hint that ``attn_mask`` is the
    causal mask), or with an ``attn_mask`` that evaluates to the causal mask, counts the kept entries.
    """
    module = ctx.module
    assert isinstance(module, nn.MultiheadAttention)
    q, k, v = ctx.tensor("query"), ctx.tensor("key"), ctx.tensor("value")
    if q is None or k is None or v is None:
        raise ValueError("MultiheadAttention needs query, key and value tensors")
    batch, target_len = _layout(tuple(q.shape), module.batch_first)
    _, source_len = _layout(tuple(k.shape), module.batch_first)
    is_causal = ctx.arg("is_causal", default=False)
    need_weights = bool(ctx.arg("need_weights", default=True))
    float_mask = _mask_added(is_causal, ctx.arg("attn_mask", default=None),
                             ctx.arg("key_padding_mask", default=None), need_weights)
    cost = _module_attention(ctx.convention, module, batch=batch, length=target_len, source=source_len,
                             alignment=multihead_attention_alignment(ctx), float_mask=float_mask,
                             need_weights=need_weights,
                             averaged=bool(ctx.arg("average_attn_weights", default=True)))
    return cost


@rule(F.multi_head_attention_forward, category="attention")
def multi_head_attention_forward_flops(ctx: NodeContext) -> int:
    """``F.multi_head_attention_forward``: as ``nn.MultiheadAttention`` (inputs are (L, N, E)).

    With ``static_k`` the attention core runs over the static keys' length, but ``key`` and
    ``value`` are still projected (torch computes the in-projection before it looks at
    ``static_k``), so their projections are counted over ``key``'s length.
    """
    q, k, v = ctx.tensor("query"), ctx.tensor("key"), ctx.tensor("value")
    if q is None or k is None or v is None:
        raise ValueError("multi_head_attention_forward needs query, key and value tensors")
    batch, target_len = _layout(tuple(q.shape), batch_first=False)
    _, source_len = _layout(tuple(k.shape), batch_first=False)
    embed_dim = q.shape[-1]
    static_k = ctx.tensor("static_k")
    extra = (1 if ctx.tensor("bias_k") is not None else 0) + (1 if ctx.arg("add_zero_attn") else 0)
    attended_len = static_k.shape[1] if static_k is not None else None
    out_weight = ctx.tensor("out_proj_weight")
    out_dim = out_weight.shape[0] if out_weight is not None else embed_dim
    is_causal = ctx.arg("is_causal", default=False)
    need_weights = bool(ctx.arg("need_weights", default=True))
    cost, scores = _mha(batch=batch, target_len=target_len, source_len=source_len, embed_dim=embed_dim,
                        kdim=k.shape[-1], vdim=v.shape[-1], extra_keys=extra, attended_len=attended_len,
                        out_dim=out_dim, alignment=_alignment(ctx, is_causal, mask=("attn_mask", MHA)))
    cost.extra = _mha_extras(
        ctx.convention, batch=batch, target_len=target_len, source_len=source_len, embed_dim=embed_dim,
        heads=ctx.arg("num_heads"), scores=scores, out_dim=out_dim,
        in_bias=ctx.tensor("in_proj_bias") is not None,
        out_bias=ctx.tensor("out_proj_bias") is not None,
        float_mask=_mask_added(is_causal, ctx.arg("attn_mask", default=None),
                               ctx.arg("key_padding_mask", default=None), need_weights),
        need_weights=need_weights,
        averaged=bool(ctx.arg("average_attn_weights", default=True)),
    )
    return cost


# -- nn.Transformer* layers -------------------------------------------------------------------


def _norm_cost(convention: Convention, norm: nn.Module | None, elements: Any) -> Any:
    if norm is None:
        return 0
    return convention.charge("norm", _module_norm_constant(norm), elements)


def _feedforward(convention: Convention, tokens: Any, layer: nn.Module) -> Cost:
    """``linear2(activation(linear1(x)))``: the two matmuls, their biases, the activation."""
    linear1, linear2 = layer.linear1, layer.linear2
    assert isinstance(linear1, nn.Linear) and isinstance(linear2, nn.Linear)
    cost = _mm(tokens * linear1.in_features * linear1.out_features) + \
        _mm(tokens * linear2.in_features * linear2.out_features)
    biased = (tokens * linear1.out_features if linear1.bias is not None else 0) + \
        (tokens * linear2.out_features if linear2.bias is not None else 0)
    if biased:
        cost.extra += convention.charge("bias", BIAS_PER_ELEMENT, biased)
    cost.extra += convention.charge("activation", ACTIVATION_PER_ELEMENT, tokens * linear1.out_features)
    return cost


def _block_extras(convention: Convention, tokens: Any, width: Any, norms: list[nn.Module | None]) -> Any:
    """A residual add and a norm per sub-block, over ``tokens * width`` elements."""
    residuals = convention.charge("elementwise", ELEMENTWISE_PER_ELEMENT, len(norms) * tokens * width)
    return residuals + sum((_norm_cost(convention, norm, tokens * width) for norm in norms), 0)


def _encoder_layer(convention: Convention, layer: nn.TransformerEncoderLayer, batch: Any, length: Any,
                   alignment: str | None = None, float_mask: bool = False) -> Cost:
    attn = layer.self_attn
    cost = _module_attention(convention, attn, batch=batch, length=length, source=length, alignment=alignment,
                             float_mask=float_mask)
    cost = cost + _feedforward(convention, batch * length, layer)
    cost.extra += _block_extras(convention, batch * length, attn.embed_dim, [layer.norm1, layer.norm2])
    return cost


def encoder_layer_cost(layer: nn.TransformerEncoderLayer, batch: int, length: int,
                       alignment: str | None = None) -> int:
    """Self-attention over ``length`` tokens plus the two feed-forward linears (matmul FLOPs)."""
    from fxflops.convention import DEFAULT

    return _encoder_layer(DEFAULT, layer, batch, length, alignment).matmul


def _decoder_layer(convention: Convention, layer: nn.TransformerDecoderLayer, batch: Any, length: Any,
                   source: Any, self_alignment: str | None = None, cross_alignment: str | None = None,
                   self_float_mask: bool = False, cross_float_mask: bool = False) -> Cost:
    cost = _module_attention(convention, layer.self_attn, batch=batch, length=length, source=length,
                             alignment=self_alignment, float_mask=self_float_mask)
    cost = cost + _module_attention(convention, layer.multihead_attn, batch=batch, length=length,
                                    source=source, alignment=cross_alignment, float_mask=cross_float_mask)
    cost = cost + _feedforward(convention, batch * length, layer)
    cost.extra += _block_extras(convention, batch * length, layer.self_attn.embed_dim,
                                [layer.norm1, layer.norm2, layer.norm3])
    return cost


def decoder_layer_cost(layer: nn.TransformerDecoderLayer, batch: int, length: int, source: int) -> int:
    """Self-attention, cross-attention over ``source`` memory tokens, feed-forward (matmul FLOPs)."""
    from fxflops.convention import DEFAULT

    return _decoder_layer(DEFAULT, layer, batch, length, source).matmul


def _batch_first(module: nn.Module) -> bool:
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        return bool(module.self_attn.batch_first)
    layers = getattr(module, "layers", None)
    if layers is not None and len(layers):
        return _batch_first(layers[0])
    return bool(getattr(module, "batch_first", False))


def _final_norm(convention: Convention, norm: nn.Module | None, tokens: Any, width: Any) -> Cost:
    return Cost(extra=_norm_cost(convention, norm, tokens * width))


#: Where each nn.Transformer* module takes each attention's arguments: attention -> the names of
#: its (causal flag, mask, key padding mask). ``self``/``cross`` are a layer's self-
#: and cross-attention; nn.Transformer names its encoder's ``src`` and decoder's ``tgt``/``memory``.
_ATTENTION_ARGS: dict[type[nn.Module], dict[str, tuple[str, str, str]]] = {
    nn.TransformerEncoderLayer: {"self": ("is_causal", "src_mask", "src_key_padding_mask")},
    nn.TransformerEncoder: {"self": ("is_causal", "mask", "src_key_padding_mask")},
    nn.TransformerDecoderLayer: {
        "self": ("tgt_is_causal", "tgt_mask", "tgt_key_padding_mask"),
        "cross": ("memory_is_causal", "memory_mask", "memory_key_padding_mask"),
    },
    nn.TransformerDecoder: {
        "self": ("tgt_is_causal", "tgt_mask", "tgt_key_padding_mask"),
        "cross": ("memory_is_causal", "memory_mask", "memory_key_padding_mask"),
    },
    nn.Transformer: {
        "src": ("src_is_causal", "src_mask", "src_key_padding_mask"),
        "tgt": ("tgt_is_causal", "tgt_mask", "tgt_key_padding_mask"),
        "memory": ("memory_is_causal", "memory_mask", "memory_key_padding_mask"),
    },
}


class LayerAttention(NamedTuple):
    """How one attention of an nn.Transformer* node is counted."""

    alignment: str | None
    """The causal alignment under ``causal="exact"`` (:func:`_alignment`), or ``None``: dense."""
    float_mask: bool
    """Whether torch adds a mask to its scores (:func:`_mask_added`)."""


def transformer_attentions(ctx: NodeContext) -> dict[str, LayerAttention]:
    """Each attention of an nn.Transformer* node (see ``_ATTENTION_ARGS``), read from its
    arguments once; shared by the forward rules and the backward formulas."""
    places = next(places for kind, places in _ATTENTION_ARGS.items() if isinstance(ctx.module, kind))
    found = {}
    for attention, (flag, mask, padding) in places.items():
        is_causal = ctx.arg(flag, default=False)
        found[attention] = LayerAttention(
            _alignment(ctx, is_causal, mask=(mask, MHA)),
            _mask_added(is_causal, ctx.arg(mask, default=None), ctx.arg(padding, default=None)),
        )
    return found


@rule(nn.TransformerEncoderLayer, category="attention")
def transformer_encoder_layer_flops(ctx: NodeContext) -> int:
    """``nn.TransformerEncoderLayer``: self-attention + ``linear1`` + ``linear2``; under a
    convention that counts them, also biases, activation, two residual adds and two norms.
    ``causal="exact"`` with ``is_causal=True``: causal self-attention."""
    module = ctx.module
    assert isinstance(module, nn.TransformerEncoderLayer)
    batch, length = _layout(ctx.input_shapes[0], _batch_first(module))
    attention = transformer_attentions(ctx)["self"]
    cost = _encoder_layer(ctx.convention, module, batch, length, attention.alignment, attention.float_mask)
    return cost


@rule(nn.TransformerDecoderLayer, category="attention")
def transformer_decoder_layer_flops(ctx: NodeContext) -> int:
    """``nn.TransformerDecoderLayer``: self-attention, cross-attention to memory, feed-forward
    (+ biases, activation, three residual adds and three norms when counted). ``causal="exact"``:
    ``tgt_is_causal`` makes self-attention causal, ``memory_is_causal`` cross-attention."""
    module = ctx.module
    assert isinstance(module, nn.TransformerDecoderLayer)
    first = _batch_first(module)
    batch, length = _layout(ctx.input_shapes[0], first)
    _, source = _layout(ctx.input_shapes[1], first)
    attentions = transformer_attentions(ctx)
    cost = _decoder_layer(ctx.convention, module, batch, length, source, attentions["self"].alignment,
                          attentions["cross"].alignment, attentions["self"].float_mask,
                          attentions["cross"].float_mask)
    return cost


@rule(nn.TransformerEncoder, category="attention")
def transformer_encoder_flops(ctx: NodeContext) -> int:
    """``nn.TransformerEncoder``: the sum of its layers, and its final norm when counted."""
    module = ctx.module
    assert isinstance(module, nn.TransformerEncoder)
    batch, length = _layout(ctx.input_shapes[0], _batch_first(module))
    attention = transformer_attentions(ctx)["self"]
    cost = _final_norm(ctx.convention, module.norm, batch * length, _width(ctx.input_shapes[0]))
    for layer in module.layers:
        cost = cost + _encoder_layer(ctx.convention, layer, batch, length, attention.alignment,
                                     attention.float_mask)
    return cost


def _width(shape: tuple[Any, ...]) -> Any:
    return shape[-1]


@rule(nn.TransformerDecoder, category="attention")
def transformer_decoder_flops(ctx: NodeContext) -> int:
    """``nn.TransformerDecoder``: the sum of its layers, and its final norm when counted."""
    module = ctx.module
    assert isinstance(module, nn.TransformerDecoder)
    first = _batch_first(module)
    batch, length = _layout(ctx.input_shapes[0], first)
    _, source = _layout(ctx.input_shapes[1], first)
    self_attention, cross_attention = transformer_attentions(ctx).values()
    cost = _final_norm(ctx.convention, module.norm, batch * length, _width(ctx.input_shapes[0]))
    for layer in module.layers:
        cost = cost + _decoder_layer(ctx.convention, layer, batch, length, source, self_attention.alignment,
                                     cross_attention.alignment, self_attention.float_mask,
                                     cross_attention.float_mask)
    return cost


@rule(nn.Transformer, category="attention")
def transformer_flops(ctx: NodeContext) -> int:
    """``nn.Transformer``: encoder over ``src``, then decoder over ``tgt`` attending to it;
    ``src_is_causal``, ``tgt_is_causal`` and ``memory_is_causal`` apply under ``causal="exact"``."""
    module = ctx.module
    assert isinstance(module, nn.Transformer)
    first = module.batch_first
    batch, source = _layout(ctx.input_shapes[0], first)
    _, length = _layout(ctx.input_shapes[1], first)
    src, tgt, memory = transformer_attentions(ctx).values()
    width = _width(ctx.input_shapes[0])
    encoder, decoder = module.encoder, module.decoder
    cost = _final_norm(ctx.convention, getattr(encoder, "norm", None), batch * source, width)
    cost = cost + _final_norm(ctx.convention, getattr(decoder, "norm", None), batch * length, width)
    for layer in encoder.layers:
        cost = cost + _encoder_layer(ctx.convention, layer, batch, source, src.alignment, src.float_mask)
    for layer in decoder.layers:
        cost = cost + _decoder_layer(ctx.convention, layer, batch, length, source, tgt.alignment,
                                     memory.alignment, tgt.float_mask, memory.float_mask)
    return cost

"""Backward FLOPs, derived analytically from the forward graph (``count(..., backward=True)``).

Each matmul-class forward rule has a backward formula. A product ``C = A @ B`` costing ``F``
forward costs ``F`` for ``dA = dC @ B^T`` and ``F`` for ``dB = A^T @ dC``, each only when autograd
computes it: when ``A`` (resp. ``B``) requires grad. Graph inputs that do not require grad get no
input gradient, frozen parameters (``requires_grad=False``) no weight gradient. Requires-grad flags
are propagated on the meta tensors exactly as autograd would.

* linear, matmul, mm, bmm, addmm, baddbmm, einsum: ``F`` per operand that requires grad.
* convolution (also transposed): ``F`` for the input gradient, ``F`` for the weight gradient.
  FlopCounterMode counts the weight gradient of a *grouped* convolution ``groups`` times too high
  (its formula uses the full input channels); fxflops counts the true ``F``.
* scaled dot-product attention, ``S = Q K^T`` then ``O = P V`` (``P = softmax(S)``): four
  backward matmuls as the math kernel runs them: ``dV = P^T dO`` and ``dP = dO V^T`` cost
  ``2*B*L*S*Ev`` each, ``dQ = dS K`` and ``dK = dS^T Q`` cost ``2*B*L*S*E`` each. Fused kernels
  (flash, memory-efficient) also recompute ``S``, a fifth matmul of ``2*B*L*S*E``: not counted,
  so the count matches FlopCounterMode with the math kernel and stays device independent.
* attention layers and recurrent layers: the sum of their projections' and core's terms.
* every other category: 0 (the default convention counts no elementwise work, forward or backward).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from fxflops.context import NodeContext
from fxflops.registry import RuleEntry

BackwardRule = Callable[[NodeContext, Any], Any]
_BACKWARD: dict[Any, BackwardRule] = {}


def backward_of(*forward_rules: Callable[..., Any]) -> Callable[[BackwardRule], BackwardRule]:
    """Register a backward formula for forward rules; it receives the context and forward FLOPs."""

    def decorator(fn: BackwardRule) -> BackwardRule:
        for rule in forward_rules:
            _BACKWARD[rule] = fn
        return fn

    return decorator


def backward_flops(entry: RuleEntry, ctx: NodeContext, forward: Any) -> Any:
    """Backward FLOPs of a node whose forward ``entry`` counted ``forward`` FLOPs."""
    _load()
    rule = _BACKWARD.get(entry.rule)
    if rule is None:
        return 0
    return rule(ctx, forward)


def _rg(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.requires_grad


def _any_rg(*values: Any) -> bool:
    return any(_rg(v) for v in values)


def _module_rg(module: nn.Module | None) -> bool:
    return module is not None and any(p.requires_grad for p in module.parameters())


_loaded = False


def _load() -> None:
    """Attach the formulas to the built-in rules (imported lazily: rules import the engine)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from fxflops.rules import aten, attention, conv, linear, recurrent

    def two_operands(first: tuple[str, int], second: tuple[str, int]) -> BackwardRule:
        def rule(ctx: NodeContext, forward: Any) -> Any:
            a = ctx.tensor(*first)
            b = ctx.tensor(*second)
            if b is None and ctx.module is not None:
                b = getattr(ctx.module, "weight", None)
            return forward * (int(_rg(a)) + int(_rg(b)))
        return rule

    _BACKWARD[linear.linear_flops] = two_operands(("input", 0), ("weight", 1))
    _BACKWARD[linear.matmul_flops] = _positional_operands
    _BACKWARD[linear.mm_flops] = _positional_operands
    _BACKWARD[linear.matrix_vector_flops] = _positional_operands
    _BACKWARD[linear.addmm_flops] = _addmm_backward
    _BACKWARD[linear.addbmm_flops] = _addmm_backward
    _BACKWARD[linear.einsum_flops] = _einsum_backward
    _BACKWARD[linear.bilinear_flops] = _einsum_backward
    for rule in (conv.conv_module_flops, conv.conv_transpose_module_flops, conv.conv_flops,
                 conv.conv_transpose_flops, conv.convolution_flops):
        _BACKWARD[rule] = _conv_backward
    _BACKWARD[attention.scaled_dot_product_attention_flops] = _sdpa_backward
    _BACKWARD[attention.multihead_attention_flops] = _mha_backward
    _BACKWARD[attention.multi_head_attention_forward_flops] = _layer_backward
    for rule in (attention.transformer_encoder_layer_flops, attention.transformer_decoder_layer_flops,
                 attention.transformer_encoder_flops, attention.transformer_decoder_flops,
                 attention.transformer_flops, recurrent.rnn_flops, recurrent.rnn_cell_flops,
                 aten.native_multi_head_attention_flops, aten.transformer_encoder_layer_fwd_flops,
                 aten.recurrent_op_flops, aten.recurrent_cell_op_flops):
        _BACKWARD[rule] = _layer_backward
    for name in ("bshd_attention_flops", "_bshd_attention_flops"):
        if hasattr(aten, name):
            _BACKWARD[getattr(aten, name)] = _sdpa_backward


def _positional_operands(ctx: NodeContext, forward: Any) -> Any:
    """``a @ b``: ``F`` for each operand that requires grad."""
    a, b = ctx.args[0], ctx.args[1] if len(ctx.args) > 1 else None
    if ctx.node.target == "__rmatmul__":
        a, b = b, a
    return forward * (int(_rg(a)) + int(_rg(b)))


def _addmm_backward(ctx: NodeContext, forward: Any) -> Any:
    """``c + a @ b``: the product's operands are arguments 1 and 2."""
    a, b = ctx.args[1] if len(ctx.args) > 1 else None, ctx.args[2] if len(ctx.args) > 2 else None
    return forward * (int(_rg(a)) + int(_rg(b)))


def _einsum_backward(ctx: NodeContext, forward: Any) -> Any:
    """One gradient product per operand that requires grad, each as costly as the forward
    contraction (exact for two operands, the common case)."""
    operands = [a for a in ctx.args if isinstance(a, torch.Tensor)]
    for value in ctx.args:
        if isinstance(value, (list, tuple)):
            operands.extend(t for t in value if isinstance(t, torch.Tensor))
    return forward * sum(int(_rg(t)) for t in operands)


def _conv_backward(ctx: NodeContext, forward: Any) -> Any:
    """Input gradient ``F`` if the input requires grad; weight gradient ``F`` if the weight does."""
    x = ctx.tensor("input", 0)
    weight = ctx.module.weight if ctx.module is not None else ctx.tensor("weight", 1)
    return forward * (int(_rg(x)) + int(_rg(weight)))


def _sdpa_backward(ctx: NodeContext, forward: Any) -> Any:
    """dQ and dK (``2*B*L*S*E`` each) and dV and dP (``2*B*L*S*Ev`` each), as autograd needs them."""
    q, k, v = ctx.tensor("query", 0), ctx.tensor("key", 1), ctx.tensor("value", 2)
    if q is None or k is None or v is None:
        return 0
    dim, value_dim = q.shape[-1], v.shape[-1]
    per_dim = forward // (dim + value_dim) if isinstance(forward, int) else forward / (dim + value_dim)
    need_scores = _rg(q) or _rg(k)
    return per_dim * (dim * (int(_rg(q)) + int(_rg(k))) + value_dim * (int(_rg(v)) + int(need_scores)))


def _mha_backward(ctx: NodeContext, forward: Any) -> Any:
    """``nn.MultiheadAttention``: each projection's input and weight gradients, and the core's."""
    module = ctx.module
    if not isinstance(module, nn.MultiheadAttention):
        return 2 * forward
    q, k, v = ctx.tensor("query", 0), ctx.tensor("key", 1), ctx.tensor("value", 2)
    if q is None or k is None or v is None:
        return 0
    batched = q.dim() == 3
    first = module.batch_first
    n = (q.shape[0] if first else q.shape[1]) if batched else 1
    length = (q.shape[1] if first else q.shape[0]) if batched else q.shape[0]
    source = (k.shape[1] if first else k.shape[0]) if batched else k.shape[0]
    attended = source + (1 if module.bias_k is not None else 0) + (1 if module.add_zero_attn else 0)
    e = module.embed_dim
    if module.in_proj_weight is not None:
        w_q = w_k = w_v = module.in_proj_weight.requires_grad
    else:
        w_q, w_k, w_v = (module.q_proj_weight.requires_grad, module.k_proj_weight.requires_grad,
                         module.v_proj_weight.requires_grad)
    bias = module.in_proj_bias is not None and module.in_proj_bias.requires_grad
    q_p, k_p, v_p = _rg(q) or w_q or bias, _rg(k) or w_k or bias, _rg(v) or w_v or bias
    total = 2 * n * length * e * e * (int(_rg(q)) + int(w_q))
    total += 2 * n * source * module.kdim * e * (int(_rg(k)) + int(w_k))
    total += 2 * n * source * module.vdim * e * (int(_rg(v)) + int(w_v))
    core = 2 * n * length * attended * e
    total += core * (int(q_p) + int(k_p)) + core * (int(v_p) + int(q_p or k_p))
    out_proj = module.out_proj
    total += 2 * n * length * e * out_proj.out_features * (int(q_p or k_p or v_p) + int(out_proj.weight.requires_grad))
    return total


def _layer_backward(ctx: NodeContext, forward: Any) -> Any:
    """Attention and recurrent layers: every matmul inside gets its input and weight gradients.

    Inside a trainable layer every intermediate activation requires grad, so this is ``2 * F``
    when the layer's parameters and inputs require grad; ``F`` when only one side does (frozen
    weights: input gradients only; inputs that need no grad and trainable weights: the first
    products lose their input gradient, counted as weight gradients only).
    """
    trainable = _module_rg(ctx.module) or _any_rg(*[a for a in ctx.args if isinstance(a, torch.Tensor)
                                                     and a.dim() >= 2 and a.is_floating_point()
                                                     and ctx.module is None and a is not ctx.args[0]])
    inputs = _any_rg(*[a for a in ctx.args[:3] if isinstance(a, torch.Tensor)])
    return forward * (int(trainable) + int(inputs))

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
* ``nn.MultiheadAttention`` and the ``nn.Transformer*`` modules: block by block (attention,
  feed-forward linears), each product gets the gradients autograd computes, following which
  activations require grad through inputs, trainable weights, norms and residual sums: exact for
  any mix of frozen and trainable parameters (prompt tuning, frozen encoders, ...).
* ``nn.RNN``/``nn.LSTM``/``nn.GRU``: layer by layer and direction by direction, each product gets
  the gradients autograd computes (:func:`recurrent_backward`): exact for any mix of frozen and
  trainable parameters; the ``nn.*Cell`` modules likewise for their one step. aten recurrent ops
  (export path): every product gets input and weight gradients (``2 * F``) less those autograd
  skips on inputs and initial states that need none; exact when their weights are all trainable
  or all frozen.
* grouped matmuls (mixtures of experts): ``F`` per operand that requires grad, as a bmm.
* every other category: 0 (the default convention counts no elementwise work, forward or backward).

A rule registered with ``backward=`` (``fxflops.rule(target, category="matmul", backward=fn)``,
``fn(ctx, forward_flops)``) uses that formula, also over a built-in one; ``backward=NO_BACKWARD``
says it has no gradient work. A matmul-class rule with neither is an error under ``backward=True``
rather than a silent 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn

from fxflops.context import NodeContext
from fxflops.registry import RuleEntry
from fxflops.rules.recurrent import steps_and_batch

BackwardRule = Callable[[NodeContext, Any], Any]
_BACKWARD: dict[Any, BackwardRule] = {}


def NO_BACKWARD(ctx: NodeContext, forward: Any) -> int:  # noqa: N802 (a constant, used as one)
    """The backward formula of an op without gradient work (an inference-only kernel): 0."""
    return 0


def backward_of(*forward_rules: Callable[..., Any]) -> Callable[[BackwardRule], BackwardRule]:
    """Register a backward formula for forward rules; it receives the context and forward FLOPs."""

    def decorator(fn: BackwardRule) -> BackwardRule:
        for rule in forward_rules:
            _BACKWARD[rule] = fn
        return fn

    return decorator


def backward_rule(entry: RuleEntry) -> BackwardRule | None:
    """The backward formula of ``entry``: the one it was registered with (``backward=``), else the
    built-in one of its rule; None when it has neither."""
    if entry.backward is not None:
        return entry.backward
    _load()
    return _BACKWARD.get(entry.rule)


def backward_flops(entry: RuleEntry, ctx: NodeContext, forward: Any) -> Any:
    """Backward FLOPs of a node whose forward ``entry`` counted ``forward`` FLOPs: 0 without a
    formula (the counting step refuses that for matmul-class rules, whose gradients are work)."""
    rule = backward_rule(entry)
    return 0 if rule is None else rule(ctx, forward)


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
    from fxflops.rules import aten, attention, conv, linear, moe, recurrent

    def two_operands(first: str, second: str) -> BackwardRule:
        def rule(ctx: NodeContext, forward: Any) -> Any:
            a = ctx.tensor(first)
            b = ctx.tensor(second)
            if b is None and ctx.module is not None:
                b = getattr(ctx.module, "weight", None)
            return forward * (int(_rg(a)) + int(_rg(b)))
        return rule

    _BACKWARD[linear.linear_flops] = two_operands("input", "weight")
    _BACKWARD[linear.matmul_flops] = _positional_operands
    _BACKWARD[linear.mm_flops] = _positional_operands
    _BACKWARD[linear.matrix_vector_flops] = _positional_operands
    _BACKWARD[linear.addmm_flops] = _addmm_backward
    _BACKWARD[linear.addbmm_flops] = _addmm_backward
    _BACKWARD[linear.einsum_flops] = _einsum_backward
    _BACKWARD[linear.bilinear_flops] = _einsum_backward
    # Each group's product as a bmm: F for the tokens' gradient, F for the experts' weights.
    _BACKWARD[moe.grouped_mm_flops] = _grouped_mm_backward
    for rule in (conv.conv_module_flops, conv.conv_transpose_module_flops, conv.conv_flops,
                 conv.conv_transpose_flops, conv.convolution_flops):
        _BACKWARD[rule] = _conv_backward
    _BACKWARD[attention.scaled_dot_product_attention_flops] = _sdpa_backward
    _BACKWARD[attention.multihead_attention_flops] = _mha_backward
    _BACKWARD[attention.multi_head_attention_forward_flops] = _functional_mha_backward
    _BACKWARD[aten.native_multi_head_attention_flops] = _functional_mha_backward
    for rule in (attention.transformer_encoder_layer_flops, attention.transformer_decoder_layer_flops,
                 attention.transformer_encoder_flops, attention.transformer_decoder_flops,
                 attention.transformer_flops):
        _BACKWARD[rule] = _transformer_backward
    _BACKWARD[aten.transformer_encoder_layer_fwd_flops] = _encoder_layer_fwd_backward
    _BACKWARD[recurrent.rnn_flops] = _rnn_backward
    _BACKWARD[recurrent.rnn_cell_flops] = _rnn_cell_backward
    _BACKWARD[aten.recurrent_op_flops] = _rnn_op_backward
    _BACKWARD[aten.recurrent_cell_op_flops] = _rnn_cell_op_backward
    for name in ("bshd_attention_flops", "_bshd_attention_flops"):
        if hasattr(aten, name):
            _BACKWARD[getattr(aten, name)] = _sdpa_backward


def _grouped_mm_backward(ctx: NodeContext, forward: Any) -> Any:
    """A grouped matmul (F.grouped_mm's mat_a/mat_b, torch._grouped_mm's self/mat2): ``F`` for
    each operand that requires grad."""
    from fxflops.rules.moe import operands

    a, b = operands(ctx)
    return forward * (int(_rg(a)) + int(_rg(b)))


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
    x = ctx.tensor("input")
    weight = ctx.module.weight if ctx.module is not None else ctx.tensor("weight")
    return forward * (int(_rg(x)) + int(_rg(weight)))


def _sdpa_backward(ctx: NodeContext, forward: Any) -> Any:
    """dQ and dK (``2*B*L*S*E`` each) and dV and dP (``2*B*L*S*Ev`` each), as autograd needs them."""
    q, k, v = ctx.tensor("query"), ctx.tensor("key"), ctx.tensor("value")
    if q is None or k is None or v is None:
        return 0
    dim, value_dim = q.shape[-1], v.shape[-1]
    per_dim = forward // (dim + value_dim) if isinstance(forward, int) else forward / (dim + value_dim)
    need_scores = _rg(q) or _rg(k)
    return per_dim * (dim * (int(_rg(q)) + int(_rg(k))) + value_dim * (int(_rg(v)) + int(need_scores)))


class Grad(NamedTuple):
    """One block of a layer: its forward matmul FLOPs, its backward FLOPs, and whether its output
    requires grad (autograd records the next block's products when it does)."""

    forward: int
    backward: int
    output_rg: bool

    def then(self, other: Grad) -> Grad:
        """This block followed by ``other`` (whose inputs were given this block's output flag)."""
        return Grad(self.forward + other.forward, self.backward + other.backward, other.output_rg)


def mha_grad(attn: nn.MultiheadAttention, n: int, length: int, source: int, q_rg: bool, k_rg: bool, v_rg: bool,
             alignment: str | None = None) -> Grad:
    """``nn.MultiheadAttention`` on queries and keys/values that do or do not require grad.

    Projections: input gradient when their input requires grad, weight gradient when their weight
    is trainable. Core (``QK^T`` and ``AV``, each ``2 * n * E * kept entries``): a gradient per
    operand that requires grad, as :func:`_sdpa_backward`; ``P`` requires grad when Q or K does.
    """
    from fxflops.rules.attention import _extra_keys, _mha

    e = attn.embed_dim
    if attn.in_proj_weight is not None:
        w_q = w_k = w_v = attn.in_proj_weight.requires_grad
    else:
        w_q, w_k, w_v = (attn.q_proj_weight.requires_grad, attn.k_proj_weight.requires_grad,
                         attn.v_proj_weight.requires_grad)
    bias = attn.in_proj_bias is not None and attn.in_proj_bias.requires_grad
    cost, scores = _mha(batch=n, target_len=length, source_len=source, embed_dim=e, kdim=attn.kdim, vdim=attn.vdim,
                        extra_keys=_extra_keys(attn), alignment=alignment)
    q_p, k_p, v_p = q_rg or w_q or bias, k_rg or w_k or bias, v_rg or w_v or bias
    extra_kv = attn.bias_k is not None and attn.bias_k.requires_grad
    k_p, v_p = k_p or extra_kv, v_p or extra_kv
    each = n * e * scores.twice  # QK^T, and AV: 2 * n * E * kept entries each
    out_proj = attn.out_proj
    attended = q_p or k_p or v_p
    backward = 2 * n * length * e * e * (int(q_rg) + int(w_q))
    backward += 2 * n * source * attn.kdim * e * (int(k_rg) + int(w_k))
    backward += 2 * n * source * attn.vdim * e * (int(v_rg) + int(w_v))
    backward += each * (int(q_p) + int(k_p)) + each * (int(v_p) + int(q_p or k_p))
    backward += 2 * n * length * e * out_proj.out_features * (int(attended) + int(out_proj.weight.requires_grad))
    return Grad(cost.matmul, backward, attended or _module_rg(out_proj))


def linear_grad(linear: nn.Linear, tokens: int, input_rg: bool) -> Grad:
    """``nn.Linear`` over ``tokens`` rows: ``F`` for the input gradient, ``F`` for the weight's."""
    forward = 2 * tokens * linear.in_features * linear.out_features
    return Grad(forward, forward * (int(input_rg) + int(linear.weight.requires_grad)),
                input_rg or _module_rg(linear))


def _norm(norm: nn.Module | None, input_rg: bool) -> Grad:
    """A norm: no matmuls; its output requires grad when its input or its affine weights do."""
    return Grad(0, 0, input_rg or _module_rg(norm))


def _feedforward_grad(layer: nn.Module, tokens: int, input_rg: bool) -> Grad:
    first = linear_grad(layer.linear1, tokens, input_rg)
    return first.then(linear_grad(layer.linear2, tokens, first.output_rg))


def _residual(x_rg: bool, block: Grad) -> Grad:
    return Grad(block.forward, block.backward, x_rg or block.output_rg)


def encoder_layer_grad(layer: nn.TransformerEncoderLayer, n: int, length: int, x_rg: bool,
                       alignment: str | None) -> Grad:
    """``x + SA(norm1(x))``, then ``+ FF(norm2(.))`` (``norm_first``), or the norms after each sum."""
    attn = layer.self_attn
    if layer.norm_first:
        a = _norm(layer.norm1, x_rg).output_rg
        first = _residual(x_rg, mha_grad(attn, n, length, length, a, a, a, alignment))
        second = _feedforward_grad(layer, n * length, _norm(layer.norm2, first.output_rg).output_rg)
        return first.then(_residual(first.output_rg, second))
    sa = mha_grad(attn, n, length, length, x_rg, x_rg, x_rg, alignment)
    first = Grad(sa.forward, sa.backward, _norm(layer.norm1, x_rg or sa.output_rg).output_rg)
    second = _feedforward_grad(layer, n * length, first.output_rg)
    return first.then(Grad(second.forward, second.backward,
                           _norm(layer.norm2, first.output_rg or second.output_rg).output_rg))


def decoder_layer_grad(layer: nn.TransformerDecoderLayer, n: int, length: int, source: int, x_rg: bool,
                       memory_rg: bool, self_alignment: str | None, cross_alignment: str | None) -> Grad:
    """Self-attention, cross-attention to the memory, feed-forward; norms as in the encoder."""
    if layer.norm_first:
        a = _norm(layer.norm1, x_rg).output_rg
        first = _residual(x_rg, mha_grad(layer.self_attn, n, length, length, a, a, a, self_alignment))
        c = _norm(layer.norm2, first.output_rg).output_rg
        second = _residual(first.output_rg, mha_grad(layer.multihead_attn, n, length, source, c, memory_rg,
                                                     memory_rg, cross_alignment))
        third = _feedforward_grad(layer, n * length, _norm(layer.norm3, second.output_rg).output_rg)
        return first.then(second).then(_residual(second.output_rg, third))
    sa = mha_grad(layer.self_attn, n, length, length, x_rg, x_rg, x_rg, self_alignment)
    first = Grad(sa.forward, sa.backward, _norm(layer.norm1, x_rg or sa.output_rg).output_rg)
    ca = mha_grad(layer.multihead_attn, n, length, source, first.output_rg, memory_rg, memory_rg, cross_alignment)
    second = Grad(ca.forward, ca.backward, _norm(layer.norm2, first.output_rg or ca.output_rg).output_rg)
    ff = _feedforward_grad(layer, n * length, second.output_rg)
    return first.then(second).then(Grad(ff.forward, ff.backward,
                                        _norm(layer.norm3, second.output_rg or ff.output_rg).output_rg))


def _mha_backward(ctx: NodeContext, forward: Any) -> Any:
    """``nn.MultiheadAttention``: each projection's input and weight gradients, and the core's."""
    from fxflops.rules.attention import multihead_attention_alignment

    module = ctx.module
    if not isinstance(module, nn.MultiheadAttention):
        return 2 * forward
    q, k, v = ctx.tensor("query"), ctx.tensor("key"), ctx.tensor("value")
    if q is None or k is None or v is None:
        return 0
    n, length = _layout(tuple(q.shape), module.batch_first)
    _, source = _layout(tuple(k.shape), module.batch_first)
    return mha_grad(module, n, length, source, _rg(q), _rg(k), _rg(v), multihead_attention_alignment(ctx)).backward


# -- layers: every product gets input and weight gradients (2 x forward), minus the input
# gradients autograd skips: those of the first products on inputs that do not require grad, and
# those of a recurrent layer's first step on an initial state that does not.


def _layout(shape: tuple[int, ...], batch_first: bool) -> tuple[int, int]:
    """(batch, length) of an attention input, as the forward attention rules read it."""
    from fxflops.rules.attention import _layout as attention_layout

    return attention_layout(shape, batch_first)


def _transformer_backward(ctx: NodeContext, forward: Any) -> Any:
    """``nn.Transformer*``: each block's products get the gradients autograd computes, following
    which activations require grad through the layers (inputs, trainable weights, norms and
    residual sums); conventions' extra work (norms, softmax, biases) costs twice its forward
    when any gradient flows through the module."""
    from fxflops.rules.attention import _batch_first, transformer_attentions

    module = ctx.module
    x = ctx.args[0] if ctx.args else None
    if not isinstance(x, torch.Tensor):
        return 2 * forward
    alignments = {name: attention.alignment for name, attention in transformer_attentions(ctx).items()}
    batch_first = _batch_first(module)
    n, length = _layout(tuple(x.shape), batch_first)
    second = ctx.args[1] if len(ctx.args) > 1 else None
    if isinstance(module, nn.TransformerEncoderLayer):
        grad = encoder_layer_grad(module, n, length, _rg(x), alignments["self"])
    elif isinstance(module, nn.TransformerEncoder):
        grad = _encoder_stack_grad(module, n, length, _rg(x), alignments["self"])
    elif isinstance(module, nn.TransformerDecoderLayer):
        _, source = _layout(tuple(second.shape), batch_first)
        grad = decoder_layer_grad(module, n, length, source, _rg(x), _rg(second), alignments["self"],
                                  alignments["cross"])
    elif isinstance(module, nn.TransformerDecoder):
        _, source = _layout(tuple(second.shape), batch_first)
        grad = _decoder_stack_grad(module, n, length, source, _rg(x), _rg(second), alignments["self"],
                                   alignments["cross"])
    else:  # nn.Transformer(src, tgt): the encoder's output is the decoder's memory
        source = length
        _, length = _layout(tuple(second.shape), batch_first)
        memory = _encoder_stack_grad(module.encoder, n, source, _rg(x), alignments["src"])
        grad = memory.then(_decoder_stack_grad(module.decoder, n, length, source, _rg(second), memory.output_rg,
                                               alignments["tgt"], alignments["memory"]))
    extras = forward - grad.forward
    return grad.backward + (2 * extras if grad.output_rg else 0)


def _encoder_stack_grad(stack: nn.TransformerEncoder, n: int, length: int, x_rg: bool,
                        alignment: str | None) -> Grad:
    grad = Grad(0, 0, x_rg)
    for layer in stack.layers:
        grad = grad.then(encoder_layer_grad(layer, n, length, grad.output_rg, alignment))
    return grad.then(_norm(stack.norm, grad.output_rg))


def _decoder_stack_grad(stack: nn.TransformerDecoder, n: int, length: int, source: int, x_rg: bool,
                        memory_rg: bool, self_alignment: str | None, cross_alignment: str | None) -> Grad:
    grad = Grad(0, 0, x_rg)
    for layer in stack.layers:
        grad = grad.then(decoder_layer_grad(layer, n, length, source, grad.output_rg, memory_rg, self_alignment,
                                            cross_alignment))
    return grad.then(_norm(stack.norm, grad.output_rg))


def _encoder_layer_fwd_backward(ctx: NodeContext, forward: Any) -> Any:
    """``aten._transformer_encoder_layer_fwd``: as ``nn.TransformerEncoderLayer``, (N, L, E)."""
    src = ctx.args[0]
    if src.requires_grad:
        return 2 * forward
    n, length, e = src.shape if src.dim() == 3 else (1, *src.shape)
    return 2 * forward - 2 * n * length * e * 3 * e


def _functional_mha_backward(ctx: NodeContext, forward: Any) -> Any:
    """``F.multi_head_attention_forward`` / ``aten._native_multi_head_attention``: ``2 * F`` less
    the q, k and v projections' input gradients for inputs that need none."""
    q, k, v = ctx.args[0], ctx.args[1], ctx.args[2]
    if not all(isinstance(t, torch.Tensor) for t in (q, k, v)):
        return 2 * forward
    native = "native" in str(ctx.node.target)
    n, length = (q.shape[0], q.shape[1]) if native and q.dim() == 3 else _layout(tuple(q.shape), False)
    source = k.shape[1] if native and k.dim() == 3 else _layout(tuple(k.shape), False)[1]
    e = q.shape[-1]
    saved = 0
    for tensor, rows in ((q, length), (k, source), (v, source)):
        if not tensor.requires_grad:
            saved += 2 * n * rows * tensor.shape[-1] * e
    return 2 * forward - saved


def _rnn_skipped(batch: int, steps: int, input_size: int, recurrent: int, gate_rows: int, layers: int,
                 directions: int, input_rg: bool, state_rg: bool) -> int:
    """Input gradients autograd skips in a recurrent layer: layer 0's input projection over every
    step (input needs no grad) and, per layer and direction, the first step's recurrent product
    (initial state needs no grad)."""
    saved = 0
    if not input_rg:
        saved += directions * 2 * steps * batch * input_size * gate_rows
    if not state_rg:
        saved += layers * directions * 2 * batch * recurrent * gate_rows
    return saved


def _rnn_backward(ctx: NodeContext, forward: Any) -> Any:
    """``nn.RNN``/``nn.LSTM``/``nn.GRU``: see :func:`recurrent_backward`."""
    module = ctx.module
    x = ctx.args[0] if ctx.args else ctx.kwargs.get("input")
    if not isinstance(module, nn.RNNBase) or not isinstance(x, torch.Tensor):
        return _layer_backward(ctx, forward)
    hx = ctx.args[1] if len(ctx.args) > 1 else ctx.kwargs.get("hx")
    h0, c0 = (hx[0], hx[1]) if isinstance(hx, (tuple, list)) else (hx, None)
    steps, batch = steps_and_batch(tuple(x.shape), module.batch_first)
    return recurrent_backward(module, steps, batch, x.requires_grad, _rg(h0), _rg(c0))


def recurrent_backward(module: nn.RNNBase, steps: int, batch: int, x_rg: bool, h0_rg: bool, c0_rg: bool) -> int:
    """Backward of a recurrent layer, layer by layer and direction by direction.

    Per step, ``x_t @ W_ih^T`` (``2*B*I*G*H``) gets its input gradient when the layer's input
    requires grad and its weight gradient when ``W_ih`` is trainable; ``h_{t-1} @ W_hh^T``
    (``2*B*R*G*H``) its weight gradient when ``W_hh`` is trainable and its input gradient when
    ``h_{t-1}`` requires grad: for the first step, when the initial state does; for the others,
    when anything feeding the gates does (input, weights, biases, initial states). The LSTM
    projection ``h @ W_hr^T`` likewise. A layer's output requires grad when its gates do, and is
    the next layer's input.
    """
    gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    hidden = module.hidden_size
    proj = getattr(module, "proj_size", 0) or 0
    recurrent = proj or hidden
    directions = 2 if module.bidirectional else 1
    named = dict(module.named_parameters())

    def trainable(name: str, layer: int, suffix: str) -> bool:
        parameter = named.get(f"{name}_l{layer}{suffix}")
        return parameter is not None and parameter.requires_grad

    total = 0
    input_rg = x_rg
    for layer in range(module.num_layers):
        layer_input = module.input_size if layer == 0 else recurrent * directions
        ih, hh, hr = 2 * batch * layer_input * gates * hidden, 2 * batch * recurrent * gates * hidden, \
            2 * batch * hidden * recurrent
        output_rg = False
        for suffix in ("", "_reverse")[:directions]:
            w_ih, w_hh, w_hr = trainable("weight_ih", layer, suffix), trainable("weight_hh", layer, suffix), \
                trainable("weight_hr", layer, suffix)
            gates_rg = input_rg or w_ih or w_hh or h0_rg or trainable("bias_ih", layer, suffix) or \
                trainable("bias_hh", layer, suffix)
            cell_rg = gates_rg or c0_rg  # the LSTM cell state; o * tanh(c) before the projection
            state_rg = (cell_rg or w_hr) if proj else cell_rg if module.mode == "LSTM" else gates_rg
            total += steps * ih * (int(input_rg) + int(w_ih))
            total += steps * hh * int(w_hh) + hh * int(h0_rg) + (steps - 1) * hh * int(state_rg)
            if proj:
                total += steps * hr * (int(cell_rg) + int(w_hr))
            output_rg = output_rg or state_rg
        input_rg = output_rg
    return total


def _rnn_cell_backward(ctx: NodeContext, forward: Any) -> Any:
    """``nn.*Cell``, one step: ``x @ W_ih^T`` (``2*B*I*G*H``) and ``h @ W_hh^T`` (``2*B*H*G*H``),
    each with its input gradient when its operand requires grad and its weight gradient when
    that weight is trainable."""
    module = ctx.module
    x = ctx.args[0] if ctx.args else ctx.kwargs.get("input")
    if not isinstance(module, nn.RNNCellBase) or not isinstance(x, torch.Tensor):
        return _layer_backward(ctx, forward)
    hx = ctx.args[1] if len(ctx.args) > 1 else ctx.kwargs.get("hx")
    h0 = hx[0] if isinstance(hx, (tuple, list)) else hx
    batch = x.shape[0] if x.dim() == 2 else 1
    rows = module.weight_ih.shape[0]
    ih, hh = 2 * batch * module.input_size * rows, 2 * batch * module.hidden_size * rows
    return ih * (int(x.requires_grad) + int(module.weight_ih.requires_grad)) + \
        hh * (int(_rg(h0)) + int(module.weight_hh.requires_grad))


def _rnn_op_backward(ctx: NodeContext, forward: Any) -> Any:
    """``aten.lstm``/``gru``/``rnn_*`` (flat weights): as the module rule."""
    x, hx, params = ctx.args[0], ctx.args[1], ctx.args[2]
    layers, bidirectional, batch_first = ctx.args[4], ctx.args[7], ctx.args[8]
    if not isinstance(params, (list, tuple)) or not any(_rg(p) for p in params):
        return _layer_backward(ctx, forward)
    directions = 2 if bidirectional else 1
    h0 = hx[0] if isinstance(hx, (tuple, list)) else hx
    steps, batch = steps_and_batch(tuple(x.shape), batch_first)
    w_ih, w_hh = params[0], params[1]
    saved = _rnn_skipped(batch, steps, w_ih.shape[1], w_hh.shape[1], w_ih.shape[0], layers, directions,
                         x.requires_grad, _rg(h0))
    return 2 * forward - saved


def _rnn_cell_op_backward(ctx: NodeContext, forward: Any) -> Any:
    """``aten.lstm_cell`` and friends: as the cell module rule."""
    x, hx, w_ih, w_hh = ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3]
    if not (_rg(w_ih) or _rg(w_hh)):
        return _layer_backward(ctx, forward)
    h0 = hx[0] if isinstance(hx, (tuple, list)) else hx
    batch = x.shape[0] if x.dim() == 2 else 1
    return 2 * forward - _rnn_skipped(batch, 1, w_ih.shape[1], w_hh.shape[1], w_ih.shape[0], 1, 1,
                                      x.requires_grad, _rg(h0))


def _layer_backward(ctx: NodeContext, forward: Any) -> Any:
    """aten recurrent ops whose weights are all frozen: ``F`` when the inputs require grad
    (each product has one activation operand and one weight: input gradients only), else 0.
    Also the fallback of the layer formulas for arguments they cannot read.
    """
    trainable = _module_rg(ctx.module) or _any_rg(*[a for a in ctx.args if isinstance(a, torch.Tensor)
                                                     and a.dim() >= 2 and a.is_floating_point()
                                                     and ctx.module is None and a is not ctx.args[0]])
    inputs = _any_rg(*[a for a in ctx.args[:3] if isinstance(a, torch.Tensor)])
    return forward * (int(trainable) + int(inputs))

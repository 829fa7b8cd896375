"""Routing choices that meta tensors cannot make: the ``routing=`` assumption of :func:`fxflops.count`.

A mixture-of-experts router picks each token's experts from scores computed with the model's
weights (``torch.topk(router_logits, k)``, Switch Transformers' ``argmax``). On meta tensors those
scores have no value, so when the model then *looks* at the choice (an eager per-expert loop asks
``torch.where(expert_mask[e])`` for its tokens, a capacity-limited router keeps the first
``capacity`` tokens of each expert), the shapes that follow are unknown. Two ways out:

* ``routing="uniform"``: the choice is assumed balanced. The indices of ``topk(x, k, dim)`` (and of
  ``argmax``/``max`` along ``dim``, which choose one) are made known as a round robin: the ``t``-th
  row (every position but ``dim``, in order) chooses ``(t * k + j) % n`` for ``j < k``, ``n`` being
  the size of ``dim``. Each token gets ``k`` distinct experts and each of the ``E`` experts gets
  ``S * k / E`` of the ``S`` tokens (within one, when ``E`` does not divide ``S * k``). A top-k MoE
  without capacity costs the same under any routing (each (token, expert) pair is one expert call),
  so there the assumption changes nothing; a capacity-limited router drops no tokens under it as
  long as ``S * k / E`` fits its capacity, which is the balanced regime routers are trained for.
* ``routing="data"``: the model runs for real on the data its weights and inputs carry, beside the
  meta run (:mod:`fxflops.known_values` without a size limit), so the count is the real routing's,
  as FlopCounterMode around a real forward counts it. It needs real weights and real inputs.

``routing="auto"`` (the default) uses the data when the model's parameters and the inputs all carry
it, and the uniform assumption otherwise. Either way the assumption only matters if the count asks
about the choice; :attr:`fxflops.FlopReport.routing` says which one decided a shape (``None`` when
none did), and the CLI summary prints it.
"""

from __future__ import annotations

from typing import Any

import torch

from fxflops import known_values

ROUTING_MODES = ("auto", "uniform", "data")

#: What each ``FlopReport.routing`` value means, for summaries.
DESCRIPTIONS = {
    "uniform": "uniform (router choices assumed balanced: each expert gets tokens*top_k/experts tokens; "
               "pass real weights and inputs for the real routing)",
    "data": "the data the weights and inputs carry (the model ran for real beside the meta run)",
}

_CHOICES = {torch.topk, torch.Tensor.topk, torch.argmax, torch.Tensor.argmax, torch.max, torch.Tensor.max}


def _dim(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """The dimension ``func`` chooses along, or ``None`` for a call that chooses nothing
    (``max(x)``, ``max(a, b)``)."""
    position = 2 if func in (torch.topk, torch.Tensor.topk) else 1
    dim = kwargs.get("dim", args[position] if len(args) > position else None)
    if func in (torch.topk, torch.Tensor.topk) and dim is None:
        return -1
    return dim if isinstance(dim, int) and not isinstance(dim, bool) else None


def _round_robin(shape: tuple[int, ...], dim: int, n: int) -> torch.Tensor:
    """int64 indices of ``shape`` whose row ``t`` (all positions but ``dim``) holds
    ``(t * k + j) % n`` at position ``j`` of ``dim`` (``k = shape[dim]``)."""
    dim = dim % len(shape) if shape else 0
    moved = (*shape[:dim], *shape[dim + 1:], shape[dim]) if shape else (1,)
    k = moved[-1]
    rows = 1
    for size in moved[:-1]:
        rows *= size
    values = (torch.arange(rows).unsqueeze(1) * k + torch.arange(k).unsqueeze(0)) % max(n, 1)
    values = values.reshape(moved)
    return values.movedim(-1, dim).contiguous() if shape else values.reshape(())


def assume_uniform_choice(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> bool:
    """After a choosing call on a tensor of unknown value: make its indices known as the round
    robin of the module docstring and mark them assumed. Returns whether it did."""
    if func not in _CHOICES or not args or not isinstance(args[0], torch.Tensor):
        return False
    source = args[0]
    if known_values.known(source) is not None:
        return False  # its value is real: the choice is too (known_values.propagate)
    dim = _dim(func, args, kwargs)
    if dim is None:
        if func in (torch.argmax, torch.Tensor.argmax) and isinstance(out, torch.Tensor) and out.dim() == 0:
            index = out  # argmax of the flattened tensor: one choice among all its elements
            value = torch.zeros((), dtype=torch.int64)
        else:
            return False
    else:
        index = out if isinstance(out, torch.Tensor) else getattr(out, "indices", None)
        if not isinstance(index, torch.Tensor) or index.dtype != torch.int64 or source.dim() == 0:
            return False
        n = source.shape[dim]
        if index.dim() == source.dim():
            value = _round_robin(tuple(index.shape), dim, n)
        else:  # the dimension chosen along was reduced away (keepdim=False): one choice per row
            value = (torch.arange(index.numel()) % max(n, 1)).reshape(index.shape)
    known_values.attach(index, value)
    if known_values.known(index) is None:
        return False
    known_values.mark_assumed(index)
    return True

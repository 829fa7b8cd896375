"""Recognising causal attention masks passed as tensors, for ``count(..., causal="exact")``.

Many models pass the causal mask as a tensor instead of ``is_causal=True``: OpenCLIP's text tower
keeps it as a buffer, ``nn.Transformer.generate_square_subsequent_mask`` builds it in forward,
Hugging Face models compute it from the input shape. Under ``causal="exact"`` such a mask is
evaluated on the CPU, at the traced size, and compared with torch's top-left causal mask; if it
is one, attention counts only the score entries it keeps.

A mask can be evaluated when every tensor it is computed from has data: factories, real (non-meta)
buffers and constants, real inputs. A mask made from meta buffers or meta inputs cannot be; its
attention is counted dense, and :class:`MaskProbe` remembers the node so the count can say so.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import fx
from torch.utils._pytree import tree_map

from fxflops.errors import CausalMaskWarning
from fxflops.shapes import tensor_leaves

#: How a mask selects: ``MHA`` (``nn.MultiheadAttention``, ``nn.Transformer*``: boolean True means
#: *not* attended) or ``SDPA`` (``F.scaled_dot_product_attention``: boolean True means attended).
#: Float masks are added to the scores in both: 0 keeps an entry, -inf drops it.
MHA = "mha"
SDPA = "sdpa"

#: Masks larger than this are not evaluated (counted dense): 2**26 entries is 256 MiB of float32.
MAX_MASK_ENTRIES = 2**26
#: Nor are masks computed by more nodes than this: they are not a causal mask built from sizes.
MAX_MASK_NODES = 64


def kept_entries(mask: torch.Tensor, semantics: str) -> torch.Tensor:
    """The boolean map of score entries ``mask`` lets through (True = attended)."""
    if mask.dtype == torch.bool:
        return ~mask if semantics == MHA else mask
    return torch.isfinite(mask) & (mask == 0)


def is_top_left_causal(kept: torch.Tensor) -> bool:
    """Whether ``kept`` (..., L, S) is torch's ``is_causal`` pattern in every leading slice:
    query i attends to keys 0..i and to no other."""
    if kept.dim() < 2:
        return False
    length, source = kept.shape[-2:]
    causal = torch.ones(length, source, dtype=torch.bool).tril()
    return bool((kept == causal).all())


def run_on_cpu(n: fx.Node, args: Any, kwargs: dict[str, Any]) -> Any:
    """Run a ``call_function``/``call_method`` node on CPU values. Factories that recorded the
    meta device (graphs are traced on meta tensors) compute on the CPU instead."""
    if "device" in kwargs:
        kwargs = {**kwargs, "device": torch.device("cpu")}
    with torch.device("cpu"):
        if n.op == "call_method":
            return getattr(args[0], n.target)(*args[1:], **kwargs)
        return n.target(*args, **kwargs)


def warn_unreadable_masks(unreadable: dict[str, str]) -> None:
    """One :class:`~fxflops.errors.CausalMaskWarning` naming the attention nodes counted dense
    because their mask could not be evaluated (node name -> why)."""
    shown = "; ".join(f"{name} ({why})" for name, why in list(unreadable.items())[:3])
    more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
    warnings.warn(
        f"causal='exact': {len(unreadable)} attention node(s) take a mask fxflops cannot evaluate, so they "
        f"are counted dense: {shown}{more}. Give the mask data (a real CPU buffer or input, not meta), or "
        "pass is_causal=True where the mask is causal",
        CausalMaskWarning,
        stacklevel=3,
    )


class _NoDataError(Exception):
    """The mask depends on a tensor without data (meta) or on a module call."""


class MaskProbe:
    """Evaluates the mask arguments of attention nodes of a ``torch.fx`` graph (fx path).

    ``python_values`` holds the values the interpreter computed that are not tensors (dtypes and
    sizes, which masks are often cast or shaped with); ``original(node)`` returns the user's value
    behind a ``get_attr`` or placeholder node, with its data when it has any; ``unreadable``
    receives the attention nodes whose mask could not be evaluated.
    """

    def __init__(self, python_values: dict[fx.Node, Any], original: Callable[[fx.Node], Any],
                 unreadable: dict[str, str]) -> None:
        self.python_values = python_values
        self.original = original
        self._causal: dict[fx.Node, dict[str, bool]] = {}
        #: Attention nodes whose mask could not be evaluated (counted dense): name -> why.
        self.unreadable = unreadable

    def is_causal(self, node: fx.Node, name: str, position: int | None, semantics: str) -> bool:
        """Whether ``node``'s argument ``name`` (at ``position`` when passed positionally, None
        when the signature does not say) is a causal mask."""
        mask_node = node.kwargs.get(name) if name in node.kwargs else (
            node.args[position] if position is not None and len(node.args) > position else None)
        if not isinstance(mask_node, fx.Node):
            return False
        known = self._causal.setdefault(mask_node, {})
        if semantics not in known:
            known[semantics] = self._evaluate(node, mask_node, semantics)
        return known[semantics]

    def _evaluate(self, node: fx.Node, mask_node: fx.Node, semantics: str) -> bool:
        values: dict[fx.Node, Any] = {}
        try:
            mask = self._value(mask_node, values)
        except _NoDataError as e:
            self.unreadable.setdefault(node.name, str(e))
            return False
        except Exception:
            return False  # a mask torch cannot compute on the CPU: not torch's causal mask
        if not isinstance(mask, torch.Tensor) or mask.device.type == "meta":
            return False
        return is_top_left_causal(kept_entries(mask, semantics))

    def _value(self, n: fx.Node, values: dict[fx.Node, Any]) -> Any:
        if n in values:
            return values[n]
        if n in self.python_values:
            return self.python_values[n]
        if len(values) >= MAX_MASK_NODES:
            raise _NoDataError(f"its mask is computed by more than {MAX_MASK_NODES} nodes")
        if n.op in ("get_attr", "placeholder"):
            value = self.original(n)
            if any(t.device.type == "meta" for t in tensor_leaves(value)):
                what = "attribute" if n.op == "get_attr" else "input"
                raise _NoDataError(f"its mask comes from {what} {n.target!r}, which is on the meta device")
        elif n.op in ("call_function", "call_method"):
            args = tree_map(lambda a: self._value(a, values) if isinstance(a, fx.Node) else a, n.args)
            kwargs = tree_map(lambda a: self._value(a, values) if isinstance(a, fx.Node) else a, dict(n.kwargs))
            for leaf in tensor_leaves((args, kwargs)):
                if leaf.numel() > MAX_MASK_ENTRIES:
                    raise _NoDataError(f"its mask has more than {MAX_MASK_ENTRIES} entries")
            value = run_on_cpu(n, args, kwargs)
        else:
            raise _NoDataError(f"its mask is computed by module {n.target!r}")
        values[n] = value
        return value

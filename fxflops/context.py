"""What a FLOP rule sees: one :class:`NodeContext` per graph node.

Tensors in ``args``, ``kwargs`` and ``output`` are meta tensors: they carry shape and dtype, no
data. Rules only do arithmetic on sizes.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from fxflops.convention import Convention
from fxflops.shapes import tensor_leaves

_MISSING = object()


def _shapes(value: Any) -> list[tuple[int, ...]]:
    return [tuple(leaf.shape) for leaf in tensor_leaves(value)]


@dataclass
class NodeContext:
    """Everything a rule needs to count one node.

    Attributes:
        node: the ``torch.fx`` node.
        module: the called module for ``call_module`` nodes (the user's own object, read only),
            else ``None``.
        args, kwargs: the node's arguments with tensors replaced by meta tensors.
        output: the node's output (meta tensors).
        convention: the convention of this count; most rules ignore it.
        causal: ``"dense"`` (default: a causal mask saves nothing, as FlopCounterMode counts) or
            ``"exact"`` (attention rules count only the score entries the mask keeps).
        mask_probe: under ``causal="exact"`` on a torch.fx graph, what :meth:`mask_is_causal`
            asks; ``None`` otherwise.
        macs: a rule may set this to the node's multiply-accumulates when they are not simply
            half its FLOPs (e.g. a convention that also counts bias adds); else it stays ``None``.
    """

    node: fx.Node
    module: nn.Module | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Any
    convention: Convention
    causal: str = "dense"
    macs: int | None = None
    #: causal="exact" on a torch.fx graph: evaluates mask arguments (:mod:`fxflops.masks`).
    mask_probe: Any = field(default=None, repr=False)
    _bound: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of every tensor among the arguments, positional first, in order."""
        return _shapes((self.args, self.kwargs))

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of every tensor in the output, in order."""
        return _shapes(self.output)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the first output tensor."""
        shapes = self.output_shapes
        if not shapes:
            raise ValueError(f"node {self.node.name} has no tensor output")
        return shapes[0]

    @property
    def output_numel(self) -> int:
        """Number of elements of the first output tensor."""
        return math.prod(self.output_shape)

    def arg(self, name: str, position: int | None = None, default: Any = _MISSING) -> Any:
        """An argument by keyword ``name`` or by ``position``: how it was passed does not matter.

        ``position`` counts the positional arguments of the call (for ``call_method`` nodes the
        tensor itself is position 0). Falls back to the callee's signature default, then to
        ``default``; raises ``KeyError`` when none applies.
        """
        if name in self.kwargs:
            return self.kwargs[name]
        if position is not None and position < len(self.args):
            return self.args[position]
        bound = self.bound_arguments()
        if name in bound:
            return bound[name]
        if default is not _MISSING:
            return default
        raise KeyError(f"node {self.node.name}: argument {name!r} not given and has no default")

    def tensor(self, name: str, position: int | None = None) -> torch.Tensor | None:
        """Like :meth:`arg` for a tensor argument, ``None`` when it is absent or not a tensor."""
        value = self.arg(name, position, default=None)
        return value if isinstance(value, torch.Tensor) else None

    def mask_is_causal(self, name: str, position: int, semantics: str) -> bool:
        """Under ``causal="exact"``: whether the mask argument ``name`` (or at ``position``)
        evaluates to torch's top-left causal mask. ``semantics`` is :data:`fxflops.masks.MHA`
        (boolean True = not attended) or :data:`fxflops.masks.SDPA` (True = attended)."""
        if self.causal != "exact" or self.mask_probe is None:
            return False
        return self.mask_probe.is_causal(self.node, name, position, semantics)

    def bound_arguments(self) -> dict[str, Any]:
        """All arguments by name, defaults applied, when the callee's signature is known.

        Works for Python callables, module ``forward`` methods and torch builtins with a
        TorchScript schema; returns the keyword arguments alone when no signature is found.
        """
        if self._bound is None:
            self._bound = _bind(self) or dict(self.kwargs)
        return self._bound


_signatures: dict[Any, inspect.Signature] = {}


def _signature(callee: Any) -> inspect.Signature:
    """``inspect.signature(callee)``, computed once per function (rules bind on every node)."""
    function = getattr(callee, "__func__", None)
    if function is None or not inspect.ismethod(callee):
        return inspect.signature(callee)  # builtins, callables: no cache key to trust
    signature = _signatures.get(function)
    if signature is None:
        unbound = inspect.signature(function)
        parameters = list(unbound.parameters.values())
        # As inspect does for bound methods: drop ``self`` unless it is collected by ``*args``.
        if parameters and parameters[0].kind != inspect.Parameter.VAR_POSITIONAL:
            parameters = parameters[1:]
        signature = unbound.replace(parameters=parameters)
        _signatures[function] = signature
    return signature


def _bind(ctx: NodeContext) -> dict[str, Any] | None:
    node = ctx.node
    callee: Any
    args: Sequence[Any] = ctx.args
    if node.op == "call_module" and ctx.module is not None:
        callee = ctx.module.forward
    elif node.op == "call_method":
        callee = getattr(torch.Tensor, str(node.target), None)
    else:
        callee = node.target
    if callee is None:
        return None
    try:
        signature = _signature(callee)
        bound = signature.bind(*args, **ctx.kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)
    except (TypeError, ValueError):
        pass
    # torch builtins have no Python signature: use their TorchScript schemas.
    try:
        from torch.fx.operator_schemas import normalize_function

        normalized = normalize_function(callee, tuple(args), ctx.kwargs, normalize_to_only_use_kwargs=True)
    except Exception:
        return None
    return dict(normalized.kwargs) if normalized is not None else None

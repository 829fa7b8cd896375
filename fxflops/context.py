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
        """An argument by keyword ``name``, however it was passed: by keyword, or by position in the
        callee's signature (an aten operator's schema, a Python signature, a torch builtin's
        TorchScript schemas; ``input`` and ``self`` name the same first tensor, as torch and aten
        call it). Falls back to the signature's default, then to ``default``; raises ``KeyError``
        when none applies.

        ``position`` is only for callees without a signature (a user's rule may still give one):
        positions count the positional arguments of the call, the tensor of a ``call_method``
        node being position 0.
        """
        for key in (name, _ALIASES.get(name)):
            if key is not None and key in self.kwargs:
                return self.kwargs[key]
        index, signature_default = _argument_position(_callee(self), name)
        if index is None:
            index = position
        if index is not None and index < len(self.args):
            return self.args[index]
        if signature_default is not _MISSING:
            return signature_default
        if index is None:  # the signatures did not say (or disagree): bind this very call
            bound = self.bound_arguments()
            for key in (name, _ALIASES.get(name)):
                if key is not None and key in bound:
                    return bound[key]
        if default is not _MISSING:
            return default
        raise KeyError(f"node {self.node.name}: argument {name!r} not given and has no default")

    def tensor(self, name: str, position: int | None = None) -> torch.Tensor | None:
        """Like :meth:`arg` for a tensor argument, ``None`` when it is absent or not a tensor."""
        value = self.arg(name, position, default=None)
        return value if isinstance(value, torch.Tensor) else None

    def mask_is_causal(self, name: str, semantics: str) -> bool:
        """Under ``causal="exact"``: whether the mask argument ``name`` evaluates to torch's
        top-left causal mask. ``semantics`` is :data:`fxflops.masks.MHA` (boolean True = not
        attended) or :data:`fxflops.masks.SDPA` (True = attended)."""
        if self.causal != "exact" or self.mask_probe is None:
            return False
        position, _ = _argument_position(_callee(self), name)
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
#: torch functions call the first tensor ``input``, aten schemas and Tensor methods ``self``.
_ALIASES = {"input": "self", "self": "input"}
#: (callee, name) -> (position or None, signature default or _MISSING), computed once.
_positions: dict[tuple[Any, str], tuple[int | None, Any]] = {}


def _callee(ctx: NodeContext) -> Any:
    """What the node calls: the module's ``forward``, the aten overloads of a Tensor method
    (``call_method`` nodes name it; ``__matmul__``/``__rmatmul__`` are aten's ``matmul``), else the
    target."""
    node = ctx.node
    if node.op == "call_module":
        return ctx.module.forward if ctx.module is not None else None
    if node.op == "call_method":
        name = str(node.target)
        if name.startswith("__") and name.endswith("__"):
            name = name[2:-2]
            if not hasattr(torch.ops.aten, name) and name[:1] in ("r", "i"):
                name = name[1:]  # reflected and in-place dunders take the same operands
        return getattr(torch.ops.aten, name, None)
    if getattr(node.target, "__module__", None) == "_operator":  # a @ b: aten's matmul names its operands
        return getattr(torch.ops.aten, node.target.__name__, None)
    return node.target


Parameters = list[tuple[str, bool, Any]]


def _candidate_signatures(callee: Any) -> list[Parameters]:
    """Each signature of ``callee`` as (name, positional, default) per parameter: an aten overload's
    schema, every overload of an aten packet, a Python signature (both variants of a
    ``boolean_dispatch`` function such as ``F.max_pool2d``), or a builtin's TorchScript schemas. A
    Python signature of ``*args, **kwargs`` alone says nothing: the TorchScript ones are tried."""
    def from_schema(schema: Any) -> Parameters:
        return [(a.name, not a.kwarg_only, a.default_value if a.has_default_value() else _MISSING)
                for a in schema.arguments]

    def from_signature(signature: inspect.Signature) -> Parameters:
        return [(p.name, p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD),
                 _MISSING if p.default is p.empty else p.default)
                for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    if isinstance(callee, torch._ops.OpOverload):
        return [from_schema(callee._schema)]
    if isinstance(callee, torch._ops.OpOverloadPacket):
        return [from_schema(getattr(callee, o)._schema) for o in callee.overloads()]
    try:
        from torch._jit_internal import boolean_dispatched

        variants = boolean_dispatched.get(callee)
    except (ImportError, TypeError):
        variants = None
    if variants:
        return [from_signature(inspect.signature(variants[k])) for k in ("if_true", "if_false")]
    try:
        parameters = from_signature(_signature(callee))
        if parameters:
            return [parameters]
    except (TypeError, ValueError):
        pass
    try:
        from torch.fx.operator_schemas import get_signature_for_torch_op

        return [from_signature(sig) for sig in get_signature_for_torch_op(callee) or ()]
    except Exception:
        return []


def _argument_position(callee: Any, name: str) -> tuple[int | None, Any]:
    """Where ``name`` (or its alias) sits among the positional parameters of ``callee``, when every
    signature that has it agrees (else None), and its default when they agree on that too (else
    _MISSING). Cached per function: a bound ``forward`` is keyed by its class's function, so the
    cache holds no model."""
    if callee is None:
        return None, _MISSING
    function = callee.__func__ if inspect.ismethod(callee) else callee
    try:
        key = (function, name)
        hash(key)
    except TypeError:
        return None, _MISSING
    found = _positions.get(key)
    if found is None:
        places: list[tuple[int | None, Any]] = []
        for parameters in _candidate_signatures(callee):
            for wanted in (name, _ALIASES.get(name)):
                match = next(((i, positional, default) for i, (n, positional, default) in enumerate(parameters)
                              if n == wanted), None)
                if match is not None:
                    places.append((match[0] if match[1] else None, match[2]))
                    break
        indices = {index for index, _ in places}
        index = indices.pop() if len(indices) == 1 else None
        defaults = [default for _, default in places]
        default = defaults[0] if defaults and all(_same(d, defaults[0]) for d in defaults) else _MISSING
        found = (index, default) if places else (None, _MISSING)
        _positions[key] = found
    return found


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False




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

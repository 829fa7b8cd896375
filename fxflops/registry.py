"""The rule registry: which FLOP rule counts which graph node.

A *target* is what a graph node calls:

* an ``nn.Module`` subclass, for ``call_module`` nodes; looked up along the MRO, so a subclass of
  ``nn.Linear`` uses the ``nn.Linear`` rule unless it has one of its own;
* a Python callable (``torch.matmul``, ``F.linear``, ``operator.matmul``), for ``call_function``
  nodes; ``torch.Tensor.matmul`` (or the string ``"matmul"``) for ``call_method`` nodes;
* a ``torch.ops`` operator (``torch.ops.aten.mm`` or one overload of it), for aten-level graphs.

A *rule* takes one :class:`~fxflops.context.NodeContext` and returns FLOPs as an ``int``.
Every rule belongs to a *category* (``"matmul"``, ``"conv"``, ``"norm"``, ...); the convention
decides which categories are counted (:mod:`fxflops.convention`).
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import nn

from fxflops.errors import RuleConflictError

if TYPE_CHECKING:
    from fxflops.context import NodeContext

Rule = Callable[["NodeContext"], int]
Target = Union[type, Callable[..., Any], str, "torch._ops.OpOverloadPacket", "torch._ops.OpOverload"]

#: Categories of ops that cost nothing by definition: views, indexing, copies, shape arithmetic.
ZERO = "zero"


@dataclass(frozen=True)
class RuleEntry:
    """One registration: the rule, its category and the target it was registered for."""

    rule: Rule
    category: str
    target: Any
    #: Gives the target's output (meta tensors) from a NodeContext whose ``output`` is ``None``,
    #: instead of running it: a module whose output depends on data (a router, an early exit),
    #: or an op whose meta kernel refuses what the model passes, is counted this way.
    output: Callable[[NodeContext], Any] | None = None
    #: The backward formula, ``(ctx, forward_flops) -> FLOPs``, when registered with ``backward=``
    #: (else the built-in one of the rule, :mod:`fxflops.backward`).
    backward: Callable[[NodeContext, Any], Any] | None = None

    @property
    def name(self) -> str:
        """The rule's importable name, e.g. ``fxflops.rules.linear.linear_flops``."""
        return f"{getattr(self.rule, '__module__', '?')}.{getattr(self.rule, '__qualname__', repr(self.rule))}"

    @property
    def where(self) -> str:
        """Source file and line of the rule's definition, when Python knows it."""
        try:
            file = inspect.getsourcefile(self.rule)  # type: ignore[arg-type]
            _, line = inspect.getsourcelines(self.rule)  # type: ignore[arg-type]
        except (OSError, TypeError):
            return "?"
        return f"{file}:{line}"


def _zero_flops(ctx: NodeContext) -> int:
    """0 FLOPs: the op moves, views or indexes data, or only does shape arithmetic."""
    return 0


def normalize_target(target: Target) -> Any:
    """The registry key of ``target``.

    ``torch.Tensor.matmul`` and ``"matmul"`` both mean the ``call_method`` target ``"matmul"``;
    an ``OpOverload`` (``aten.mm.default``) is keyed by itself and found also through its packet.
    """
    if isinstance(target, str):
        return ("method", target)
    if isinstance(target, type):
        if not issubclass(target, nn.Module):
            raise TypeError(
                f"rule target {target!r} is a class but not an nn.Module subclass; "
                "register module classes, callables, Tensor methods or torch.ops operators"
            )
        return target
    if isinstance(target, (torch._ops.OpOverloadPacket, torch._ops.OpOverload)):
        return target
    # Tensor methods reached as attributes of torch.Tensor, e.g. torch.Tensor.matmul. These are
    # method descriptors (C methods) or plain functions defined on torch.Tensor (e.g. __rsub__).
    qualname = getattr(target, "__qualname__", "")
    if (
        inspect.ismethoddescriptor(target) or inspect.isfunction(target) or inspect.isbuiltin(target)
    ) and qualname.startswith(("Tensor.", "TensorBase.", "_TensorBase.")):
        return ("method", target.__name__)
    if callable(target):
        return target
    raise TypeError(
        f"rule target {target!r} of type {type(target).__name__} is not supported; expected an "
        "nn.Module subclass, a callable, a Tensor method name or a torch.ops operator"
    )


#: Categories whose module rules still describe a subclass with its own forward (lookup_module).
PER_ELEMENT_LEAF_CATEGORIES = frozenset({"norm", "activation", "softmax"})


def describe_target(key: Any) -> str:
    """A readable name for a registry key (``nn.Linear``, ``torch.matmul``, ``Tensor.view``)."""
    if isinstance(key, tuple) and key[0] == "method":
        return f"Tensor.{key[1]}"
    if isinstance(key, type):
        if key.__module__ == "torch.nn.utils.parametrize" and key.__name__.startswith("Parametrized"):
            key = key.__mro__[1]  # register_parametrization's subclass: name the layer it wraps
        module = key.__module__
        if module.startswith("torch.nn.modules"):
            module = "torch.nn"
        return f"{module}.{key.__qualname__}"
    if isinstance(key, (torch._ops.OpOverloadPacket, torch._ops.OpOverload)):
        return str(key)
    module = getattr(key, "__module__", None) or ""
    name = getattr(key, "__qualname__", None) or getattr(key, "__name__", None) or repr(key)
    if key in _OPERATOR_NAMES:
        return _OPERATOR_NAMES[key]
    if "<locals>" in name:
        # torch.unique_consecutive and F.max_pool2d are closures made by boolean_dispatch, whose
        # qualname is "boolean_dispatch.<locals>.fn"; their __name__ is the public one.
        name = getattr(key, "__name__", name)
    if name.startswith("_VariableFunctionsClass."):
        return "torch." + name.split(".", 1)[1]
    for private, public in _PRIVATE_NAMESPACES.items():
        if module == private:
            prefix = public.rsplit(".", 1)[-1] + "_"
            return f"{public}.{name[len(prefix):] if name.startswith(prefix) else name}"
    return f"{module}.{name}" if module else name


# C namespaces whose functions are public elsewhere: torch._C._fft.fft_fft is torch.fft.fft.
_PRIVATE_NAMESPACES = {
    "torch._C._nn": "torch.nn.functional",
    "torch._C._fft": "torch.fft",
    "torch._C._linalg": "torch.linalg",
    "torch._C._special": "torch.special",
    "torch._C._VariableFunctions": "torch",
}

_OPERATOR_NAMES = {
    getattr(operator, name): f"operator.{name}"
    for name in ("add", "sub", "mul", "truediv", "floordiv", "matmul", "getitem", "neg", "pow", "mod")
}


class RuleRegistry:
    """A mapping from targets to rules, with MRO lookup for module classes.

    >>> registry = RuleRegistry()
    >>> @registry.register(torch.mm, category="matmul")
    ... def mm_flops(ctx):
    ...     m, k = ctx.input_shapes[0]
    ...     return 2 * m * k * ctx.output_shape[1]
    """

    def __init__(self) -> None:
        self._entries: dict[Any, RuleEntry] = {}

    def register(
        self, *targets: Target, category: str = "custom", override: bool = False,
        output: Callable[[NodeContext], Any] | None = None,
        backward: Callable[[NodeContext, Any], Any] | None = None,
    ) -> Callable[[Rule], Rule]:
        """Decorator registering a rule for each target.

        ``output`` computes the target's output from shapes instead of running it (see
        :attr:`RuleEntry.output`); ``backward`` is its backward formula (:attr:`RuleEntry.backward`).
        Raises
        :class:`~fxflops.errors.RuleConflictError` when a target already has a rule, unless
        ``override=True``.
        """
        if not targets:
            raise TypeError("register() needs at least one target")

        def decorator(rule: Rule) -> Rule:
            for target in targets:
                self.add(target, rule, category=category, override=override, output=output, backward=backward)
            return rule

        return decorator

    def add(self, target: Target, rule: Rule, *, category: str = "custom", override: bool = False,
            output: Callable[[NodeContext], Any] | None = None,
            backward: Callable[[NodeContext, Any], Any] | None = None) -> None:
        """Register ``rule`` for ``target`` (the non-decorator form of :meth:`register`)."""
        from fxflops.convention import check_category

        check_category(category, f"the rule for {describe_target(normalize_target(target))}")
        key = normalize_target(target)
        if key in self._entries and not override:
            existing = self._entries[key]
            raise RuleConflictError(
                f"{describe_target(key)} already has the rule {existing.name} ({existing.where}); "
                "pass override=True to replace it"
            )
        self._entries[key] = RuleEntry(rule=rule, category=category, target=key, output=output, backward=backward)

    def zero(self, *targets: Target, override: bool = False) -> None:
        """Declare targets that cost 0 FLOPs by definition (views, indexing, copies)."""
        for target in targets:
            self.add(target, _zero_flops, category=ZERO, override=override)

    def copy(self) -> RuleRegistry:
        """A shallow copy: per-call rules are added to it, never to the shared registry."""
        clone = RuleRegistry()
        clone._entries = dict(self._entries)
        return clone

    def updated(self, rules: Mapping[Target, Rule | RuleEntry] | None) -> RuleRegistry:
        """A copy of this registry with ``rules`` layered on top (overriding existing targets)."""
        if not rules:
            return self
        clone = self.copy()
        for target, rule in rules.items():
            if isinstance(rule, RuleEntry):
                clone.add(target, rule.rule, category=rule.category, override=True, output=rule.output,
                          backward=rule.backward)
            else:
                category = getattr(rule, "_fxflops_category", "custom")
                clone.add(target, rule, category=category, override=True,
                          backward=getattr(rule, "_fxflops_backward", None))
        return clone

    def lookup_module(self, module_type: type) -> RuleEntry | None:
        """The rule for a module class, walking its MRO (``nn.Module`` itself has none).

        A subclass that defines its own ``forward`` is not the layer its base's rule describes
        (Parakeet's CTC head is an ``nn.Conv1d`` that transposes its input first): it has no rule
        unless one is registered for it, and is followed into like any other module. Norms,
        activations and softmax keep their base's rule: they cost per element, which the casts and
        transposes such subclasses add do not change (OpenCLIP's float32 ``LayerNorm``, timm's
        channels-first ``LayerNorm2d``), and following them would double a ViT's node count."""
        overridden = False
        for cls in module_type.__mro__:
            if cls is nn.Module or cls is object:
                return None
            entry = self._entries.get(cls)
            if entry is not None:
                return entry if not overridden or entry.category in PER_ELEMENT_LEAF_CATEGORIES else None
            overridden = overridden or "forward" in cls.__dict__
        return None

    def has_ruled_base(self, module_type: type) -> bool:
        """Whether some class in ``module_type``'s MRO has a rule, used or not: a subclass whose own
        ``forward`` set its rule aside (:meth:`lookup_module`) is traced into, never left a leaf
        without a rule (torch.fx leaves every ``torch.ao.nn`` module, e.g. QAT ``Linear``)."""
        return any(cls in self._entries for cls in module_type.__mro__ if cls not in (nn.Module, object))

    def lookup_function(self, target: Any) -> RuleEntry | None:
        """The rule of a ``call_function`` target (a callable or a torch.ops operator)."""
        try:
            entry = self._entries.get(target)
        except TypeError:  # unhashable target
            return None
        if entry is None and isinstance(target, torch._ops.OpOverload):
            entry = self._entries.get(target.overloadpacket)
        return entry

    def lookup_method(self, name: str) -> RuleEntry | None:
        """The rule of a ``call_method`` target such as ``"matmul"``."""
        return self._entries.get(("method", name))

    def __contains__(self, target: Target) -> bool:
        return normalize_target(target) in self._entries

    def __iter__(self) -> Iterator[RuleEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


#: The registry every call of :func:`fxflops.count` starts from. Built-in rules and third-party
#: rule packs (entry-point group ``fxflops.rules``) register here.
DEFAULT_REGISTRY = RuleRegistry()


def rule(*targets: Target, category: str = "custom", override: bool = False,
         output: Callable[[NodeContext], Any] | None = None,
         backward: Callable[[NodeContext, Any], Any] | None = None) -> Callable[[Rule], Rule]:
    """Register a FLOP rule in the default registry.

    ``output`` gives the target's output from a context whose ``output`` is ``None``, so a
    module whose output depends on data is counted without running it:
    ``output=lambda ctx: torch.empty_like(ctx.args[0])``. ``backward(ctx, forward_flops)`` gives
    its FLOPs under ``count(..., backward=True)`` (a matmul-class rule needs one there:
    ``fxflops.NO_BACKWARD`` says it has no gradient work).

    >>> import fxflops
    >>> class Gate(torch.nn.Module): ...
    >>> @fxflops.rule(Gate, category="matmul")
    ... def gate_flops(ctx):
    ...     return 2 * ctx.output_numel
    """
    return DEFAULT_REGISTRY.register(*targets, category=category, override=override, output=output,
                                     backward=backward)


def zero(*targets: Target, override: bool = False) -> None:
    """Declare targets of the default registry that cost 0 FLOPs by definition."""
    DEFAULT_REGISTRY.zero(*targets, override=override)


def rule_of(rule_fn: Rule, category: str, backward: Callable[[NodeContext, Any], Any] | None = None) -> Rule:
    """Tag a function with a category (and a backward formula), for use in
    ``count(..., rules={target: fn})``."""
    rule_fn._fxflops_category = category  # type: ignore[attr-defined]
    if backward is not None:
        rule_fn._fxflops_backward = backward  # type: ignore[attr-defined]
    return rule_fn

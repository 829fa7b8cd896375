"""Symbolic tracing with ``torch.fx``, leaving alone every module that has a FLOP rule.

The tracer stops at modules that have a rule (they become ``call_module`` leaves, counted by their
rule), at modules the user listed in ``leaf_modules``, and at ``torch.nn`` modules as ``torch.fx``
does by default. Everything else is traced through, so user code becomes ``call_function`` and
``call_method`` nodes counted by the functional rules.

Tracing never changes the model: hooks are set aside while tracing (they would see proxies) and
put back, and the tensor constants ``torch.fx`` attaches to the root are moved into the result.
"""

from __future__ import annotations

import contextlib
import inspect
import operator
import os
import sys
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from fxflops.errors import TraceError
from fxflops.registry import RuleRegistry
from fxflops.shapes import _HOOK_ATTRIBUTES, setattr_plain, tensor_leaves

_INTERNAL_PATHS = (
    os.path.join("torch", "fx", ""),
    os.path.join("torch", "nn", "modules", "module.py"),
    os.path.join("torch", "_jit_internal.py"),
    os.path.join("torch", "overrides.py"),
    os.path.join("torch", "utils", "_device.py"),
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    "contextlib.py",
    "<",
)


#: Arguments torch.fx stores in the graph as they are.
_PLAIN_ARGUMENTS = frozenset({int, float, bool, str, type(None), type(...), torch.dtype, torch.device,
                              torch.memory_format, torch.layout})

_internal_files: dict[str, bool] = {}


def _is_internal(filename: str) -> bool:
    internal = _internal_files.get(filename)
    if internal is None:
        internal = _internal_files[filename] = any(part in filename for part in _INTERNAL_PATHS)
    return internal


def _user_frame() -> str | None:
    """``file:line`` of the innermost frame outside torch.fx, nn.Module.__call__ and fxflops."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_internal(filename):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


class FlopTracer(fx.Tracer):
    """A ``torch.fx.Tracer`` whose leaves are the modules that have rules or that the user named."""

    def __init__(
        self,
        registry: RuleRegistry,
        leaf_modules: Sequence[type | str] = (),
        method: str = "forward",
    ) -> None:
        super().__init__()
        # Buffers become graph nodes, run on meta copies: a forward that updates a buffer in
        # place (``self.steps.add_(1)``) must not update the user's while it is traced.
        self.proxy_buffer_attributes = True
        self.registry = registry
        self.leaf_types = tuple(m for m in leaf_modules if isinstance(m, type))
        self.leaf_names = frozenset(m for m in leaf_modules if isinstance(m, str))
        self.traced_func_name = method
        #: Modules counted through torch.export instead (trace="auto"): qualified name -> reason.
        self.fallbacks: dict[str, str] = {}
        #: The innermost module whose forward raised while tracing, and the error.
        self.failed_module: str | None = None
        self.failure: BaseException | None = None
        #: Module path -> the nodes of its output (first call), for the tables.
        self.module_outputs: dict[str, list[fx.Node]] = {}
        #: The root traced last, and the names of its parameters and of its buffers by id.
        self._index: tuple[nn.Module, dict[int, str], dict[int, str]] | None = None

    def _attribute_name(self, value: torch.Tensor) -> str | None:
        """The qualified name of a parameter (for ``nn.Parameter``) or buffer of the root.

        torch.fx scans ``named_parameters()``/``named_buffers()`` on every parameter access and
        every tensor argument; one id index per trace makes tracing large models several times
        faster. Names are the first a tensor is reachable by, as in torch.fx's scan. A tensor
        registered after the index was built is not found here and gets torch.fx's scan.
        """
        if self._index is None or self._index[0] is not self.root:
            parameters: dict[int, str] = {}
            buffers: dict[int, str] = {}
            for name, param in self.root.named_parameters():
                parameters.setdefault(id(param), name)
            for name, buffer in self.root.named_buffers():
                buffers.setdefault(id(buffer), name)
            self._index = (self.root, parameters, buffers)
        _, parameters, buffers = self._index
        if isinstance(value, nn.Parameter) and id(value) in parameters:
            return parameters[id(value)]
        return buffers.get(id(value))

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if isinstance(attr_val, torch.Tensor) and not self.param_shapes_constant:
            name = self._attribute_name(attr_val)
            if name is not None and (isinstance(attr_val, nn.Parameter) or self.proxy_buffer_attributes):
                if name not in parameter_proxy_cache:
                    parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {})
                return parameter_proxy_cache[name]
        # Not found in the index (registered during tracing, say): torch.fx's own scan.
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def create_arg(self, a: Any) -> Any:
        # The commonest arguments first: torch.fx would ask of each whether its type is a
        # registered opaque type (a weak-dictionary probe per class in its MRO) before deciding
        # what it decides here.
        kind = type(a)
        if kind in _PLAIN_ARGUMENTS:
            return a
        if isinstance(a, fx.Proxy):
            return a.node
        if kind is tuple:
            return tuple(self.create_arg(item) for item in a)
        if kind is list:
            return [self.create_arg(item) for item in a]
        if kind is dict and all(type(key) is str for key in a):
            return {key: self.create_arg(value) for key, value in a.items()}
        if isinstance(a, torch.Tensor):
            name = self._attribute_name(a)
            if name is not None:
                return self.create_node("get_attr", name, (), {})
        return super().create_arg(a)

    def create_node(self, *args: Any, **kwargs: Any) -> fx.Node:
        node = super().create_node(*args, **kwargs)
        # The user's source line, for records and error messages. torch.fx's own stack traces
        # are costly and, here, stop inside torch.fx; walking frames is cheap.
        node.meta["source"] = _user_frame()
        return node

    def call_module(self, m: nn.Module, forward: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            out = super().call_module(m, forward, args, kwargs)
        except Exception as e:
            if self.failed_module is None:  # the innermost module sees the error first
                self.failed_module = self.path_of_module(m)
                self.failure = e
            raise
        # The graph nodes holding the module's output, for the tables' output-shape column.
        try:
            path = self.path_of_module(m)
        except NameError:
            return out
        if path not in self.module_outputs:
            self.module_outputs[path] = [leaf.node for leaf in torch.utils._pytree.tree_leaves(out)
                                         if isinstance(leaf, fx.Proxy)]
        return out

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if module_qualified_name in self.fallbacks:
            return True
        if module_qualified_name in self.leaf_names or isinstance(m, self.leaf_types):
            return True
        if self.registry.lookup_module(type(m)) is not None:
            return True
        if self.registry.has_ruled_base(type(m)):
            return False  # its own forward set the base's rule aside: follow it
        return super().is_leaf_module(m, module_qualified_name)


@dataclass
class TracedModel:
    """The result of tracing: the graph, and the inputs each placeholder receives."""

    root: nn.Module
    graph: fx.Graph
    placeholder_values: dict[str, Any]
    constants: dict[str, Any] = field(default_factory=dict)
    #: Submodules to count through torch.export: qualified name -> why symbolic tracing failed.
    fallbacks: dict[str, str] = field(default_factory=dict)
    #: Module path -> the graph nodes of its output (first call).
    module_outputs: dict[str, list[fx.Node]] = field(default_factory=dict)


def _is_tensor_input(value: Any) -> bool:
    return bool(tensor_leaves(value))


class _VariadicInputsError(TraceError):
    """The method takes ``*args``/``**kwargs`` and some inputs go there."""


def _bind_inputs(
    model: nn.Module, method: str, inputs: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the method's parameters into traced tensor inputs and concrete (baked-in) values."""
    bound_method = getattr(model, method, None)
    if bound_method is None or not callable(bound_method):
        raise TraceError(f"{type(model).__name__} has no method {method!r} to count")
    signature = inspect.signature(bound_method)
    try:
        bound = signature.bind(*inputs, **kwargs)
    except TypeError as e:
        raise TraceError(
            f"the inputs do not match {type(model).__name__}.{method}{signature}: {e}; "
            "pass positional inputs as a tuple and keyword inputs with kwargs={...}"
        ) from None
    bound.apply_defaults()
    tensors: dict[str, Any] = {}
    concrete: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            if value:
                raise _VariadicInputsError(
                    f"{type(model).__name__}.{method} takes *args/**kwargs, which torch.fx cannot trace: "
                    "count with trace='auto' or trace='run'"
                )
            continue
        (tensors if _is_tensor_input(value) else concrete)[name] = value
    return tensors, concrete


@contextlib.contextmanager
def hooks_set_aside(model: nn.Module, modules: Sequence[nn.Module] | None = None) -> Iterator[None]:
    """Empty every module's hook dicts while tracing, then restore the very same dict objects.

    Restoring the same objects keeps the users' ``RemovableHandle``s valid. ``modules`` is
    ``list(model.modules())`` when the caller has it already.
    """
    saved: list[tuple[nn.Module, str, Any]] = []
    try:
        for module in modules if modules is not None else model.modules():
            attributes = vars(module)
            for key in _HOOK_ATTRIBUTES:
                value = attributes.get(key)
                if value:
                    saved.append((module, key, value))
                    setattr_plain(module, key, OrderedDict())
        yield
    finally:
        for module, key, value in saved:
            setattr_plain(module, key, value)


def _attribute_snapshot(model: nn.Module) -> tuple[set[str], set[str], set[str], set[str]]:
    return (set(vars(model)), set(model._parameters), set(model._buffers), set(model._modules))


#: Submodules that may fall back to torch.export in one count, before giving up on the model.
MAX_FALLBACKS = 64


def trace(
    model: nn.Module,
    inputs: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    registry: RuleRegistry,
    method: str = "forward",
    leaf_modules: Sequence[type | str] = (),
    allow_fallback: bool = False,
) -> TracedModel | None:
    """Trace ``model.<method>`` symbolically.

    Without ``allow_fallback``, a failure raises :class:`TraceError` with a hint. With it, the
    innermost submodule that fails becomes a leaf to be counted through ``torch.export`` and the
    model is traced again; ``None`` means the top level itself cannot be traced.
    """
    try:
        tensors, concrete = _bind_inputs(model, method, inputs, kwargs)
    except _VariadicInputsError:
        if allow_fallback:
            return None  # trace="auto" runs the model instead
        raise
    tracer = FlopTracer(registry, leaf_modules, method)
    if method == "forward" and tracer.is_leaf_module(model, ""):
        return _root_as_leaf(model, inputs, kwargs)
    while True:
        before = _attribute_snapshot(model)
        modules = list(model.modules())
        states = [(module, dict(vars(module))) for module in modules]
        tracer.failed_module, tracer.failure = None, None
        tracer.module_outputs = {}
        try:
            with hooks_set_aside(model, modules):
                graph = tracer.trace(model, concrete_args=concrete or None)
            break
        except Exception as e:
            failed = tracer.failed_module
            if not allow_fallback:
                raise TraceError(
                    f"torch.fx could not trace {type(model).__name__}.{method}"
                    f"{f' (in module {failed!r})' if failed else ''}: {type(e).__name__}: {e}\n"
                    "hint: count with trace='auto' or trace='export', or list the module that fails in "
                    "leaf_modules=[...] and register a rule for it"
                ) from e
            if not failed or failed in tracer.fallbacks or len(tracer.fallbacks) >= MAX_FALLBACKS:
                return None
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            tracer.fallbacks[failed] = (f"torch.fx could not follow it ({type(e).__name__}: {first}): counted by "
                                        "running it on meta tensors, or through torch.export where that fails")
        finally:
            constants = _remove_new_attributes(model, before)
            _restore_attributes(states)
    # torch.fx keeps a placeholder for each concrete argument and asserts its value: feed it back.
    return TracedModel(root=model, graph=graph, placeholder_values={**concrete, **tensors}, constants=constants,
                       module_outputs=dict(tracer.module_outputs),
                       fallbacks=dict(tracer.fallbacks))


def _root_as_leaf(model: nn.Module, inputs: tuple[Any, ...], kwargs: Mapping[str, Any]) -> TracedModel:
    """A one-node graph calling the root: the model itself is a leaf (it has a rule, or the user
    listed it, or it is a ``torch.nn`` module). The node's target ``""`` names the root."""
    graph = fx.Graph()
    values: dict[str, Any] = {}

    def as_arg(name: str, value: Any) -> Any:
        if not _is_tensor_input(value):
            return value
        values[name] = value
        return graph.placeholder(name)

    args = tuple(as_arg(f"input_{i}", value) for i, value in enumerate(inputs))
    kw = {key: as_arg(key, value) for key, value in kwargs.items()}
    node = graph.create_node("call_module", "", args, kw, name=type(model).__name__.lower())
    node.meta["nn_module_stack"] = {"": ("", type(model))}
    graph.output(node)
    return TracedModel(root=model, graph=graph, placeholder_values=values)


def _restore_attributes(states: list[tuple[nn.Module, dict[str, Any]]]) -> None:
    """Undo what the model's own Python did to its modules while torch.fx ran it (``self.calls
    += 1``, ``self.cache = x``): every attribute back to the object it was, new ones removed."""
    for module, saved in states:
        current = vars(module)
        if current.keys() == saved.keys() and all(map(operator.is_, current.values(), saved.values())):
            continue  # untouched, the usual case: checked in C
        for key in [k for k in current if k not in saved]:
            del current[key]
        for key, value in saved.items():
            if current.get(key, _ABSENT) is not value:
                current[key] = value


_ABSENT = object()


def _remove_new_attributes(model: nn.Module, before: tuple[set[str], ...]) -> dict[str, Any]:
    """Take back the attributes (``_tensor_constant0``, ...) that torch.fx set on the root."""
    names, params, buffers, modules = before
    constants: dict[str, Any] = {}
    for key in set(model._parameters) - params:
        constants[key] = model._parameters.pop(key)
    for key in set(model._buffers) - buffers:
        constants[key] = model._buffers.pop(key)
    for key in set(model._modules) - modules:
        constants[key] = model._modules.pop(key)
    for key in set(vars(model)) - names:
        constants[key] = vars(model).pop(key)
    return constants

"""The run-on-meta front end: run a meta clone of the model once and count every torch-level call.

torch.fx follows a model only where its Python does not look at values (``if x.shape[1] > 4``,
``for layer in cache``, non-tensor outputs such as Hugging Face caches). For everything else this
front end runs the model itself, on a *meta clone* (:func:`fxflops.shapes.meta_clone`: meta
parameters and buffers, no hooks, never the user's object), under a ``TorchFunctionMode``:

* every torch-level call (``F.linear``, ``torch.matmul``, ``Tensor.softmax``, ``x + y``) reaches
  :meth:`CallRecorder.__torch_function__` once, at the level the user wrote it, exactly the calls
  a torch.fx graph would hold. It is counted with the same rules, through the same
  :func:`fxflops.node_count.count_node` as the torch.fx path;
* every module call goes through a wrapper set on the clone's ``forward``: it keeps the module
  stack (the site of each record), counts modules that have a rule as one leaf record (as torch.fx
  keeps them whole), and reuses the records of repeated blocks (below);
* factory calls (``torch.arange``, ``torch.zeros``) are sent to the meta device, and tensors that
  a model keeps outside its parameters and buffers are replaced by meta tensors when an op meets
  them, so no real memory is allocated and no arithmetic is done.

Repeated blocks. Most models are N copies of one block. A module whose *structure* repeats in the
model (class, parameter and buffer shapes, dtypes and ``requires_grad``, plain attributes, the same
for every submodule) and that is called with the same *arguments* (tensor shapes, strides, dtypes,
``requires_grad``; plain values by value; other objects by identity) as an earlier twin costs what
that twin cost: its records are copied under the new module path, and fresh meta outputs shaped
like the twin's are returned, without running it. Attributes that only number a layer
(``layer_idx`` and the like, :data:`INDEX_ATTRIBUTES`) are left out of the structure: a forward
whose *cost* depends on its layer number must be counted with ``reuse_blocks=False``. Side effects
of a reused block (a cache update) are skipped; the counted computation is the same.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from fxflops import known_values, routing
from fxflops.context import NodeContext, _shapes
from fxflops.convention import Convention
from fxflops.errors import FxFlopsError, TraceError, site_message
from fxflops.node_count import ZERO_COUNT, NodeCount, count_node
from fxflops.registry import RuleEntry, RuleRegistry, describe_target
from fxflops.report import NodeRecord
from fxflops.shapes import (
    FORWARD_HOOK_ATTRIBUTES,
    as_autograd_would,
    meta_clone,
    meta_like,
    needs_grad,
    setattr_plain,
    tensor_leaves,
    to_meta,
)
from fxflops.traffic import traffic

#: Module attributes that number a layer and do not change what it computes.
INDEX_ATTRIBUTES = frozenset({"layer_idx", "layer_id", "layer_index", "layer_number", "layer_num", "block_idx",
                              "block_id", "idx", "index", "depth_idx", "stage_idx"})

_META = torch.device("meta")
_FORMAT = torch.Tensor.__format__
_PLAIN = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.Size, torch.memory_format,
          torch.layout, slice, type(Ellipsis))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_FXFLOPS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_internal_files: dict[str, bool] = {}


def _is_internal(filename: str) -> bool:
    """Frames that are not the user's code: torch, fxflops, decorators, ``<frozen ...>``."""
    internal = _internal_files.get(filename)
    if internal is None:
        internal = _internal_files[filename] = (
            filename.startswith((_TORCH_DIR, _FXFLOPS_DIR, "<")) or filename.endswith("contextlib.py")
            or f"transformers{os.sep}utils{os.sep}" in filename)
    return internal


def _user_frame(frame: types.FrameType | None) -> str | None:
    """``file:line`` of the innermost frame outside torch and fxflops, starting at ``frame``."""
    while frame is not None:
        if not _is_internal(frame.f_code.co_filename):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def _device_constructors() -> frozenset[Any]:
    from torch.utils._device import _device_constructors as constructors

    return frozenset(constructors())


class RecordedNode:
    """What a rule sees as ``ctx.node`` for a call recorded by running the model.

    It has the attributes rules and error messages read from a ``torch.fx.Node``: ``op``
    (``call_function``, ``call_method`` or ``call_module``), ``target`` (the function, the method
    name, or the module path) and ``name``.
    """

    __slots__ = ("meta", "name", "op", "target")

    def __init__(self, op: str, target: Any, name: str) -> None:
        self.op = op
        self.target = target
        self.name = name
        self.meta: dict[str, Any] = {}

    @property
    def all_input_nodes(self) -> list[Any]:
        return []

    def format_node(self) -> str:
        target = self.target if isinstance(self.target, str) else describe_target(self.target)
        return f"%{self.name} : {self.op}[target={target}] (recorded by running the model on meta tensors)"


@dataclass
class _Block:
    """The records of one run of a repeated block, to reuse for its twins."""

    path: str
    records: list[NodeRecord]
    called: list[tuple[str, bool]]  # (path relative to the block, leaf?) of the modules that ran
    output_spec: Any
    output_leaves: list[Any]
    uncounted_parameters: list[int] = field(default_factory=list)


@dataclass
class Recording:
    """What :func:`record` returns: the records, the output, and what the run used."""

    records: list[NodeRecord]
    output: Any
    #: id -> parameter (the user's) of every parameter the counted computation used.
    used_parameters: dict[int, torch.Tensor]
    #: Block calls whose records were reused instead of running them.
    reused_blocks: int = 0
    #: Module path -> shapes of its output (first call), for the tables.
    module_outputs: dict[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict)
    #: What decided the shapes that depend on a router's choice (``FlopReport.routing``).
    routing: str | None = None


class CallRecorder(TorchFunctionMode):
    """Counts every torch-level call made while the model runs on meta tensors (module docstring)."""

    def __init__(self, registry: RuleRegistry, convention: Convention, *, causal: str = "dense",
                 backward: bool = False, leaf_types: tuple[type, ...] = (), leaf_names: frozenset[str] = frozenset(),
                 reuse_blocks: bool = True, originals: Mapping[int, nn.Module] | None = None,
                 parameters: Mapping[int, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.registry = registry
        self.convention = convention
        self.causal = causal
        self.backward = backward
        self.leaf_types = leaf_types
        self.leaf_names = leaf_names
        self.reuse_blocks = reuse_blocks
        #: id(clone module) -> the user's module (rules read the user's module, as on the fx path).
        self.originals = dict(originals or {})
        #: id(meta parameter) -> the user's parameter.
        self.parameters = dict(parameters or {})
        self.records: list[NodeRecord] = []
        self.used_parameters: dict[int, torch.Tensor] = {}
        self.reused_blocks = 0
        self.module_outputs: dict[str, tuple[tuple[int, ...], ...]] = {}
        self._stack: list[tuple[str, str]] = [("", "")]
        self._called: list[tuple[str, bool]] = []
        self._by_path: dict[str, nn.Module] = {}
        self._suspended = 0
        #: Inside a leaf run for its values (counting with data): calls compute known values only.
        self._values_only = 0
        self._names: dict[str, int] = {}
        self._calls: dict[Any, tuple[str, Any, RuleEntry | None, str]] = {}
        self._constructors = _device_constructors()
        self._fingerprints: dict[int, int] = {}
        self._repeated: set[int] = set()
        self._blocks: dict[Any, _Block] = {}
        #: The innermost module whose forward raised, its type and the source line of the error.
        self.failure_site: tuple[str, str, str | None] | None = None
        #: Whether a shape was decided by an assumed routing choice (:mod:`fxflops.routing`).
        self.assumed_routing = False

    # -- torch-level calls ----------------------------------------------------------------------

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        factory = func in self._constructors
        if factory:
            kwargs["device"] = _META  # factories land on meta, whatever device the model asks for
        if self._suspended:
            if self._values_only:
                return _with_values(func, args, kwargs)
            return func(*args, **kwargs)
        op, target, entry, base = self._call_kind(func)
        if entry is not None and entry.output is not None:
            # The rule gives the output from shapes (an op whose meta kernel is narrower than the op).
            out = as_autograd_would(entry.output(NodeContext(
                node=RecordedNode(op, target, base), module=None,  # type: ignore[arg-type]
                args=args, kwargs=kwargs, output=None, convention=self.convention, causal=self.causal)),
                (args, kwargs))
            self._record_call(func, args, kwargs, out)
            return out
        leaves = tensor_leaves((args, kwargs)) if args or kwargs else []
        known = (factory or bool(leaves)) and known_values.all_known(leaves)
        if func is _FORMAT and known:
            # f"expert_{idx}" of a known index: meta tensors format as "tensor(..., device='meta')"
            return self._answer_off_meta(func, args, kwargs, leaves, known, TypeError("format"))
        try:
            out = func(*args, **kwargs)
        except (RuntimeError, NotImplementedError, ValueError, TypeError) as e:
            out = self._answer_off_meta(func, args, kwargs, leaves, known, e)
        else:
            if known:
                known_values.propagate(func, args, kwargs, out)
            elif routing.assume_uniform_choice(func, args, kwargs, out):
                pass  # a router's choice, assumed balanced until a shape asks about it
            elif leaves and (func in _IN_PLACE or getattr(func, "__name__", "").endswith("_")):
                known_values.forget(args[0] if args else None)  # its value changed in a way not known
        if type(out) in _PLAIN:
            return out  # sizes, dtypes, flags: no tensor work
        if not isinstance(out, torch.Tensor) and not tensor_leaves(out):
            return out
        self._record_call(func, args, kwargs, out)
        return out

    def _answer_off_meta(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                         leaves: list[torch.Tensor], known: bool, error: Exception) -> Any:
        """A call meta tensors refused: answered from known values (:mod:`fxflops.known_values`),
        or rerun with its known 0-d tensors as numbers (sizes read with ``int()``), or with the
        model's stray CPU tensors made meta; else the original error."""
        out = known_values.answer(func, args, kwargs) if known else known_values.index_shape(func, args, kwargs)
        if not known_values.is_missing(out):
            if known_values.any_assumed(leaves):
                self.assumed_routing = True
            return out
        for retry in _retries(leaves, args, kwargs):
            try:
                return func(*retry[0], **retry[1])
            except Exception:
                continue
        raise error

    def _call_kind(self, func: Any) -> tuple[str, Any, RuleEntry | None, str]:
        """(op, target, rule entry, base name) of a torch-level callable, computed once per callable."""
        try:
            kind = self._calls.get(func)
        except TypeError:  # an unhashable callable: looked up every time
            kind = None
        if kind is None:
            name = getattr(func, "__name__", None) or type(func).__name__
            qualname = getattr(func, "__qualname__", "") or ""
            owner = getattr(func, "__self__", None)
            if name == "__get__" and isinstance(getattr(owner, "__objclass__", None), type) and \
                    issubclass(torch.Tensor, owner.__objclass__):
                # A Tensor property read (x.T, x.mT, x.real): torch reports its descriptor's __get__
                name = owner.__name__
                qualname = f"Tensor.{name}"
            if qualname.startswith(("Tensor.", "TensorBase.", "_TensorBase.")):
                kind = ("call_method", name, self.registry.lookup_method(name), name.strip("_") or name)
            else:
                kind = ("call_function", func, self.registry.lookup_function(func), name.strip("_") or name)
            try:
                self._calls[func] = kind
            except TypeError:
                pass
        return kind

    def _fresh_name(self, base: str) -> str:
        n = self._names.get(base, 0)
        self._names[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def _record_call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        op, target, entry, base = self._call_kind(func)
        for value in args:
            if isinstance(value, nn.Parameter):
                self._use_parameter(value)
        module_path, module_type = self._stack[-1]
        node = RecordedNode(op, target, self._fresh_name(base))
        source = _user_frame(sys._getframe(2))
        input_shapes = tuple(_shapes((args, kwargs)))
        if not input_shapes and entry is None:
            entry = _PYTHON_VALUE_RULE  # a factory or Python value with no rule of its own
        cost = self._count(entry, node, None, args, kwargs, out, module_path, module_type, source)
        read, written, dtype = self._traffic(target, (args, kwargs), out)
        self.records.append(NodeRecord(
            name=node.name, op=op, target=f"Tensor.{target}" if op == "call_method" else describe_target(target),
            module=module_path, module_type=module_type, input_shapes=input_shapes,
            output_shapes=tuple(_shapes(out)), flops=cost.flops, macs=cost.macs,
            rule=entry.name if entry is not None else None, category=entry.category if entry is not None else None,
            source=source, backward_flops=cost.backward, bytes_read=read, bytes_written=written, dtype=dtype))

    def _count(self, entry: RuleEntry | None, node: RecordedNode, module: nn.Module | None, args: tuple[Any, ...],
               kwargs: dict[str, Any], out: Any, module_path: str, module_type: str, source: str | None) -> NodeCount:
        if entry is None or not self.convention.counts(entry.category):
            return ZERO_COUNT
        ctx = NodeContext(node=node, module=module, args=args, kwargs=kwargs, output=out,  # type: ignore[arg-type]
                          convention=self.convention, causal=self.causal)

        def where(problem: str, hint: str) -> str:
            return site_message(problem, node.format_node(), module_path, module_type, source, hint)

        # A rule's own tensor work (reading a parametrized ``weight``, say) is not the model's.
        self._suspended += 1
        try:
            return count_node(entry, ctx, backward=self.backward, where=where)
        finally:
            self._suspended -= 1

    def _traffic(self, target: Any, args: Any, out: Any, module: nn.Module | None = None) -> tuple[Any, Any, Any]:
        """Bytes moved (:func:`fxflops.traffic.traffic`), read with recording suspended: reading a
        tensor's ``_base`` or strides is not the model's work."""
        self._suspended += 1
        try:
            return traffic(target, args, out, module)
        finally:
            self._suspended -= 1

    def _use_parameter(self, param: torch.Tensor) -> None:
        original = self.parameters.get(id(param), param)
        self.used_parameters[id(original)] = original

    # -- module calls ---------------------------------------------------------------------------

    def instrument(self, clone: nn.Module, prefix: str = "") -> None:
        """Wrap the ``forward`` of every module of ``clone`` (a meta clone: never the user's)."""
        for path, module in clone.named_modules(remove_duplicate=False, prefix=prefix):
            self._by_path.setdefault(path, module)
            if "forward" in vars(module) and "_fxflops_forward" in vars(module):
                continue  # shared module, already wrapped
            forward = vars(module).get("forward")
            original = self.originals.get(id(module))
            if isinstance(forward, types.MethodType) and forward.__self__ is original:
                forward = types.MethodType(forward.__func__, module)  # copy.copy kept the user's binding
            elif forward is None:
                forward = module.forward
            setattr_plain(module, "_fxflops_forward", forward)
            setattr_plain(module, "forward", self._wrapper(module, path, forward))
        if self.reuse_blocks:
            counts: dict[int, int] = {}
            for module in clone.modules():
                fingerprint = self._fingerprint(module)
                counts[fingerprint] = counts.get(fingerprint, 0) + 1
            self._repeated = {f for f, n in counts.items() if n > 1}

    def _wrapper(self, module: nn.Module, path: str, forward: Callable[..., Any]) -> Callable[..., Any]:
        type_name = type(module).__name__

        @functools.wraps(forward)
        def counted_forward(*args: Any, **kwargs: Any) -> Any:
            if self._suspended:
                return forward(*args, **kwargs)
            return self._call_module(module, path, type_name, forward, args, kwargs)

        return counted_forward

    def _leaf_entry(self, module: nn.Module, path: str) -> tuple[bool, RuleEntry | None]:
        """Whether ``module`` is counted whole, and its rule."""
        entry = self.registry.lookup_module(type(module))
        user_leaf = path in self.leaf_names or isinstance(module, self.leaf_types)
        return entry is not None or user_leaf, entry

    def _call_module(self, module: nn.Module, path: str, type_name: str, forward: Callable[..., Any],
                     args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        is_leaf, entry = self._leaf_entry(module, path)
        if is_leaf:
            return self._call_leaf(module, path, type_name, forward, entry, args, kwargs)
        key = None
        if self.reuse_blocks and self._fingerprints.get(id(module)) in self._repeated:
            key = _call_key(self._fingerprints[id(module)], args, kwargs)
            block = self._blocks.get(key) if key is not None else None
            if block is not None and block.path != path:
                return self._replay(block, path)
        start, called_start = len(self.records), len(self._called)
        self._stack.append((path, type_name))
        self._called.append((path, False))
        try:
            with self._failing_in(path, type_name):
                out = forward(*args, **kwargs)
        finally:
            self._stack.pop()
        self._use_module(module)
        self.module_outputs.setdefault(path, tuple(_shapes(out)))
        if key is not None and key not in self._blocks:
            leaves, spec = tree_flatten(out)
            self._blocks[key] = _Block(
                path=path, records=self.records[start:],
                called=[(_relative(p, path), leaf) for p, leaf in self._called[called_start:]],
                output_spec=spec, output_leaves=[_template(leaf) for leaf in leaves])
        return out

    def _call_leaf(self, module: nn.Module, path: str, type_name: str, forward: Callable[..., Any],
                   entry: RuleEntry | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from fxflops.counter import (
            CONTIGUOUS_OUTPUT_MODULES,
            SAME_SHAPE_MODULES,
            _fast_output,
            _same_shape,
        )

        self._called.append((path, True))
        self._use_module(module, recursive=True)
        source = _user_frame(sys._getframe(3))
        original = self.originals.get(id(module), module)
        node = RecordedNode("call_module", path, path.replace(".", "_") or type_name.lower())
        if parametrize.is_parametrized(module):
            self._record_parametrizations(module, path, type_name)
        # The leaf's own calls are not recorded: its rule counts it whole.
        self._suspended += 1
        try:
            with self._failing_in(path, type_name):
                if entry is not None and entry.output is not None:
                    out = as_autograd_would(entry.output(NodeContext(
                        node=node, module=original, args=args,  # type: ignore[arg-type]
                        kwargs=kwargs, output=None, convention=self.convention, causal=self.causal)),
                        (args, kwargs), module)
                elif known_values.limit() == float("inf") and known_values.all_known(tensor_leaves((args, kwargs))):
                    # Counting with data: the leaf runs for its values, its calls still unrecorded.
                    self._values_only += 1
                    try:
                        out = forward(*args, **kwargs)
                    finally:
                        self._values_only -= 1
                elif isinstance(module, SAME_SHAPE_MODULES) and len(args) == 1 and not kwargs \
                        and isinstance(args[0], torch.Tensor):
                    out = _same_shape(args[0], needs_grad(args, module),
                                      isinstance(module, CONTIGUOUS_OUTPUT_MODULES))
                else:
                    out = _fast_output(module, args, kwargs)
                    if out is None:
                        # Its calls are not recorded, but values still flow through it (a router
                        # subclassing nn.Linear chooses experts inside its forward).
                        self._values_only += 1
                        try:
                            out = forward(*args, **kwargs)
                        finally:
                            self._values_only -= 1
        finally:
            self._suspended -= 1
        cost = self._count(entry, node, original, args, kwargs, out, path, type_name, source)
        output_shapes = tuple(_shapes(out))
        self.module_outputs.setdefault(path, output_shapes)
        read, written, dtype = self._traffic(type(module), (args, kwargs), out, module)
        self.records.append(NodeRecord(
            name=node.name, op="call_module", target=describe_target(type(module)), module=path,
            module_type=type_name, input_shapes=tuple(_shapes((args, kwargs))), output_shapes=output_shapes,
            flops=cost.flops, macs=cost.macs, rule=entry.name if entry is not None else None,
            category=entry.category if entry is not None else None, source=source, backward_flops=cost.backward,
            bytes_read=read, bytes_written=written, dtype=dtype))
        return out

    def _record_parametrizations(self, module: nn.Module, path: str, type_name: str) -> None:
        """Record the work of a leaf's parametrizations (``weight_norm``'s ``g * v / ||v||``, ...):
        its forward computes each parametrized tensor once, and that is the model's work, not the
        leaf rule's (which counts the product with the weight)."""
        self._stack.append((path, type_name))
        try:
            with self._failing_in(path, type_name):
                for name in module.parametrizations:  # type: ignore[union-attr]
                    getattr(module, name)
        finally:
            self._stack.pop()

    @contextlib.contextmanager
    def _failing_in(self, path: str, type_name: str) -> Iterator[None]:
        """Note the innermost module whose forward raises (the error names it), and re-raise."""
        try:
            yield
        except FxFlopsError:
            raise
        except Exception as e:
            if self.failure_site is None:
                self.failure_site = (path, type_name, _traceback_source(e))
            raise

    def _use_module(self, module: nn.Module, recursive: bool = False) -> None:
        for param in (module.parameters() if recursive else module._parameters.values()):
            if param is not None:
                self._use_parameter(param)

    def _replay(self, block: _Block, path: str) -> Any:
        """A twin of ``block`` called at ``path``: its records under the new path, fresh outputs."""
        self.reused_blocks += 1
        old = block.path
        for record in block.records:
            module = path + record.module[len(old):]
            name = self._fresh_name(record.name.rsplit("_", 1)[0] if _numbered(record.name) else record.name) \
                if record.op != "call_module" else module.replace(".", "_")
            self.records.append(replace(record, module=module, name=name))
        for relative, leaf in block.called:
            self._called.append((path + relative, leaf))
            module = self._by_path.get(path + relative)
            if module is not None:
                self._use_module(module, recursive=leaf)
        for inner, shapes in list(self.module_outputs.items()):
            if inner == old or inner.startswith(old + "."):
                self.module_outputs.setdefault(path + inner[len(old):], shapes)
        self._suspended += 1
        try:
            return tree_unflatten([_fresh(leaf) for leaf in block.output_leaves], block.output_spec)
        finally:
            self._suspended -= 1

    def _fingerprint(self, module: nn.Module) -> int:
        """A small integer naming the structure of ``module`` (module docstring), computed once."""
        known = self._fingerprints.get(id(module))
        if known is not None:
            return known
        tensors = tuple(
            (name, tuple(t.shape), t.dtype, t.requires_grad)
            for name, t in (*module._parameters.items(), *module._buffers.items()) if t is not None)
        attributes = tuple(sorted(
            (key, _attribute_key(value)) for key, value in vars(module).items()
            if not key.startswith("_") and key not in INDEX_ATTRIBUTES and key != "forward"))
        children = tuple((name, self._fingerprint(child)) for name, child in module._modules.items()
                         if child is not None)
        structure = (type(module), tensors, attributes, children)
        fingerprint = _intern(structure)
        self._fingerprints[id(module)] = fingerprint
        return fingerprint


def _with_values(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``func`` on meta tensors inside a leaf (not recorded), with the values of its result
    computed when its inputs' are known, and router choices assumed (:mod:`fxflops.routing`)
    when not."""
    leaves = tensor_leaves((args, kwargs))
    known = bool(leaves) and known_values.all_known(leaves)
    try:
        out = func(*args, **kwargs)
    except (RuntimeError, NotImplementedError, ValueError, TypeError):
        if not known:
            raise
        out = known_values.answer(func, args, kwargs)
        if known_values.is_missing(out):
            raise
        return out
    if known:
        known_values.propagate(func, args, kwargs, out)
    else:
        routing.assume_uniform_choice(func, args, kwargs, out)
    return out


_interned: dict[Any, int] = {}
_intern_lock = threading.Lock()


def _intern(structure: Any) -> int:
    with _intern_lock:
        found = _interned.get(structure)
        if found is None:
            found = _interned[structure] = len(_interned)
        return found


def _attribute_key(value: Any) -> Any:
    """How a module attribute enters the structure: plain values by value, others by kind."""
    if type(value) in _PLAIN:
        return value
    if type(value) in (tuple, list) and all(type(v) in _PLAIN for v in value):
        return tuple(value)
    if callable(value) and hasattr(value, "__qualname__"):
        return (getattr(value, "__module__", ""), value.__qualname__)
    return type(value).__qualname__


def _call_key(fingerprint: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The arguments of a block call, as a hashable key (module docstring), or ``None``."""
    try:
        key = (fingerprint, torch.is_grad_enabled(), _argument_key(args), _argument_key(kwargs))
        hash(key)
    except TypeError:
        return None
    return key


def _argument_key(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("T", tuple(value.shape), value.stride() if value.layout == torch.strided else None, value.dtype,
                value.requires_grad, value.device.type)
    if type(value) in _PLAIN:
        return value
    if type(value) in (tuple, list):
        return (type(value).__name__, *(_argument_key(v) for v in value))
    if isinstance(value, dict):
        return ("D", *((k, _argument_key(v)) for k, v in value.items()))
    return ("O", type(value).__qualname__, id(value))


def _template(leaf: Any) -> Any:
    if isinstance(leaf, torch.Tensor) and leaf.layout == torch.strided and not leaf.is_nested:
        return ("T", tuple(leaf.shape), leaf.stride(), leaf.dtype, leaf.requires_grad)
    return ("V", leaf)


def _fresh(template: Any) -> Any:
    if template[0] == "T":
        _, shape, stride, dtype, requires_grad = template
        out = torch.empty_strided(shape, stride, dtype=dtype, device="meta")
        return out.requires_grad_(True) if requires_grad else out
    return template[1]


def _relative(path: str, block: str) -> str:
    return path[len(block):]


def _numbered(name: str) -> bool:
    base, _, suffix = name.rpartition("_")
    return bool(base) and suffix.isdigit()


def _retries(leaves: list[torch.Tensor], args: tuple[Any, ...], kwargs: dict[str, Any]
             ) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The arguments to retry a refused call with, each built only if the one before failed: known
    0-d sizes as numbers, then stray CPU tensors made meta, then both at once."""
    numbers = known_values.known_scalars_as_numbers(args, kwargs)
    if numbers is not None:
        yield numbers
    off_meta = _off_meta_tensors(leaves, args, kwargs)
    if off_meta is not None:
        yield off_meta
        if numbers is not None:
            both = _off_meta_tensors(tensor_leaves(numbers), *numbers)
            if both is not None:
                yield both


def _off_meta_tensors(leaves: list[torch.Tensor], args: tuple[Any, ...], kwargs: dict[str, Any]
                      ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """``args``/``kwargs`` with every non-meta tensor made meta (its value kept as known), or
    ``None`` if all were meta.

    A model may keep tensors outside its parameters and buffers (``self.scale = torch.tensor(2.)``);
    meta ops refuse to mix them with meta tensors.
    """
    if all(t.device.type == "meta" for t in leaves):
        return None

    def meta(value: Any) -> Any:
        if not isinstance(value, torch.Tensor) or value.device.type == "meta":
            return value
        stand_in = meta_like(value)
        known_values.attach(stand_in, value.detach().to("cpu", copy=True))
        return stand_in

    return tree_map(meta, args), tree_map(meta, kwargs)


#: In-place calls whose names do not end in an underscore.
_IN_PLACE = frozenset({torch.Tensor.__setitem__, torch.Tensor.__iadd__, torch.Tensor.__isub__,
                       torch.Tensor.__imul__, torch.Tensor.__itruediv__})


def _traceback_source(error: BaseException) -> str | None:
    """``file:line`` of the innermost user frame in ``error``'s traceback."""
    tb = error.__traceback__
    found = None
    while tb is not None:
        if not _is_internal(tb.tb_frame.f_code.co_filename):
            found = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def _zero_python_values(ctx: NodeContext) -> int:
    """0 FLOPs: a factory or Python-level value, not tensor work on inputs."""
    return 0


_PYTHON_VALUE_RULE = RuleEntry(rule=_zero_python_values, category="zero", target=None)


def _recorder(registry: RuleRegistry, convention: Convention, causal: str, backward: bool,
              leaf_modules: Sequence[type | str], reuse_blocks: bool, **maps: Any) -> CallRecorder:
    return CallRecorder(
        registry, convention, causal=causal, backward=backward,
        leaf_types=tuple(m for m in leaf_modules if isinstance(m, type)),
        leaf_names=frozenset(m for m in leaf_modules if isinstance(m, str)),
        reuse_blocks=reuse_blocks, **maps)


def record(
    module: nn.Module,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    registry: RuleRegistry,
    convention: Convention,
    method: str = "forward",
    causal: str = "dense",
    backward: bool = False,
    leaf_modules: Sequence[type | str] = (),
    reuse_blocks: bool = True,
    prefix: str = "",
    meta_cache: dict[int, torch.Tensor] | None = None,
    with_data: bool = False,
) -> Recording:
    """Run ``module.<method>(*args, **kwargs)`` on a meta clone and count every call it makes.

    ``prefix`` is the module path of ``module`` in the counted model (a submodule that torch.fx
    could not follow); record paths start with it. ``with_data`` runs the model for real beside
    the meta clone (``routing="data"``, :mod:`fxflops.routing`): parameters, buffers and inputs keep
    their values whatever their size, so every value-dependent shape is the real one.
    """
    if with_data:
        with known_values.unlimited():
            return record(module, args, kwargs, registry=registry, convention=convention, method=method,
                          causal=causal, backward=backward, leaf_modules=leaf_modules, reuse_blocks=False,
                          prefix=prefix, meta_cache=meta_cache)
    cache = meta_cache if meta_cache is not None else {}
    clone = meta_clone(module, cache, keep_forward_hooks=True)
    originals = {id(c): o for (_, c), (_, o) in zip(clone.named_modules(remove_duplicate=False),
                                                    module.named_modules(remove_duplicate=False), strict=True)}
    parameters = {id(cache[id(p)]): p for p in module.parameters() if id(p) in cache}
    recorder = _recorder(registry, convention, causal, backward, leaf_modules, reuse_blocks,
                         originals=originals, parameters=parameters)
    recorder.instrument(clone, prefix)
    meta_args = to_meta(tuple(args), cache)
    meta_kwargs = to_meta(dict(kwargs), cache)
    _keep_known_values((args, kwargs, dict(module.named_buffers())), cache)
    if known_values.limit() == float("inf"):
        _keep_parameter_values(module, cache)
    target = getattr(clone, method, None)
    if target is None or not callable(target):
        raise TraceError(f"{type(module).__name__} has no method {method!r} to count")
    if method == "forward" and any(vars(clone).get(key) for key in FORWARD_HOOK_ATTRIBUTES):
        target = clone  # through __call__: the root's own forward hooks run too
    # Calls made outside any submodule's forward (the root's own code) belong to the root.
    site = (prefix, type(module).__name__) if prefix else ("", "")
    output = _run(recorder, site, target, meta_args, meta_kwargs, backward, f"{type(module).__name__}.{method}")
    decided = "data" if known_values.limit() == float("inf") else "uniform" if recorder.assumed_routing else None
    return Recording(records=recorder.records, output=output, used_parameters=recorder.used_parameters,
                     reused_blocks=recorder.reused_blocks, module_outputs=recorder.module_outputs,
                     routing=decided)


def record_function(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    site: tuple[str, str],
    registry: RuleRegistry,
    convention: Convention,
    causal: str = "dense",
    backward: bool = False,
) -> Recording:
    """Run a plain function on meta tensors (a function torch.fx kept whole with ``torch.fx.wrap``)
    and count every call it makes, as made in the module ``site`` = (path, type name)."""
    recorder = _recorder(registry, convention, causal, backward, (), False)
    name = getattr(function, "__qualname__", None) or type(function).__name__
    output = _run(recorder, site, function, to_meta(tuple(args)), to_meta(dict(kwargs)), backward, name)
    return Recording(records=recorder.records, output=output, used_parameters=recorder.used_parameters)


def _run(recorder: CallRecorder, site: tuple[str, str], target: Callable[..., Any], args: tuple[Any, ...],
         kwargs: dict[str, Any], backward: bool, description: str) -> Any:
    recorder._stack[0] = site
    try:
        # Known values of random factories (torch.randn) draw from the CPU generator: the user's
        # random stream is left where it was, and each run (meta, then with data) starts from it.
        with torch.random.fork_rng(devices=[]), torch.set_grad_enabled(backward), recorder:
            return target(*args, **kwargs)
    except FxFlopsError:
        raise
    except Exception as e:
        path, kind, source = recorder.failure_site or (*site, _traceback_source(e))
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise TraceError(site_message(
            f"running {description} on meta tensors failed: {type(e).__name__}: {first}",
            "(the call that raised)", path, kind, source, _failure_hint(e))) from e


class MetaSession:
    """One meta clone of a module, called several times (a prefill, then decode steps): the
    outputs of one call (a KV cache) are inputs of the next, so the clone must persist.

    Repeated blocks are not reused here: a reused block skips its side effects, and a decode
    step reads the cache entries every layer wrote in the call before.
    """

    def __init__(self, module: nn.Module, *, registry: RuleRegistry, convention: Convention, causal: str = "dense",
                 backward: bool = False, leaf_modules: Sequence[type | str] = ()) -> None:
        self.module = module
        self.cache: dict[int, torch.Tensor] = {}
        self.clone = meta_clone(module, self.cache, keep_forward_hooks=True)
        originals = {id(c): o for (_, c), (_, o) in zip(self.clone.named_modules(remove_duplicate=False),
                                                        module.named_modules(remove_duplicate=False), strict=True)}
        parameters = {id(self.cache[id(p)]): p for p in module.parameters() if id(p) in self.cache}
        self.backward = backward
        self.recorder = _recorder(registry, convention, causal, backward, leaf_modules, False,
                                  originals=originals, parameters=parameters)
        self.recorder.instrument(self.clone)
        _keep_known_values(dict(module.named_buffers()), self.cache)

    def call(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], method: str = "forward") -> Recording:
        """Run ``clone.<method>(*args, **kwargs)``; tensors not yet on meta are made meta."""
        recorder = self.recorder
        recorder.records, recorder.used_parameters, recorder._names = [], {}, {}
        recorder._called, recorder.failure_site, recorder.assumed_routing = [], None, False
        meta_args = to_meta(tuple(args), self.cache)
        meta_kwargs = to_meta(dict(kwargs), self.cache)
        _keep_known_values((args, kwargs), self.cache)
        output = _run(recorder, ("", ""), getattr(self.clone, method), meta_args, meta_kwargs, self.backward,
                      f"{type(self.module).__name__}.{method}")
        return Recording(records=recorder.records, output=output, used_parameters=recorder.used_parameters,
                         routing="uniform" if recorder.assumed_routing else None)


def _keep_known_values(values: Any, cache: dict[int, torch.Tensor]) -> None:
    """Inputs and buffers that have data (not meta, small) keep it as the known value of their
    meta stand-ins (:mod:`fxflops.known_values`)."""
    for tensor in tensor_leaves(values):
        stand_in = cache.get(id(tensor))
        if stand_in is not None and tensor.device.type != "meta" and not isinstance(tensor, nn.Parameter) \
                and tensor.numel() <= known_values.limit():
            known_values.attach(stand_in, tensor.detach().to("cpu", copy=True))  # a copy: the model's stays


def _keep_parameter_values(module: nn.Module, cache: dict[int, torch.Tensor]) -> None:
    """Counting with data: parameters keep their real values, shared with the model (not copied;
    :func:`fxflops.known_values.propagate` copies one before an in-place call could write it)."""
    for param in module.parameters():
        stand_in = cache.get(id(param))
        if stand_in is not None and param.device.type != "meta":
            known_values.attach_shared(stand_in, param.detach().to("cpu"))


def _failure_hint(error: BaseException) -> str:
    text = str(error)
    if "meta" in text and any(word in text for word in ("item", "data-dependent", "Cannot copy out", "nonzero()")):
        return ("the model reads tensor values (.item(), data-dependent shapes), which meta tensors do not have: "
                "pass the model with real weights and real inputs (it is then counted on that data, "
                "routing='data'), or make that module a leaf with leaf_modules=[...] and give it a rule")
    return ("check that the inputs have the shapes and dtypes the model expects (token ids as long, "
            "within the vocabulary); if a module needs real data, make it a leaf with leaf_modules=[...] "
            "and give it a rule")

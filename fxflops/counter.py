"""The counting interpreter: runs a traced graph on meta tensors and counts every node with its rule.

:class:`FlopCounter` is a ``torch.fx.Interpreter`` that overrides only ``run_node`` (as
``torch.fx.passes.shape_prop.ShapeProp`` does): it computes the node's meta output, builds a
:class:`~fxflops.context.NodeContext`, asks the registry for the node's rule and records a
:class:`~fxflops.report.NodeRecord`. Follow a count from ``fxflops.count`` -> ``FlopCounter.run_node``
-> ``RuleRegistry.lookup_*`` -> the rule in ``fxflops.rules.<family>``.
"""

from __future__ import annotations

import dataclasses
import inspect
import operator
import types
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils import parametrize

from fxflops.context import NodeContext, _shapes
from fxflops.convention import Convention
from fxflops.errors import TraceError
from fxflops.masks import MaskProbe
from fxflops.node_count import ZERO_COUNT, count_node
from fxflops.registry import RuleEntry, RuleRegistry, describe_target
from fxflops.report import NodeRecord
from fxflops.shapes import as_autograd_would, meta_clone, needs_grad, tensor_leaves, to_meta
from fxflops.tracing import TracedModel
from fxflops.traffic import traffic_of

# Nodes that only move Python values around: never "uncounted", never shown in tables.
_STRUCTURAL_OPS = frozenset({"placeholder", "output", "get_attr"})


class FlopCounter(fx.Interpreter):
    """Run ``traced.graph`` on meta tensors, recording one :class:`NodeRecord` per node."""

    def __init__(self, traced: TracedModel, registry: RuleRegistry, convention: Convention,
                 causal: str = "dense", function_fallback: bool = False, backward: bool = False) -> None:
        super().__init__(traced.root, garbage_collect_values=True, graph=traced.graph)
        self.extra_traceback = False  # our own message names the node and the source line
        self.traced = traced
        self.registry = registry
        self.convention = convention
        self.causal = causal
        #: trace="auto": count Python functions kept whole by torch.fx.wrap through torch.export.
        self.function_fallback = function_fallback
        #: count(backward=True): also count each node's backward pass.
        self.backward = backward
        self.records: list[NodeRecord] = []
        self.fallbacks: dict[str, str] = {}
        #: "uniform" when a submodule's shapes rested on assumed router choices (fxflops.routing).
        self.routing: str | None = None
        self.used_parameters: dict[int, torch.nn.Parameter] = {}
        self._meta_cache: dict[int, torch.Tensor] = {}
        self._meta_modules: dict[int, nn.Module] = {}
        self._modules_seen: set[int] = set()
        #: causal="exact": evaluates attention masks passed as tensors (fxflops.masks).
        self._python_values: dict[fx.Node, Any] = {}
        #: Attention nodes counted dense because their mask could not be evaluated: name -> why.
        self.unreadable_masks: dict[str, str] = {}
        self.mask_probe = (MaskProbe(self._python_values, self._original_value, self.unreadable_masks)
                           if causal == "exact" else None)
        #: Module path -> shapes of its output (first call), for the tables.
        self.module_outputs: dict[str, tuple[tuple[int, ...], ...]] = {}
        self._output_nodes: set[fx.Node] = {n for nodes in traced.module_outputs.values() for n in nodes}
        self._node_shapes: dict[fx.Node, tuple[tuple[int, ...], ...]] = {}

    def count(self) -> list[NodeRecord]:
        """Run the graph; return the node records."""
        # Backward counts read requires_grad from the meta values, which autograd sets only with
        # grad enabled; forward counts need no autograd bookkeeping at all.
        with torch.set_grad_enabled(self.backward):
            self.run(*[None for n in self.graph.nodes if n.op == "placeholder"], enable_io_processing=False)
        for path, nodes in self.traced.module_outputs.items():
            if all(n in self._node_shapes for n in nodes):
                self.module_outputs.setdefault(path, tuple(s for n in nodes for s in self._node_shapes[n]))
        return self.records

    # -- node handlers ------------------------------------------------------------------------

    def run_node(self, n: fx.Node) -> Any:
        # No fx.Interpreter._set_current_node here: it only serves torch.fx's own meta
        # preservation, and its context manager costs as much as counting a simple node.
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        self._current = n
        if n.op == "call_module" and n.target in self.traced.fallbacks:
            return self._count_through_export(n, args, kwargs)
        if self.function_fallback and n.op == "call_function" and _is_wrapped_python_function(n.target) \
                and self.registry.lookup_function(n.target) is None:
            return self._count_function_through_export(n, args, kwargs)
        try:
            output = getattr(self, n.op)(n.target, args, kwargs)
        except Exception as e:
            raise TraceError(_node_error(n, f"shape propagation on meta tensors failed: {type(e).__name__}: {e}",
                                         "check that the inputs have the shapes and dtypes the model expects; "
                                         "if the op needs real data (.item(), data-dependent shapes), make its "
                                         "module a leaf with leaf_modules=[...] and give it a rule")) from e
        if n.op == "call_module" and parametrize.is_parametrized(module := self._module(n.target)):
            self._record_parametrizations(n, module)
        if n.op not in ("placeholder", "output"):
            self.records.append(self._record(n, args, kwargs, output))
        if n in self._output_nodes:
            self._node_shapes[n] = tuple(_shapes(output))
        elif n.op == "output":
            self.module_outputs.setdefault("", tuple(_shapes(args)))
        if self.mask_probe is not None and not tensor_leaves(output):
            self._python_values[n] = output  # dtypes and sizes a mask may be cast or cut with
        return output

    def placeholder(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        name = self._input_name(target)
        if name is not None:
            return to_meta(self.traced.placeholder_values[name], self._meta_cache)
        # A concrete argument that torch.fx kept as a placeholder: its default is its value.
        return args[0] if args else None

    def _input_name(self, target: Any) -> str | None:
        """The model input a placeholder stands for, or ``None`` for a baked-in default."""
        name = str(target).lstrip("*")
        values = self.traced.placeholder_values
        if name not in values:
            # torch.fx names a concrete argument's placeholder "<name>_1".
            base, _, suffix = name.rpartition("_")
            name = base if suffix.isdigit() and base in values else name
        return name if name in values else None

    def get_attr(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        value = self._attribute(target)
        if isinstance(value, nn.Parameter):
            self.used_parameters[id(value)] = value
        return to_meta(value, self._meta_cache)

    def _attribute(self, target: str) -> Any:
        """The user's own value of a get_attr target (constants torch.fx set aside included)."""
        return self.traced.constants[target] if target in self.traced.constants else self.fetch_attr(target)

    def _original_value(self, n: fx.Node) -> Any:
        """The user's value behind a get_attr or placeholder node, with its data (fxflops.masks)."""
        if n.op == "get_attr":
            return self._attribute(str(n.target))
        name = self._input_name(n.target)
        return self.traced.placeholder_values[name] if name is not None else (n.args[0] if n.args else None)

    def fetch_attr(self, target: str) -> Any:
        # "" names the root itself: a model that is a leaf is a one-node graph (tracing.py).
        return self.module if target == "" else super().fetch_attr(target)

    def call_function(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if target in SAME_SHAPE_FUNCTIONS and args and isinstance(args[0], torch.Tensor) \
                and kwargs.get("dtype") is None and kwargs.get("out") is None and len(args) < 4:
            return _same_shape(args[0], needs_grad(args, kwargs), target in CONTIGUOUS_OUTPUT_FUNCTIONS)
        if target in ELEMENTWISE_FUNCTIONS:
            fast = _elementwise_output(args, kwargs)
            if fast is not None:
                return fast
        if getattr(target, "__module__", None) in _PYTHON_OPERATOR_MODULES or (
                isinstance(target, types.BuiltinFunctionType) and tensor_leaves((args, kwargs))):
            return target(*args, **kwargs)  # Python operators, and C ops on meta tensors: meta out
        # Factory calls (torch.arange, torch.zeros) and Python functions that may call them land
        # on meta too. The device mode is entered only here: it slows every op it sees.
        with torch.device("meta"):
            return target(*args, **kwargs)

    def call_method(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if target in ELEMENTWISE_METHODS:
            fast = _elementwise_output(args, kwargs)
            if fast is not None:
                return fast
        self_obj, *rest = args
        return getattr(self_obj, target)(*rest, **kwargs)

    def call_module(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        module = self._module(target)
        self._use_parameters(module)
        entry = self.registry.lookup_module(type(module))
        if entry is not None and entry.output is not None:
            return as_autograd_would(entry.output(NodeContext(
                node=self._current, module=module, args=args, kwargs=kwargs, output=None, convention=self.convention,
                causal=self.causal)), (args, kwargs), module)
        if isinstance(module, SAME_SHAPE_MODULES) and len(args) == 1 and isinstance(args[0], torch.Tensor):
            return _same_shape(args[0], needs_grad(args, module), isinstance(module, CONTIGUOUS_OUTPUT_MODULES))
        fast = _fast_output(module, args, kwargs)
        if fast is not None:
            return fast
        clone = self._meta_modules.get(id(module))
        if clone is None:
            clone = self._meta_modules[id(module)] = meta_clone(module, self._meta_cache)
        # forward(), not __call__: the clone has no hooks, and global hooks must not fire either.
        with torch.device("meta"):
            return clone.forward(*args, **kwargs)

    def _record_parametrizations(self, n: fx.Node, module: nn.Module) -> None:
        """Count what a parametrized leaf computes before its own work: each parametrized tensor
        once (``weight_norm``'s ``g * v / ||v||``), on its meta clone, as the recorder does."""
        from fxflops.recorder import record_function

        clone = self._meta_modules.get(id(module))
        if clone is None:
            clone = self._meta_modules[id(module)] = meta_clone(module, self._meta_cache)
        names = list(clone.parametrizations)  # type: ignore[union-attr]
        recording = record_function(lambda: [getattr(clone, name) for name in names], (), {},
                                    site=_module_of(n), registry=self.registry, convention=self.convention,
                                    causal=self.causal, backward=self.backward)
        self.records.extend(replace(r, name=f"{n.name}.{r.name}", source=source_line(n)) for r in recording.records)

    def _module(self, target: str) -> nn.Module:
        """The submodule called ``target``: fx.Interpreter's table first (fetch_attr walks the path)."""
        module = self.submodules.get(target)
        return module if module is not None else self.fetch_attr(target)

    def _use_parameters(self, module: nn.Module) -> None:
        """Note the module's parameters as used (the report's parameter count), once per module."""
        if id(module) in self._modules_seen:
            return
        self._modules_seen.add(id(module))
        for param in module._parameters.values():
            if param is not None:
                self.used_parameters[id(param)] = param
        for child in module._modules.values():
            if child is not None:
                self._use_parameters(child)

    def _count_through_export(self, n: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Count a submodule symbolic tracing could not follow (trace="auto"): by running it on
        meta tensors (:mod:`fxflops.recorder`), or through torch.export where that fails."""
        from fxflops.export import count_exported, export_module, exported_outputs, module_tensors
        from fxflops.recorder import record

        module = self._module(n.target)
        self._use_parameters(module)
        if self.causal == "dense":
            try:
                recording = record(module, args, kwargs, registry=self.registry, convention=self.convention,
                                   backward=self.backward, prefix=str(n.target), meta_cache=self._meta_cache)
            except TraceError:
                pass  # torch.export on fake tensors may still capture it
            else:
                self.records.extend(recording.records)
                self.routing = self.routing or recording.routing
                for path, shapes in recording.module_outputs.items():
                    self.module_outputs.setdefault(path, shapes)
                return recording.output
        program = export_module(module, args, kwargs, grad=self.backward)
        self.records.extend(count_exported(program, self.registry, self.convention, prefix=str(n.target),
                                           unreadable_masks=self.unreadable_masks,
                                           originals=module_tensors(module) if self.causal == "exact" else None,
                                           causal=self.causal, backward=self.backward))
        return exported_outputs(program)

    def _count_function_through_export(self, n: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Count a Python function that torch.fx kept whole (``torch.fx.wrap``) and that has no rule
        (trace="auto"): by running it on meta tensors, or through torch.export where that fails."""
        from fxflops.export import FunctionCall, count_exported, export_module, exported_outputs
        from fxflops.recorder import record_function

        module_path, module_type = _module_of(n)
        name = getattr(n.target, "__name__", "function")
        self.fallbacks[f"{module_path}:{name}" if module_path else name] = (
            f"{describe_target(n.target)} is kept whole by torch.fx.wrap and has no rule")
        if self.causal == "dense":
            try:
                recording = record_function(n.target, args, kwargs, site=(module_path, module_type),
                                            registry=self.registry, convention=self.convention,
                                            backward=self.backward)
            except TraceError:
                pass
            else:
                self.records.extend(replace(r, name=f"{n.name}.{r.name}") for r in recording.records)
                return recording.output
        program = export_module(FunctionCall(n.target), args, kwargs, grad=self.backward)
        records = count_exported(program, self.registry, self.convention, prefix=module_path, causal=self.causal,
                                 unreadable_masks=self.unreadable_masks,
                                 backward=self.backward)
        self.records.extend(replace(r, name=f"{n.name}.{r.name}") for r in records)
        return exported_outputs(program)

    # -- counting -----------------------------------------------------------------------------

    def _lookup(self, n: fx.Node) -> tuple[RuleEntry | None, nn.Module | None]:
        if n.op == "call_module":
            module = self._module(n.target)
            return self.registry.lookup_module(type(module)), module
        if n.op == "call_function":
            return self.registry.lookup_function(n.target), None
        if n.op == "call_method":
            return self.registry.lookup_method(str(n.target)), None
        return None, None

    def _record(self, n: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> NodeRecord:
        module_path, module_type = _module_of(n)
        entry: RuleEntry | None = None
        module: nn.Module | None = None
        cost = ZERO_COUNT
        in_leaves, out_leaves = tensor_leaves((args, kwargs)), tensor_leaves(output)
        input_shapes = tuple(tuple(t.shape) for t in in_leaves)
        output_shapes = tuple(tuple(t.shape) for t in out_leaves)
        structural = n.op in _STRUCTURAL_OPS or (n.op == "call_function" and builds_container(n.target))
        if structural:
            entry = None
        elif n.op == "call_function" and not input_shapes and not output_shapes:
            entry = _PYTHON_VALUE_RULE  # shape arithmetic on ints, getattr on sizes, ...
        else:
            entry, module = self._lookup(n)
            if entry is not None and self.convention.counts(entry.category):
                ctx = NodeContext(node=n, module=module, args=args, kwargs=kwargs, output=output,
                                  convention=self.convention, causal=self.causal, mask_probe=self.mask_probe)
                cost = count_node(entry, ctx, backward=self.backward,
                                  where=lambda problem, hint: _node_error(n, problem, hint))
        category = entry.category if entry is not None else None
        if structural:
            read = written = 0
            dtype = None
        else:
            read, written, dtype = traffic_of(n.target, in_leaves, out_leaves, kwargs,
                                              module if n.op == "call_module" else None)
        return NodeRecord(
            name=n.name,
            op=n.op,
            target=_describe_node_target(n, module),
            module=module_path,
            module_type=module_type,
            input_shapes=input_shapes,
            output_shapes=output_shapes,
            flops=cost.flops,
            macs=cost.macs,
            rule=entry.name if entry is not None else ("structural" if structural else None),
            category=category if not structural else "zero",
            source=source_line(n),
            backward_flops=cost.backward,
            bytes_read=read,
            bytes_written=written,
            dtype=dtype,
        )


#: Leaf modules whose output has their input's shape and dtype: their output is made directly
#: instead of running them on meta tensors, where their decompositions cost most of a count.
SAME_SHAPE_MODULES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.RMSNorm, nn.LocalResponseNorm,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
    nn.LogSigmoid, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Softmax, nn.LogSoftmax, nn.Softmin,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity,
)
#: Of those, the ones whose output is contiguous whatever the input's layout, as their meta
#: kernels (what the run front end sees) make it; the others keep the input's layout. (On the CPU,
#: group norm keeps a channels_last input channels_last; only bytes, never FLOPs, depend on this.)
CONTIGUOUS_OUTPUT_MODULES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.Softmax, nn.LogSoftmax, nn.Softmin,
)
SAME_SHAPE_FUNCTIONS = frozenset({
    F.layer_norm, F.batch_norm, F.group_norm, F.instance_norm, F.rms_norm, F.relu, F.relu6, F.gelu,
    F.silu, F.mish, F.sigmoid, F.tanh, F.hardswish, F.hardsigmoid, F.leaky_relu, F.elu, F.softplus,
    F.dropout, torch.relu, torch.sigmoid, torch.tanh, F.softmax, F.log_softmax,
    # On meta, F.normalize runs torch.linalg.vector_norm's Python reference (7% of a ViT-B-16
    # count); its output has its input's shape.
    F.normalize,
})
CONTIGUOUS_OUTPUT_FUNCTIONS = frozenset({F.layer_norm, F.group_norm, F.instance_norm, F.rms_norm, F.softmax,
                                         F.log_softmax})


#: Binary elementwise arithmetic: the output shape is the operands' broadcast shape.
ELEMENTWISE_FUNCTIONS = frozenset({
    operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul, torch.div,
})
ELEMENTWISE_METHODS = frozenset({"add", "sub", "mul", "div"})


def _same_shape(tensor: torch.Tensor, requires_grad: bool = False, contiguous: bool = False) -> torch.Tensor:
    """An output of ``tensor``'s shape and dtype, laid out as torch's kernel lays it out: like the
    input (elementwise ops, batch norm), or contiguous (``contiguous``: layer, group, RMS and
    instance norms and softmax make their input contiguous first). The layout decides what a later
    ``.contiguous()`` copies (:mod:`fxflops.traffic`)."""
    if contiguous or tensor.is_contiguous():
        # torch.empty is a C++ meta kernel; empty_like goes through Python decompositions (40x slower).
        out = torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")
    else:
        out = torch.empty_like(tensor, device="meta")  # keeps the input's memory layout
    return out.requires_grad_(True) if requires_grad and out.is_floating_point() else out


def _elementwise_output(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The output of ``a + b``, ``a * b``, ... from shapes alone, or ``None`` to run the op.

    Only the plain case is taken: contiguous floating-point operands of one dtype (or a tensor and
    a Python number), whose output is contiguous, of that dtype and of the broadcast shape. Type
    promotion, odd layouts and shapes that do not broadcast run the real op (and its errors).
    """
    if len(args) != 2 or (kwargs and set(kwargs) != {"alpha"}):
        return None
    a, b = args
    if not isinstance(a, torch.Tensor):
        a, b = b, a
    if not isinstance(a, torch.Tensor) or not a.is_floating_point() or not a.is_contiguous():
        return None
    if isinstance(b, torch.Tensor):
        if b.dtype != a.dtype or not b.is_contiguous():
            return None
        shape = _broadcast_shape(tuple(a.shape), tuple(b.shape))
        if shape is None:
            return None
    elif type(b) in (int, float):
        shape = tuple(a.shape)
    else:
        return None
    out = torch.empty(shape, dtype=a.dtype, device="meta")
    return out.requires_grad_(True) if needs_grad(args) else out


def _broadcast_shape(left: tuple[int, ...], right: tuple[int, ...]) -> tuple[int, ...] | None:
    """NumPy broadcasting of two shapes, or ``None`` when they do not broadcast."""
    if left == right:
        return left
    width = max(len(left), len(right))
    left = (1,) * (width - len(left)) + left
    right = (1,) * (width - len(right)) + right
    shape = []
    for x, y in zip(left, right, strict=True):
        if x != y and x != 1 and y != 1:
            return None
        shape.append(y if x == 1 else x)
    return tuple(shape)


#: ``operator.add``, ``getattr``, ...: they create no tensors, so need no default-device mode.
_PYTHON_OPERATOR_MODULES = frozenset({"_operator", "builtins"})


def _fast_output(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The output of common leaves computed from shapes alone, or ``None`` to run the module.

    Running ``nn.Linear`` and ``nn.MultiheadAttention`` on meta tensors goes through Python
    decompositions and costs most of a transformer's count; their output shapes are simple.
    """
    if type(module) is nn.Linear and len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor):
        x, weight = args[0], module.weight
        # The weight's shape, not in_features/out_features: a tied or resized weight (Marian's LM
        # head shares a larger embedding table) is what the forward multiplies by.
        if isinstance(weight, torch.Tensor) and weight.dim() == 2 and x.dim() >= 1 \
                and x.shape[-1] == weight.shape[1] and x.dtype == weight.dtype:
            out = torch.empty((*x.shape[:-1], weight.shape[0]), dtype=x.dtype, device="meta")
            return out.requires_grad_(True) if needs_grad(args, module) and out.is_floating_point() else out
    if type(module) is nn.MultiheadAttention:
        return _mha_output(module, args, kwargs)
    if type(module) in (nn.LSTM, nn.GRU, nn.RNN):
        return _rnn_output(module, args, kwargs)
    shaped_like = _SHAPED_LIKE_INPUT.get(type(module))
    if shaped_like is not None:
        name, position = shaped_like
        x = kwargs.get(name, args[position] if len(args) > position else None)
        if isinstance(x, torch.Tensor):
            # nn.Transformer* check on the data whether a mask is causal (.item()), which meta
            # tensors cannot answer: their output is shaped like the source or target sequence.
            return _same_shape(x, needs_grad((args, kwargs), module))
    return None


#: Modules whose output has the shape of one input: its name and position.
_SHAPED_LIKE_INPUT: dict[type[nn.Module], tuple[str, int]] = {
    nn.TransformerEncoderLayer: ("src", 0),
    nn.TransformerEncoder: ("src", 0),
    nn.TransformerDecoderLayer: ("tgt", 0),
    nn.TransformerDecoder: ("tgt", 0),
    nn.Transformer: ("tgt", 1),
}


_MHA_ARGS = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights",
             "is_causal")


def _mha_output(module: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    bound = dict(zip(_MHA_ARGS, args, strict=False))  # trailing arguments may be left to defaults
    bound.update(kwargs)
    query, key = bound.get("query"), bound.get("key")
    if not isinstance(query, torch.Tensor) or not isinstance(key, torch.Tensor) or query.dim() not in (2, 3):
        return None
    output = torch.empty((*query.shape[:-1], module.embed_dim), dtype=query.dtype, device="meta")
    grad = needs_grad((query, key, bound.get("value")), module) and output.is_floating_point()
    output.requires_grad_(grad)
    if not bound.get("need_weights", True):
        return output, None
    batched = query.dim() == 3
    length = query.shape[1 if module.batch_first else 0] if batched else query.shape[0]
    source = key.shape[1 if module.batch_first else 0] if batched else key.shape[0]
    source += (1 if module.bias_k is not None else 0) + (1 if module.add_zero_attn else 0)
    heads = () if bound.get("average_attn_weights", True) else (module.num_heads,)
    batch = (query.shape[0 if module.batch_first else 1],) if batched else ()
    weights = torch.empty((*batch, *heads, length, source), dtype=query.dtype, device="meta")
    return output, weights.requires_grad_(grad)


def _rnn_output(module: nn.RNNBase, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``(output, h_n)`` (``(output, (h_n, c_n))`` for nn.LSTM) from shapes: on meta tensors the
    recurrent layers run every time step through Python decompositions (seconds per layer)."""
    x = kwargs.get("input", args[0] if args else None)
    if not isinstance(x, torch.Tensor) or x.dim() not in (2, 3) or x.shape[-1] != module.input_size:
        return None  # PackedSequence and malformed inputs: run the module
    batched = x.dim() == 3
    batch = (x.shape[0 if module.batch_first else 1],) if batched else ()
    directions = 2 if module.bidirectional else 1
    out_size = module.proj_size if getattr(module, "proj_size", 0) > 0 else module.hidden_size
    grad = needs_grad((args, kwargs), module) and x.is_floating_point()

    def empty(*shape: int) -> torch.Tensor:
        return torch.empty(shape, dtype=x.dtype, device="meta").requires_grad_(grad)

    output = empty(*x.shape[:-1], directions * out_size)
    h_n = empty(directions * module.num_layers, *batch, out_size)
    if isinstance(module, nn.LSTM):
        return output, (h_n, empty(directions * module.num_layers, *batch, module.hidden_size))
    return output, h_n


def _zero_python_values(ctx: NodeContext) -> int:
    """0 FLOPs: Python-level arithmetic on sizes, not tensor work."""
    return 0


_PYTHON_VALUE_RULE = RuleEntry(rule=_zero_python_values, category="zero", target=None)


def builds_container(target: Any) -> bool:
    """A call that only packs values into a Python container: a namedtuple, a dataclass, a dict
    subclass (transformers' ``ModelOutput``) or a plain list/tuple/dict. torch.fx records such a
    call when a model returns one; it moves no tensor data, so it is structural, never "uncounted"."""
    if not isinstance(target, type):
        return False
    if issubclass(target, (tuple, list, dict)) or dataclasses.is_dataclass(target):
        return not issubclass(target, (torch.Tensor, nn.Module))
    return False


def _is_wrapped_python_function(target: Any) -> bool:
    """A plain Python function outside torch (torch.fx records calls to such functions only when
    a library wrapped them with ``torch.fx.wrap``)."""
    module = getattr(target, "__module__", "") or ""
    return inspect.isfunction(target) and not module.startswith(("torch.", "fxflops.")) and module != "torch"


def _module_of(n: fx.Node) -> tuple[str, str]:
    """Qualified name and class name of the module a node belongs to (innermost)."""
    if n.op == "call_module":
        stack = n.meta.get("nn_module_stack") or {}
        module_type = ""
        for path, kind in stack.values():
            if path == n.target:
                module_type = getattr(kind, "__name__", str(kind))
        return str(n.target), module_type
    stack = n.meta.get("nn_module_stack")
    if not stack:
        return "", ""
    path, kind = list(stack.values())[-1]
    return path, getattr(kind, "__name__", str(kind))


def _describe_node_target(n: fx.Node, module: nn.Module | None) -> str:
    if n.op == "call_module":
        return describe_target(type(module)) if module is not None else str(n.target)
    if n.op == "call_method":
        return f"Tensor.{n.target}"
    if n.op == "get_attr":
        return str(n.target)
    return describe_target(n.target)


def source_line(n: fx.Node) -> str | None:
    """``file:line`` of the innermost user frame that created ``n`` (recorded by the tracer)."""
    return n.meta.get("source")


def _node_error(n: fx.Node, problem: str, hint: str) -> str:
    module_path, module_type = _module_of(n)
    where = source_line(n) or "unknown source line"
    module_text = f"module '{module_path}' ({module_type})" if module_path else "the root module"
    return f"{problem}\n  node: {n.format_node()}\n  in {module_text}, at {where}\n  hint: {hint}"

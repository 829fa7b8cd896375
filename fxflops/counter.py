"""The counting interpreter: runs a traced graph on meta tensors and counts every node with its rule.

:class:`FlopCounter` is a ``torch.fx.Interpreter`` that overrides only ``run_node`` (as
``torch.fx.passes.shape_prop.ShapeProp`` does): it computes the node's meta output, builds a
:class:`~fxflops.context.NodeContext`, asks the registry for the node's rule and records a
:class:`~fxflops.report.NodeRecord`. Follow a count from ``fxflops.count`` -> ``FlopCounter.run_node``
-> ``RuleRegistry.lookup_*`` -> the rule in ``fxflops.rules.<family>``.
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.utils._pytree import tree_leaves

from fxflops.context import NodeContext, _shapes
from fxflops.convention import MATMUL_CLASS, Convention
from fxflops.errors import RuleError, TraceError
from fxflops.registry import RuleEntry, RuleRegistry, describe_target
from fxflops.report import NodeRecord
from fxflops.shapes import meta_clone, to_meta
from fxflops.tracing import TracedModel, _is_tensor_input

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
        self.used_parameters: dict[int, torch.nn.Parameter] = {}
        self._meta_cache: dict[int, torch.Tensor] = {}
        self._meta_modules: dict[int, nn.Module] = {}

    def count(self) -> list[NodeRecord]:
        """Run the graph; return the node records."""
        # Backward counts read requires_grad from the meta values, which autograd sets only with
        # grad enabled; forward counts need no autograd bookkeeping at all.
        with torch.set_grad_enabled(self.backward):
            self.run(*[None for n in self.graph.nodes if n.op == "placeholder"], enable_io_processing=False)
        return self.records

    # -- node handlers ------------------------------------------------------------------------

    def run_node(self, n: fx.Node) -> Any:
        with self._set_current_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            if n.op == "call_module" and n.target in self.traced.fallbacks:
                return self._count_through_export(n, args, kwargs)
            if self.function_fallback and n.op == "call_function" and _is_wrapped_python_function(n.target) \
                    and self.registry.lookup_function(n.target) is None:
                return self._count_function_through_export(n, args, kwargs)
            try:
                # Factory calls inside the graph (torch.arange, torch.zeros) land on meta too.
                with torch.device("meta"):
                    output = getattr(self, n.op)(n.target, args, kwargs)
            except Exception as e:
                raise TraceError(_node_error(n, f"shape propagation on meta tensors failed: {type(e).__name__}: {e}",
                                             "check that the inputs have the shapes and dtypes the model expects; "
                                             "if the op needs real data (.item(), data-dependent shapes), make its "
                                             "module a leaf with leaf_modules=[...] and give it a rule")) from e
            if n.op not in ("placeholder", "output"):
                self.records.append(self._record(n, args, kwargs, output))
            return output

    def placeholder(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        name = str(target).lstrip("*")
        values = self.traced.placeholder_values
        if name not in values:
            # torch.fx names a concrete argument's placeholder "<name>_1".
            base, _, suffix = name.rpartition("_")
            name = base if suffix.isdigit() and base in values else name
        if name in values:
            return to_meta(values[name], self._meta_cache)
        # A concrete argument that torch.fx kept as a placeholder: its default is its value.
        return args[0] if args else None

    def get_attr(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if target in self.traced.constants:
            value = self.traced.constants[target]
        else:
            value = self.fetch_attr(target)
        if isinstance(value, nn.Parameter):
            self.used_parameters[id(value)] = value
        return to_meta(value, self._meta_cache)

    def fetch_attr(self, target: str) -> Any:
        # "" names the root itself: a model that is a leaf is a one-node graph (tracing.py).
        return self.module if target == "" else super().fetch_attr(target)

    def call_function(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if (target in SAME_SHAPE_FUNCTIONS and args and isinstance(args[0], torch.Tensor)
                and kwargs.get("dtype") is None and len(args) < 4):
            return _same_shape(args[0], _needs_grad(args, kwargs))
        return super().call_function(target, args, kwargs)

    def call_module(self, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        module = self.fetch_attr(target)
        for param in module.parameters():
            self.used_parameters[id(param)] = param
        if isinstance(module, SAME_SHAPE_MODULES) and len(args) == 1 and isinstance(args[0], torch.Tensor):
            return _same_shape(args[0], _needs_grad(args, module))
        fast = _fast_output(module, args, kwargs)
        if fast is not None:
            return fast
        clone = self._meta_modules.get(id(module))
        if clone is None:
            clone = self._meta_modules[id(module)] = meta_clone(module, self._meta_cache)
        # forward(), not __call__: the clone has no hooks, and global hooks must not fire either.
        return clone.forward(*args, **kwargs)

    def _count_through_export(self, n: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Count a submodule symbolic tracing could not follow, through torch.export (trace="auto")."""
        from fxflops.export import count_exported, export_module, exported_outputs

        module = self.fetch_attr(n.target)
        for param in module.parameters():
            self.used_parameters[id(param)] = param
        program = export_module(module, args, kwargs, grad=self.backward)
        self.records.extend(count_exported(program, self.registry, self.convention, prefix=str(n.target),
                                           causal=self.causal, backward=self.backward))
        return exported_outputs(program)

    def _count_function_through_export(self, n: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Count a Python function that torch.fx kept whole (``torch.fx.wrap``) and that has no rule,
        through torch.export of that call alone (trace="auto")."""
        from fxflops.export import FunctionCall, count_exported, export_module, exported_outputs

        module_path, _ = _module_of(n)
        name = getattr(n.target, "__name__", "function")
        program = export_module(FunctionCall(n.target), args, kwargs, grad=self.backward)
        records = count_exported(program, self.registry, self.convention, prefix=module_path, causal=self.causal,
                                 backward=self.backward)
        self.records.extend(replace(r, name=f"{n.name}.{r.name}") for r in records)
        self.fallbacks[f"{module_path}:{name}" if module_path else name] = (
            f"{describe_target(n.target)} is kept whole by torch.fx.wrap and has no rule")
        return exported_outputs(program)

    # -- counting -----------------------------------------------------------------------------

    def _lookup(self, n: fx.Node) -> tuple[RuleEntry | None, nn.Module | None]:
        if n.op == "call_module":
            module = self.fetch_attr(n.target)
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
        flops = 0
        backward = 0
        macs: int | None = None
        if n.op == "get_attr":
            entry = None
        elif n.op == "call_function" and not _has_tensor(args, kwargs, output):
            entry = _PYTHON_VALUE_RULE  # shape arithmetic on ints, getattr on sizes, ...
        else:
            entry, module = self._lookup(n)
            if entry is not None and self.convention.counts(entry.category):
                ctx = NodeContext(node=n, module=module, args=args, kwargs=kwargs, output=output,
                                  convention=self.convention, causal=self.causal)
                flops = self._apply(entry, ctx, module_path)
                macs = ctx.macs
                if self.backward:
                    from fxflops.backward import backward_flops

                    backward = backward_flops(entry, ctx, flops)
        category = entry.category if entry is not None else None
        if macs is None:
            macs = flops // 2 if category in MATMUL_CLASS else 0
        if category in MATMUL_CLASS:
            macs += backward // 2
        return NodeRecord(
            name=n.name,
            op=n.op,
            target=_describe_node_target(n, module),
            module=module_path,
            module_type=module_type,
            input_shapes=tuple(_shapes((args, kwargs))),
            output_shapes=tuple(_shapes(output)),
            flops=flops,
            macs=macs,
            rule=entry.name if entry is not None else ("structural" if n.op in _STRUCTURAL_OPS else None),
            category=category if n.op not in _STRUCTURAL_OPS else "zero",
            source=source_line(n),
            backward_flops=backward,
        )

    def _apply(self, entry: RuleEntry, ctx: NodeContext, module_path: str) -> int:
        try:
            flops = entry.rule(ctx)
        except Exception as e:
            raise RuleError(
                _node_error(ctx.node, f"the rule {entry.name} raised {type(e).__name__}: {e}",
                            f"input shapes {ctx.input_shapes}; fix the rule or override it with rules={{...}}")
            ) from e
        if isinstance(flops, bool) or not isinstance(flops, int):
            try:
                as_int = operator.index(flops)
            except TypeError:
                raise RuleError(_node_error(ctx.node, f"the rule {entry.name} returned {flops!r}, not an int",
                                            "return FLOPs as a Python int")) from None
            flops = as_int
        if flops < 0:
            raise RuleError(_node_error(ctx.node, f"the rule {entry.name} returned {flops} FLOPs",
                                        "FLOPs cannot be negative"))
        return int(flops)


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
SAME_SHAPE_FUNCTIONS = frozenset({
    F.layer_norm, F.batch_norm, F.group_norm, F.instance_norm, F.rms_norm, F.relu, F.relu6, F.gelu,
    F.silu, F.mish, F.sigmoid, F.tanh, F.hardswish, F.hardsigmoid, F.leaky_relu, F.elu, F.softplus,
    F.dropout, torch.relu, torch.sigmoid, torch.tanh, F.softmax, F.log_softmax,
})


def _needs_grad(args: Any, extra: Any = None) -> bool:
    """Whether autograd would record an op on ``args`` (and a module's parameters): the outputs
    then require grad, which backward counts (count(backward=True)) read."""
    if not torch.is_grad_enabled():
        return False
    if isinstance(extra, nn.Module):
        if any(p.requires_grad for p in extra.parameters()):
            return True
        extra = None
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in tree_leaves((args, extra)))


def _same_shape(tensor: torch.Tensor, requires_grad: bool = False) -> torch.Tensor:
    out = torch.empty_like(tensor, device="meta")
    return out.requires_grad_(True) if requires_grad and out.is_floating_point() else out


def _fast_output(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The output of common leaves computed from shapes alone, or ``None`` to run the module.

    Running ``nn.Linear`` and ``nn.MultiheadAttention`` on meta tensors goes through Python
    decompositions and costs most of a transformer's count; their output shapes are simple.
    """
    if type(module) is nn.Linear and len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor):
        x = args[0]
        if x.dim() >= 1 and x.shape[-1] == module.in_features and x.dtype == module.weight.dtype:
            out = torch.empty((*x.shape[:-1], module.out_features), dtype=x.dtype, device="meta")
            return out.requires_grad_(True) if _needs_grad(args, module) and out.is_floating_point() else out
    if type(module) is nn.MultiheadAttention:
        return _mha_output(module, args, kwargs)
    return None


_MHA_ARGS = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights",
             "is_causal")


def _mha_output(module: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    bound = dict(zip(_MHA_ARGS, args))
    bound.update(kwargs)
    query, key = bound.get("query"), bound.get("key")
    if not isinstance(query, torch.Tensor) or not isinstance(key, torch.Tensor) or query.dim() not in (2, 3):
        return None
    output = torch.empty((*query.shape[:-1], module.embed_dim), dtype=query.dtype, device="meta")
    grad = _needs_grad((query, key, bound.get("value")), module) and output.is_floating_point()
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


def _zero_python_values(ctx: NodeContext) -> int:
    """0 FLOPs: Python-level arithmetic on sizes, not tensor work."""
    return 0


_PYTHON_VALUE_RULE = RuleEntry(rule=_zero_python_values, category="zero", target=None)


def _is_wrapped_python_function(target: Any) -> bool:
    """A plain Python function outside torch (torch.fx records calls to such functions only when
    a library wrapped them with ``torch.fx.wrap``)."""
    module = getattr(target, "__module__", "") or ""
    return inspect.isfunction(target) and not module.startswith(("torch.", "fxflops.")) and module != "torch"


def _has_tensor(*values: Any) -> bool:
    return _is_tensor_input(values)


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

"""The aten-level path: ``torch.export`` (non-strict) on fake tensors, counted from recorded shapes.

Used for ``count(..., trace="export")``, and by ``trace="auto"`` for the submodules (or the whole
model) that symbolic tracing cannot follow. ``torch.export`` runs the model's Python on fake
tensors, so data-independent control flow on sizes, tensors used as Python values for their
shapes, and non-tensor outputs (Hugging Face ``ModelOutput``, caches, dicts) all work.

The model exported is a meta clone (:func:`fxflops.shapes.meta_clone`): the user's module is
never touched and no weight is copied. Every node of the exported graph carries its fake output
in ``node.meta["val"]``; rules read those shapes, nothing is executed a second time. Per-module
attribution comes from the module stack export records (``node.meta["nn_module_stack"]``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import fx, nn
from torch.utils._pytree import tree_map, tree_unflatten

from fxflops.context import NodeContext, _shapes
from fxflops.convention import Convention
from fxflops.errors import TraceError, site_message
from fxflops.masks import SDPA, is_top_left_causal, kept_entries, run_on_cpu
from fxflops.node_count import ZERO_COUNT, count_node
from fxflops.registry import RuleEntry, RuleRegistry, describe_target
from fxflops.report import NodeRecord
from fxflops.shapes import meta_clone, to_meta
from fxflops.tracing import _is_tensor_input
from fxflops.traffic import traffic

_FILE_LINE = re.compile(r'File "([^"]+)", line (\d+)')
_INTERNAL = re.compile(r"[/\\](torch|fxflops|transformers[/\\]utils)[/\\]|<")


class FunctionCall(nn.Module):
    """A module whose forward calls one function: torch.export exports modules only."""

    def __init__(self, function: Any) -> None:
        super().__init__()
        self.function = function

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)


class _MethodCall(nn.Module):
    """Exports ``model.<method>`` (torch.export only exports ``forward``); its child is ``model``.

    With ``flat``, only the tensors of the output are returned: torch.export refuses outputs of
    types it cannot flatten (a Hugging Face ``DynamicCache``), and counting needs none of them.
    """

    def __init__(self, model: nn.Module, method: str, flat: bool = False) -> None:
        super().__init__()
        self.model = model
        self.method = method
        self.flat = flat

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = getattr(self.model, self.method)(*args, **kwargs)
        if not self.flat:
            return out
        return [leaf for leaf in _all_leaves(out) if isinstance(leaf, torch.Tensor)]


def _all_leaves(value: Any) -> list[Any]:
    """Leaves of ``value``, looking inside objects pytree does not know (caches) for tensors."""
    leaves = []
    for leaf in torch.utils._pytree.tree_leaves(value):
        if isinstance(leaf, torch.Tensor):
            leaves.append(leaf)
        elif hasattr(leaf, "__dict__") and not isinstance(leaf, nn.Module):
            leaves.extend(t for t in torch.utils._pytree.tree_leaves(list(vars(leaf).values()))
                          if isinstance(t, torch.Tensor))
    return leaves


def export_module(
    module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any], method: str = "forward",
    dynamic_shapes: Any = None, grad: bool = False, flat_outputs: bool = False,
) -> torch.export.ExportedProgram:
    """``torch.export.export(strict=False)`` of a meta clone of ``module`` on meta inputs.

    For ``method != "forward"`` or ``flat_outputs`` (return only the output's tensors), the
    module stack gains a leading ``model.`` (strip it with ``count_exported(..., strip="model")``).
    """
    cache: dict[int, torch.Tensor] = {}
    clone = meta_clone(module, cache)
    meta_args = to_meta(tuple(args), cache)
    meta_kwargs = to_meta(dict(kwargs), cache)
    target = clone if method == "forward" and not flat_outputs else _MethodCall(clone, method, flat=flat_outputs)
    if target is not clone and isinstance(dynamic_shapes, dict):
        dynamic_shapes = _for_wrapper(getattr(module, method), len(meta_args), meta_kwargs, dynamic_shapes)
    try:
        # Forward counts need no autograd bookkeeping; backward counts read requires_grad.
        with torch.set_grad_enabled(grad), quiet_torch_logs():
            return torch.export.export(target, meta_args, meta_kwargs, strict=False, dynamic_shapes=dynamic_shapes)
    except Exception as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise TraceError(
            f"torch.export could not capture {type(module).__name__}: {type(e).__name__}: {first_line}\n"
            f"hint: {export_hint(e)}"
        ) from e


def export_hint(error: BaseException) -> str:
    """What to do after torch.export failed with ``error``: only a data-dependent guard means the
    model branches on tensor values; anything else is more often an input the model does not take."""
    text = f"{type(error).__name__}: {error}"
    if "DataDependent" in text or "data-dependent" in text or "data dependent" in text:
        return ("the model branches on tensor values (not only sizes); make that module a leaf with "
                "leaf_modules=[...] and register a rule for it")
    return ("check that the inputs have the shapes and dtypes the model expects (token ids as long, within "
            "the vocabulary); run with trace='run' to see where the forward fails")


@contextlib.contextmanager
def quiet_torch_logs() -> Iterator[None]:
    """Hold torch's own log lines back while fxflops tries a capture: a failed torch.export logs
    warnings and whole graphs ("Unable to find user code ..."), and fxflops reports the failure
    itself, in one line. Only torch's loggers are raised to ERROR, and only for the block; what is
    written to stderr meanwhile (torch.export prints a failed capture's partial graph there) is
    dropped."""
    changed: list[tuple[logging.Logger, int]] = []
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name == "torch" or name.startswith("torch.")) and isinstance(logger, logging.Logger) \
                and logger.level < logging.ERROR:
            changed.append((logger, logger.level))
            logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in changed:
            logger.setLevel(level)


def _for_wrapper(method: Any, n_args: int, kwargs: Mapping[str, Any], shapes: dict[str, Any]) -> dict[str, Any]:
    """``dynamic_shapes`` keyed by the method's parameter names, rekeyed for a wrapper whose
    forward is ``(*args, **kwargs)``."""
    import inspect

    names = list(inspect.signature(method).parameters)[:n_args]
    rekeyed: dict[str, Any] = {"args": tuple(shapes.get(name) for name in names)}
    if kwargs:
        rekeyed["kwargs"] = {name: shapes.get(name) for name in kwargs}
    return rekeyed


def _value(node: Any) -> Any:
    return node.meta.get("val") if isinstance(node, fx.Node) else node


def _source(node: fx.Node) -> str | None:
    trace = node.meta.get("stack_trace") or ""
    user_frames = [(f, line) for f, line in _FILE_LINE.findall(trace) if not _INTERNAL.search(f)]
    if user_frames:
        file, line = user_frames[-1]
        return f"{file}:{line}"
    return None


def _module_of(node: fx.Node, prefix: str, strip: str) -> tuple[str, str]:
    stack = [entry for entry in (node.meta.get("nn_module_stack") or {}).values()
             if not str(entry[0]).startswith("_empty_nn_module_stack")]
    if not stack:
        return prefix, ""
    path, kind = stack[-1]
    path = path if isinstance(path, str) else str(path)
    if strip and (path == strip or path.startswith(strip + ".")):
        path = path[len(strip) + 1:]
    elif strip and kind is not None and path == "":
        kind = None
    full = ".".join(p for p in (prefix, path) if p)
    kind_name = kind.rsplit(".", 1)[-1] if isinstance(kind, str) else getattr(kind, "__name__", "")
    return full, kind_name


def count_exported(
    program: torch.export.ExportedProgram,
    registry: RuleRegistry,
    convention: Convention,
    prefix: str = "",
    strip: str = "",
    causal: str = "dense",
    symbols: Mapping[Any, Any] | None = None,
    backward: bool = False,
    unreadable_masks: dict[str, str] | None = None,
    originals: Mapping[str, torch.Tensor] | None = None,
) -> list[NodeRecord]:
    """One record per ``call_function`` node of ``program``, module paths under ``prefix``.

    ``strip`` removes a leading module name from the recorded paths (see :func:`export_module`).
    ``symbols`` maps torch's shape symbols to the user's (:mod:`fxflops.symbolic`); counts of
    graphs with symbolic sizes are then sympy polynomials. Under ``causal="exact"``, masks are
    evaluated from ``originals`` (:func:`module_tensors`) where they come from parameters or
    buffers; attention nodes whose mask cannot be evaluated go to ``unreadable_masks``.
    """
    from fxflops.symbolic import dim_value, to_count

    symbols = symbols or {}
    if backward:
        _propagate_requires_grad(program)
    causal_masks: dict[fx.Node, bool | None] = {}
    records: list[NodeRecord] = []
    for node in program.graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        args = tree_map(_value, node.args)
        kwargs = tree_map(_value, dict(node.kwargs))
        is_sdpa = getattr(node.target, "overloadpacket", None) is torch.ops.aten.scaled_dot_product_attention
        if causal == "exact" and is_sdpa:
            args, kwargs = _causal_mask_as_flag(program, node, args, kwargs, causal_masks, originals)
            if causal_masks.get(_mask_node(node), False) is None and unreadable_masks is not None:
                unreadable_masks[f"{prefix}.{node.name}" if prefix else node.name] = \
                    "its mask is computed from parameters, buffers or constants without data (meta)"
        output = node.meta.get("val")
        module_path, module_type = _module_of(node, prefix, strip)
        has_tensor = _is_tensor_input((args, kwargs, output))
        entry: RuleEntry | None
        if not has_tensor:
            entry = RuleEntry(rule=_python_value, category="zero", target=None)
        else:
            entry = registry.lookup_function(node.target)
        cost = ZERO_COUNT
        if entry is not None and convention.counts(entry.category):
            ctx = NodeContext(node=node, module=None, args=args, kwargs=kwargs, output=output, convention=convention,
                              causal=causal)

            def where(problem: str, hint: str, node: fx.Node = node, path: str = module_path,
                      kind: str = module_type) -> str:
                return site_message(problem, node.format_node(), path, kind, _source(node), hint)

            cost = count_node(entry, ctx, backward=backward, symbols=symbols or None, where=where)
        read, written, dtype = traffic(node.target, (args, kwargs), output)
        if symbols:
            read, written = to_count(read, symbols), to_count(written, symbols)
        records.append(
            NodeRecord(
                name=node.name,
                op="call_function",
                target=describe_target(node.target),
                module=module_path,
                module_type=module_type,
                input_shapes=tuple(tuple(dim_value(d, symbols) for d in s) for s in _shapes((args, kwargs))),
                output_shapes=tuple(tuple(dim_value(d, symbols) for d in s) for s in _shapes(output)),
                flops=cost.flops,
                macs=cost.macs,
                rule=entry.name if entry is not None else None,
                category=entry.category if entry is not None else None,
                source=_source(node),
                backward_flops=cost.backward,
                bytes_read=read,
                bytes_written=written,
                dtype=dtype,
            )
        )
    return records


def _propagate_requires_grad(program: torch.export.ExportedProgram) -> None:
    """Set ``requires_grad`` on the graph's fake values as autograd would: parameters as they
    are in the model, user inputs as given, and every floating result of an op that has an input
    requiring grad. torch.export records detached values, which backward rules cannot read."""
    specs = {spec.arg.name: spec for spec in program.graph_signature.input_specs
             if hasattr(spec.arg, "name")}
    state = program.state_dict
    needs: dict[fx.Node, bool] = {}
    for node in program.graph_module.graph.nodes:
        if node.op == "placeholder":
            spec = specs.get(node.name)
            kind = spec.kind.name if spec is not None else ""
            if kind == "PARAMETER":
                needs[node] = bool(getattr(state.get(spec.target), "requires_grad", True))
            elif kind == "USER_INPUT":
                needs[node] = bool(getattr(node.meta.get("val"), "requires_grad", False))
            else:
                needs[node] = False
        else:
            needs[node] = any(needs.get(arg, False) for arg in node.all_input_nodes)
        for value in torch.utils._pytree.tree_leaves(node.meta.get("val")):
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.requires_grad != needs[node]:
                value.requires_grad_(needs[node])


def _causal_mask_as_flag(program: torch.export.ExportedProgram, node: fx.Node, args: tuple[Any, ...],
                         kwargs: dict[str, Any], seen: dict[fx.Node, bool | None],
                         originals: Mapping[str, torch.Tensor] | None = None
                         ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """For ``causal="exact"``: an SDPA ``attn_mask`` that is exactly torch's top-left causal mask
    counts as ``is_causal=True``. Hugging Face models pass causal masks as tensors under export."""
    mask_node = _mask_node(node)
    if not isinstance(mask_node, fx.Node):
        return args, kwargs
    if mask_node not in seen:
        seen[mask_node] = _is_causal_mask(program, mask_node, originals)
    if not seen[mask_node]:
        return args, kwargs
    args = (*args[:3], None, *args[4:]) if len(args) > 3 else args
    kwargs = {k: v for k, v in kwargs.items() if k != "attn_mask"}
    if len(args) > 5:
        args = (*args[:5], True, *args[6:])
    else:
        kwargs["is_causal"] = True
    return args, kwargs


def _mask_node(sdpa: fx.Node) -> Any:
    return sdpa.args[3] if len(sdpa.args) > 3 else sdpa.kwargs.get("attn_mask")


def module_tensors(module: nn.Module, wrapped: bool = False) -> dict[str, torch.Tensor]:
    """The user's parameters and buffers by the names an export of ``module`` gives them (see
    :func:`export_module`; ``wrapped`` when it was exported as the ``model`` of a wrapper): a mask
    computed from a real buffer is evaluated from its data."""
    prefix = "model." if wrapped else ""
    named = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    return {prefix + name: tensor for name, tensor in named}


def _is_causal_mask(program: torch.export.ExportedProgram, mask_node: fx.Node,
                    originals: Mapping[str, torch.Tensor] | None = None) -> bool | None:
    """Evaluate the mask on real tensors at the traced size, when it depends on nothing but input
    shapes (and input values, tried twice) and on parameters and buffers that have data in
    ``originals``, and compare it with the top-left causal mask.

    A mask computed from tensors without data (the meta model's, or lifted constants) cannot be
    evaluated: ``None``, and attention is counted dense.
    """
    specs = {spec.arg.name: spec for spec in program.graph_signature.input_specs if hasattr(spec.arg, "name")}
    state: dict[fx.Node, torch.Tensor] = {}
    needed: list[fx.Node] = []
    stack, seen = [mask_node], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        needed.append(current)
        spec = specs.get(current.name) if current.op == "placeholder" else None
        if spec is not None and spec.kind.name != "USER_INPUT":
            original = (originals or {}).get(str(spec.target))
            if not isinstance(original, torch.Tensor) or original.device.type == "meta":
                return None
            state[current] = original.detach().cpu()
        stack.extend(current.all_input_nodes)
    order = {n: i for i, n in enumerate(program.graph_module.graph.nodes)}
    masks = []
    for trial in range(2):
        env: dict[fx.Node, Any] = {}
        try:
            for current in sorted(needed, key=order.__getitem__):
                if current in state:
                    env[current] = state[current]
                elif current.op == "placeholder":
                    env[current] = _real_like(current.meta.get("val"), trial)
                else:
                    value_of = functools.partial(_value_in, env)
                    run_args = tree_map(value_of, current.args)
                    run_kwargs = tree_map(value_of, dict(current.kwargs))
                    env[current] = run_on_cpu(current, run_args, run_kwargs)
        except Exception:
            return False
        masks.append(env[mask_node])
    mask = masks[0]
    if not isinstance(mask, torch.Tensor) or mask.device.type != "cpu" or not torch.equal(masks[0], masks[1]):
        return False
    return is_top_left_causal(kept_entries(mask, SDPA))


def _value_in(env: dict[fx.Node, Any], arg: Any) -> Any:
    """A node's computed value from ``env``; any other argument as it is."""
    return env[arg] if isinstance(arg, fx.Node) else arg


def _real_like(value: Any, trial: int) -> Any:
    """A real CPU tensor with ``value``'s (hinted) shape: zeros, then ones (mask must not change)."""
    if not isinstance(value, torch.Tensor):
        return int(value.node.hint) if isinstance(value, torch.SymInt) else value
    shape = [int(d.node.hint) if isinstance(d, torch.SymInt) else int(d) for d in value.shape]
    return (torch.zeros if trial == 0 else torch.ones)(shape, dtype=value.dtype)


def _python_value(ctx: NodeContext) -> int:
    """0 FLOPs: arithmetic on symbolic sizes, not tensor work."""
    return 0


def exported_outputs(program: torch.export.ExportedProgram) -> Any:
    """The program's outputs as meta tensors, in the module's own output structure."""
    output_node = next(n for n in program.graph_module.graph.nodes if n.op == "output")
    flat = [to_meta(_value(n)) for n in output_node.args[0]]
    n_user = len(program.graph_signature.user_outputs)
    flat = flat[len(flat) - n_user:]  # mutated buffers come first
    return tree_unflatten(flat, program.call_spec.out_spec)

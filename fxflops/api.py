"""``fxflops.count``: trace, propagate shapes on meta tensors, apply rules, build a FlopReport."""

from __future__ import annotations

import functools
import gc
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

from fxflops.convention import Convention, resolve_convention
from fxflops.counter import FlopCounter
from fxflops.errors import TraceError, UncountedOpError
from fxflops.export import count_exported, export_module, module_tensors
from fxflops.masks import warn_unreadable_masks
from fxflops.meta_autocast import autocast_on_meta
from fxflops.params import active_parameters
from fxflops.recorder import Recording, record
from fxflops.registry import DEFAULT_REGISTRY, Rule, RuleRegistry, Target
from fxflops.report import FlopReport, NodeRecord
from fxflops.routing import ROUTING_MODES
from fxflops.shapes import tensor_leaves
from fxflops.tracing import trace as trace_model

TRACE_MODES = ("auto", "symbolic", "run", "export")
CAUSAL_MODES = ("dense", "exact")


R = TypeVar("R")


#: Counts run one at a time: torch.fx patches torch functions while it traces, torch.export and
#: the meta device mode keep global state, and none of it is safe under threads.
_COUNT_LOCK = threading.RLock()


def _collection_paused(function: Callable[..., R]) -> Callable[..., R]:
    """Run ``function`` alone (one count at a time, :data:`_COUNT_LOCK`) with Python's cyclic
    garbage collector paused and autocast allowed on meta (:mod:`fxflops.meta_autocast`), then
    restore both.

    Tracing allocates many small objects, enough to trigger full collections, and a full
    collection walks the caller's whole heap: 10-300 ms each in a process that holds torch,
    transformers and a model, against 50 ms for a ViT-B-16 count. A count creates few cycles; the
    collector reclaims them at its next run after the count.
    """

    @functools.wraps(function)
    def paused(*args: Any, **kwargs: Any) -> R:
        with _COUNT_LOCK:
            enabled = gc.isenabled()
            gc.disable()
            try:
                with autocast_on_meta():
                    return function(*args, **kwargs)
            finally:
                if enabled:
                    gc.enable()

    return paused


@_collection_paused
def count(
    model: nn.Module,
    inputs: torch.Tensor | Sequence[Any] = (),
    *,
    kwargs: Mapping[str, Any] | None = None,
    method: str = "forward",
    rules: Mapping[Target, Rule] | None = None,
    leaf_modules: Sequence[type | str] = (),
    strict: bool = False,
    convention: str | Convention = "default",
    trace: str = "auto",
    causal: str = "dense",
    dynamic: Mapping[int | str, Mapping[int, str]] | None = None,
    backward: bool = False,
    reuse_blocks: bool = True,
    routing: str = "auto",
) -> FlopReport:
    """Count the FLOPs of ``model.<method>(*inputs, **kwargs)`` without running it.

    Only the shapes and dtypes of ``inputs`` are used (any device, ``meta`` included); the model's
    math is never executed and its weights are never read or copied. The model is left exactly as
    it was: training flag, parameters, buffers, device and hooks.

    Args:
        model: the module to count; built on any device, ``torch.device("meta")`` included.
            Wrappers that add no computation are looked through: ``torch.compile``'s
            ``OptimizedModule`` and ``nn.DataParallel``/``DistributedDataParallel`` are counted
            as the module they wrap. TorchScript modules cannot be counted (their code is not
            Python to trace): count the module before ``torch.jit.script``/``trace``.
        inputs: a tensor or a tuple of positional inputs.
        kwargs: keyword inputs of the method (tensors are traced, other values are baked in).
        method: the method to count, e.g. ``"encode_text"`` of an OpenCLIP model.
        rules: ``{target: rule}`` for this call only, layered over the registered rules.
        leaf_modules: module classes or qualified names not to trace into.
        strict: raise :class:`~fxflops.UncountedOpError` when a node has no rule.
        convention: which op categories count; ``"default"`` is matmul-class work at 2 FLOPs/MAC.
        trace: ``"symbolic"`` (torch.fx; readable torch-level nodes), ``"run"`` (runs a meta
            clone of the model once and records every torch-level call, :mod:`fxflops.recorder`;
            works wherever the forward runs on meta tensors, whatever its Python does with sizes
            and whatever it returns), ``"export"`` (torch.export; aten-level nodes) or ``"auto"``:
            symbolic, with each submodule torch.fx cannot follow counted by running it, and the
            whole model run if its top level cannot be traced (every Hugging Face model). Where
            running on meta fails, ``"auto"`` tries torch.export on fake tensors before giving up.
            The report's ``fallbacks`` says which modules went which way and why.
        causal: ``"dense"`` counts causal attention in full, as FlopCounterMode and OpenCLIP's
            table do; ``"exact"`` counts only the score entries a causal mask keeps.
        dynamic: input dimensions to count as symbols, ``{input: {dim: name}}`` with ``input`` a
            positional index or a keyword-input name, e.g. ``{0: {1: "L"}}``. Counts become sympy
            polynomials in those names (``report.formula()``, ``report.evaluate(L=128)``). Symbolic
            counts always go through torch.export, which carries symbolic sizes.
        backward: also count the backward pass, analytically from the forward graph
            (:mod:`fxflops.backward`): input gradients only for inputs that require grad, weight
            gradients only for trainable parameters. ``report.forward``/``report.backward`` split
            the total; node records carry both.
        reuse_blocks: on the ``"run"`` path, count each repeated block (N copies of one layer)
            once per distinct structure and arguments and reuse its records for its twins
            (:mod:`fxflops.recorder`). ``False`` runs every block; counts are the same unless a
            block's cost depends on its layer number.
        routing: what decides shapes that depend on a mixture-of-experts router's choice (an
            eager per-expert loop, a capacity-limited router), :mod:`fxflops.routing`:
            ``"uniform"`` assumes balanced top-k choices (each of E experts gets S*k/E of the S
            tokens); ``"data"`` runs the model for real on the data its weights and inputs carry,
            as FlopCounterMode around a real forward does (the same goes for any other shape that
            depends on values, e.g. predicted durations); ``"auto"`` uses the data when the
            parameters and inputs all carry it, else the assumption. ``report.routing`` says which
            one decided a shape. A top-k MoE without capacity costs the same under any routing.

    Returns:
        A :class:`~fxflops.FlopReport`.

    >>> import torch, fxflops
    >>> report = fxflops.count(torch.nn.Linear(8, 4), torch.empty(1, 8, device="meta"))
    >>> report.total  # 2 * 1 * 8 * 4
    64
    """
    model = unwrap(model)
    if not isinstance(model, nn.Module):
        kind = "a function" if callable(model) else f"a {type(model).__name__}"
        raise TypeError(f"fxflops.count counts an nn.Module, got {kind}; wrap it in a module whose forward calls "
                        "it, or count the module it belongs to")
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    elif isinstance(inputs, list):
        inputs = tuple(inputs)
    elif not isinstance(inputs, tuple):
        raise TypeError(f"inputs must be a tensor or a tuple of inputs, got {type(inputs).__name__}")
    if trace not in TRACE_MODES:
        raise ValueError(f"trace must be one of {', '.join(TRACE_MODES)}, got {trace!r}")
    if causal not in CAUSAL_MODES:
        raise ValueError(f"causal must be one of {', '.join(CAUSAL_MODES)}, got {causal!r}")
    if routing not in ROUTING_MODES:
        raise ValueError(f"routing must be one of {', '.join(ROUTING_MODES)}, got {routing!r}")
    missing = with_data_missing(model, inputs, kwargs or {}) if routing == "data" else None
    if missing is not None:
        raise ValueError("routing='data' runs the model on the data its weights and inputs carry, but "
                         f"{missing}: build the model with real weights "
                         "(not on the meta device) and pass real input tensors, or use routing='uniform'")
    _check_leaf_modules(model, leaf_modules)
    registry = prepare_registry(rules)
    resolved = resolve_convention(convention)
    kwargs = dict(kwargs or {})
    traced = None
    fallbacks: dict[str, str] = {}
    symbols: dict[Any, Any] = {}
    dynamic_shapes = None
    unreadable_masks: dict[str, str] = {}
    if dynamic:
        from fxflops.symbolic import dynamic_shapes_for, symbol_map

        n_positional = len(inputs)
        inputs, kwargs, dynamic_shapes, marked = dynamic_shapes_for(model, method, inputs, kwargs, dynamic)
    hooked = trace == "auto" and _has_forward_hooks(model)
    if trace in ("auto", "symbolic") and not dynamic and not hooked:
        traced = trace_model(model, inputs, kwargs, registry=registry, method=method, leaf_modules=leaf_modules,
                             allow_fallback=trace == "auto")
    recording = None
    if traced is None and not dynamic and (trace == "run" or (trace == "auto" and causal == "dense")):
        try:
            recording = _record_routed(model, inputs, kwargs, routing, registry=registry,
                                       convention=resolved, method=method, causal=causal, backward=backward,
                                       leaf_modules=leaf_modules, reuse_blocks=reuse_blocks)
        except TraceError as run_error:
            if trace == "run":
                raise
            try:
                program = export_module(model, inputs, kwargs, method=method, grad=backward, flat_outputs=True)
            except TraceError:
                raise run_error from None
            fallbacks = {"": f"torch.fx could not trace the top level, and running it on meta tensors failed "
                             f"({str(run_error).splitlines()[0]}): counted through torch.export"}
        else:
            records = recording.records
            params = sum(p.numel() for p in recording.used_parameters.values())
            fallbacks = {"": "trace='run' was requested" if trace == "run" else
                         "torch.fx could not trace the top level: counted by running it on meta tensors"}
    if traced is None and recording is None:
        if not fallbacks:
            program = export_module(model, inputs, kwargs, method=method, dynamic_shapes=dynamic_shapes,
                                    grad=backward, flat_outputs=True)
            fallbacks = {"": "trace='export' was requested" if trace == "export" else
                         "symbolic sizes (dynamic=...) are counted through torch.export" if dynamic else
                         "torch.fx could not trace the top level: counted through torch.export"}
        if dynamic:
            symbols = symbol_map(program, marked, n_positional)
        records = count_exported(program, registry, resolved, strip="model",
                                 causal=causal, symbols=symbols, backward=backward, unreadable_masks=unreadable_masks,
                                 originals=module_tensors(model, wrapped=True) if causal == "exact" else None)
        params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    elif traced is not None:
        counter = FlopCounter(traced, registry, resolved, causal=causal, function_fallback=trace == "auto",
                              backward=backward)
        try:
            records = counter.count()
        except TraceError as fx_error:
            # A graph torch.fx could trace but whose shapes need data (x[mask], nonzero): running
            # the model reads the data the inputs carry (fxflops.known_values).
            if trace != "auto" or causal != "dense":
                raise
            try:
                recording = _record_routed(model, inputs, kwargs, routing, registry=registry,
                                           convention=resolved, method=method, backward=backward,
                                           leaf_modules=leaf_modules, reuse_blocks=reuse_blocks)
            except TraceError:
                raise fx_error from None
            traced = None
            records = recording.records
            params = sum(p.numel() for p in recording.used_parameters.values())
            fallbacks = {"": "shapes of the torch.fx graph need data: counted by running the model on meta "
                             "tensors with the data the inputs carry"}
        else:
            params = sum(p.numel() for p in counter.used_parameters.values())
            fallbacks = {**traced.fallbacks, **counter.fallbacks}
            unreadable_masks = counter.unreadable_masks
    if unreadable_masks:
        warn_unreadable_masks(unreadable_masks)
    report = build_report(type(model).__name__ + ("" if method == "forward" else f".{method}"), records, params,
                          resolved, causal=causal, backward=backward,
                          trace=("run" if recording is not None else "export") if traced is None else
                          ("auto" if fallbacks else "symbolic"), fallbacks=fallbacks)
    report.module_types = {name: type(module).__name__ for name, module in model.named_modules() if name}
    report.module_params = module_parameters(model)
    report.active_params = active_parameters(model)
    report.routing = recording.routing if recording is not None else counter.routing if traced is not None else None
    report.module_outputs = dict(recording.module_outputs if recording is not None else
                                 counter.module_outputs if traced is not None else {})
    if dynamic:
        from fxflops.symbolic import check_polynomial

        check_polynomial(report.total, program, symbols)
    if strict and report.uncounted:
        raise UncountedOpError(uncounted_message(report.uncounted))
    return report


def _record_routed(model: nn.Module, inputs: tuple[Any, ...], kwargs: Mapping[str, Any], routing: str,
                   **options: Any) -> Recording:
    """Run the model on meta tensors (:func:`fxflops.recorder.record`), with its data where
    ``routing`` asks for it (:mod:`fxflops.routing`): at once for ``"data"``; for ``"auto"``, again
    with the data when the meta run had to assume a router's choice or failed on a value."""
    if routing == "data":
        return record(model, inputs, kwargs, with_data=True, **options)
    try:
        recording = record(model, inputs, kwargs, **options)
    except TraceError:
        if routing != "auto" or not data_carried(model, inputs, kwargs):
            raise
        # Run again with the data; if that fails too, its error is the one to read (it had values).
        return record(model, inputs, kwargs, with_data=True, **options)
    if recording.routing == "uniform" and routing == "auto" and data_carried(model, inputs, kwargs):
        return record(model, inputs, kwargs, with_data=True, **options)
    return recording


def data_carried(model: nn.Module, inputs: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """Whether the model's parameters and the input tensors all have data (none on meta)."""
    return with_data_missing(model, inputs, kwargs) is None


def with_data_missing(model: nn.Module, inputs: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    """What has no data, for ``routing="data"``: ``None`` when everything has."""
    for name, param in model.named_parameters():
        if param.device.type == "meta":
            return f"parameter {name!r} is on the meta device"
    tensors = tensor_leaves((inputs, dict(kwargs)))
    if not tensors:
        return "no input tensor was given"
    for tensor in tensors:
        if tensor.device.type == "meta":
            return f"an input of shape {tuple(tensor.shape)} is on the meta device"
    return None


def _has_forward_hooks(model: nn.Module) -> bool:
    """Whether a submodule has forward (pre-)hooks: torch.fx cannot follow them, so ``trace="auto"``
    runs the model on meta tensors instead, where they run (and their work is counted)."""
    from fxflops.shapes import FORWARD_HOOK_ATTRIBUTES

    return any(vars(module).get(key) for module in model.modules() for key in FORWARD_HOOK_ATTRIBUTES
               if key != "_forward_hooks_always_called")


def _check_leaf_modules(model: nn.Module, leaf_modules: Sequence[type | str]) -> None:
    """``leaf_modules`` are module classes or qualified names of submodules of ``model``."""
    if isinstance(leaf_modules, (str, type)):
        raise TypeError("leaf_modules must be a list of module classes or qualified names, e.g. leaf_modules=[Router]")
    for leaf in leaf_modules:
        if isinstance(leaf, type) and issubclass(leaf, nn.Module):
            continue
        if isinstance(leaf, str):
            try:
                model.get_submodule(leaf)
            except AttributeError:
                import difflib

                names = [name for name, _ in model.named_modules() if name]
                close = difflib.get_close_matches(leaf, names, n=1)
                raise ValueError(f"leaf_modules names {leaf!r}, which is not a submodule of {type(model).__name__}"
                                 + (f" (did you mean {close[0]!r}?)" if close else "")) from None
            continue
        raise TypeError(f"leaf_modules holds {leaf!r}: give nn.Module subclasses or qualified submodule names")


def module_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters of every module, submodules included, each tensor once per module (a module
    reached twice is listed at its first path, as ``named_modules()`` does).

    One bottom-up walk: ``module.parameters()`` per module walks every subtree again, which cost
    more than counting a ViT's graph."""
    sizes: dict[str, int] = {}
    subtree: dict[int, dict[int, int]] = {}

    def visit(name: str, module: nn.Module) -> dict[int, int]:
        known = subtree.get(id(module))
        if known is not None:
            return known
        numels = {id(p): p.numel() for p in module._parameters.values() if p is not None}
        sizes[name] = 0  # keeps named_modules()' order: a module before its children
        for child_name, child in module._modules.items():
            if child is not None:
                numels.update(visit(f"{name}.{child_name}" if name else child_name, child))
        sizes[name] = sum(numels.values())
        subtree[id(module)] = numels
        return numels

    visit("", model)
    return sizes


def prepare_registry(rules: Mapping[Target, Rule] | None) -> RuleRegistry:
    """The registry of one count: built-in rules, rule packs, rules of imported libraries, and
    the call's own ``rules`` on top."""
    import fxflops.rules  # noqa: F401  (built-in rules register on import)
    from fxflops.plugins import load_rule_packs
    from fxflops.rules.third_party import register_imported

    load_rule_packs()
    register_imported()
    return DEFAULT_REGISTRY.updated(rules)


def build_report(model: str, records: list[NodeRecord], params: int, convention: Convention, *, causal: str,
                 backward: bool, trace: str, fallbacks: dict[str, str]) -> FlopReport:
    """A :class:`FlopReport` of ``records``, stating its convention and how it was captured."""
    return FlopReport(model=model, nodes=records, params=params, convention=convention.name,
                      convention_description=convention.describe(), causal=causal, includes_backward=backward,
                      trace=trace, fallbacks=fallbacks, versions=_versions())


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside wrappers that only forward to it (see :func:`count`)."""
    while True:
        if isinstance(model, torch.jit.ScriptModule):
            raise TraceError(f"{type(model).__name__} is a TorchScript module, whose code torch.fx and "
                             "torch.export cannot follow\nhint: count the nn.Module before torch.jit.script/"
                             "torch.jit.trace, e.g. fxflops.count(model, x) on the original model")
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
            continue
        eval_frame = sys.modules.get("torch._dynamo.eval_frame")  # imported by torch.compile
        if eval_frame is not None and isinstance(model, eval_frame.OptimizedModule):
            model = model._orig_mod
            continue
        return model


def uncounted_message(records: Sequence[NodeRecord]) -> str:
    """The ``strict=True`` error: each node without a rule, its op, module and source line."""
    lines = [f"{len(records)} node{'s' if len(records) != 1 else ''} had no FLOP rule:"]
    for node in records:
        where = node.source or "unknown source line"
        module = node.module or "<root>"
        lines.append(f"  {node.name}: {node.op} {node.target} in module '{module}' at {where}")
    lines.append(
        "hint: register a rule with @fxflops.rule(target, category=...), pass rules={target: fn} "
        "for this call, or declare free ops with fxflops.zero(target)"
    )
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    from fxflops import __version__

    return {"fxflops": __version__, "torch": torch.__version__.split("+")[0]}

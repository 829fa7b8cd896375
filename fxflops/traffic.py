"""Bytes each node moves in memory, from the real shapes, strides and dtypes in the graph.

The convention (docs/conventions.md, "Bytes moved") is an **upper bound of memory traffic**: no
cache and no fusion, every node reads each distinct tensor it is given once and writes each tensor
it returns once, as torch's ``utils/_runtime_estimation.py`` counts, and as an unfused eager run
does. Within that:

* views and metadata (``view``, ``reshape`` of a contiguous tensor, ``permute``, ``expand``,
  slicing, ``detach``, ``.to`` its own dtype, ``size()``) move nothing: their output aliases an
  input (``out._base``, or the input itself);
* a gather (``embedding``, ``index_select``, ``gather``, advanced indexing) reads only what it
  gathers, i.e. the output's elements, plus its index tensor: one token's embedding lookup reads
  one row of the table, not the table;
* a tensor is read as the memory it spans: stride-0 (expanded) dimensions count once, so an
  expanded mask or bias is read as its unexpanded self;
* a leaf module (``nn.Linear``, ``nn.Conv2d``...) reads its parameters and buffers; a parameter
  used by two ops is read twice (tied embeddings and heads really are);
* factories write their output (``zeros``, ``arange``); an ``empty`` allocation writes nothing;
* in-place ops (``add_``, ``copy_``, ``x[i] = v``) read their operands and write what they change;
* values that are not tensors (Python numbers, sizes) move nothing.

Caches (SRAM, L2) and fusion make real traffic lower; the bound is what the graph implies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

#: Ops whose output shares its input's memory even when ``_base`` does not say so.
_ALIASING = frozenset({
    "detach", "detach_", "contiguous", "to", "type", "typeas", "float", "double", "half", "bfloat16", "int",
    "long", "short", "bool", "byte", "char", "cpu", "cuda", "requiresgrad_", "aliasing", "lift", "liftfresh",
    "alias", "viewas", "reshapeas", "getattr",
})

#: Ops that read only the elements they return from their source, plus their index.
_GATHERS = frozenset({
    "embedding", "indexselect", "gather", "take", "takealongdim", "getitem", "index", "maskedselect",
    "embeddingbag", "unsafeindex", "selectscatter",
})

#: Allocations that write nothing.
_EMPTY = frozenset({"empty", "emptylike", "newempty", "emptystrided", "emptypermuted"})

#: In-place operators of the ``operator`` module (``x += y``).
_INPLACE_OPERATORS = frozenset({"iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow", "iand", "ior",
                                "ixor", "ilshift", "irshift", "imatmul"})


_KEYS: dict[Any, str] = {}


def op_key(target: Any) -> str:
    """:func:`squeezed_name` of ``target``, cached (every node asks it)."""
    try:
        return _KEYS[target]
    except KeyError:
        key = _KEYS[target] = squeezed_name(target)
        return key
    except TypeError:  # an unhashable target
        return squeezed_name(target)


def squeezed_name(target: Any) -> str:
    """The squeezed lower-case name the tables above use: ``indexselect`` for ``torch.index_select``,
    ``aten.index_select.default`` and ``Tensor.index_select``; a module's class name for a module."""
    if isinstance(target, str):
        name = target
    elif isinstance(target, torch._ops.OpOverload):
        name = target.overloadpacket.__name__
    elif isinstance(target, torch._ops.OpOverloadPacket):
        name = target.__name__
    elif isinstance(target, type):
        name = target.__name__
    else:
        name = getattr(target, "__name__", None) or str(target)
    name = name.rsplit(".", 1)[-1]
    keep_underscore = name.endswith("_") and not name.endswith("__")
    squeezed = name.strip("_").lower().replace("_", "")
    return squeezed + "_" if keep_underscore else squeezed


def tensor_bytes(tensor: torch.Tensor) -> Any:
    """Bytes of memory ``tensor`` spans: stride-0 dimensions count once (an expanded tensor is read as
    the tensor it was expanded from). Sizes may be symbolic (SymInt) on the ``dynamic=`` path."""
    try:
        if tensor.is_contiguous():  # the common case, and no stride 0 (outside size-1 dims)
            return tensor.numel() * tensor.element_size()
        elements = math.prod(size for size, stride in zip(tensor.shape, tensor.stride(), strict=True)
                             if stride != 0)
        return elements * tensor.element_size()
    except Exception:
        # A size torch.export could not know (data-dependent, "unbacked"): no number to give; the
        # tensor is counted as moving nothing rather than failing the count (docs/conventions.md).
        return 0


def _distinct(tensors: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    seen: set[int] = set()
    unique = []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            unique.append(t)
    return unique


def _aliases(output: torch.Tensor, inputs: list[torch.Tensor]) -> bool:
    """Whether ``output`` is one of ``inputs`` or a view of one (or of one's base)."""
    base = output._base
    for t in inputs:
        if output is t or (base is not None and (base is t or base is t._base)):
            return True
    return False


def node_traffic(key: str, inputs: Iterable[torch.Tensor], outputs: Iterable[torch.Tensor],
                 in_place: bool = False) -> tuple[Any, Any]:
    """``(bytes_read, bytes_written)`` of one node: ``key`` is :func:`op_key` of its target, ``inputs``
    its tensor arguments (and a leaf module's parameters and buffers), ``outputs`` its tensor results;
    ``in_place`` when the call writes its input (``F.relu(x, inplace=True)``). See the module docstring."""
    ins = _distinct(inputs)
    outs = _distinct(outputs)
    in_place = in_place or key.endswith("_") or key in _INPLACE_OPERATORS or key == "setitem"
    if key == "setitem":  # x[index] = value: reads the value (and index), writes as many elements
        values = ins[1:]
        moved = sum((tensor_bytes(t) for t in values), 0)
        written = tensor_bytes(values[-1]) if values else 0
        return moved, written
    if not outs or key in _EMPTY:
        return 0, 0
    if (not in_place or key in _ALIASING) and all(_aliases(o, ins) for o in outs):
        return 0, 0  # a view, or an alias (.contiguous() of a contiguous tensor, .detach_()): nothing moves
    written = sum((tensor_bytes(o) for o in outs), 0) if in_place else \
        sum((tensor_bytes(o) for o in outs if not _aliases(o, ins)), 0)
    if key in _GATHERS:
        # The gathered elements (the output's size) come from the source; the index is read whole.
        # index_select, gather and getitem take the source first; F.embedding(input, weight) and
        # aten.embedding(weight, indices) differ, but the table is the floating one.
        candidates = ins if key.startswith("embedding") else ins[1:]
        index = [t for t in candidates if not (t.is_floating_point() or t.is_complex())]
        read = sum((tensor_bytes(t) for t in index), 0) + sum((tensor_bytes(o) for o in outs), 0)
        return read, written
    read = sum((tensor_bytes(t) for t in ins), 0)
    return read, written


def _schema_kind(op: torch._ops.OpOverload) -> str | None:
    """``"view"`` for an aten operator whose results alias an input without writing it
    (``aten.view``, ``aten.permute``, ``aten.expand``, ``aten.slice``), ``"inplace"`` for one that
    writes its input (``aten.add_``), else ``None``: torch.export's fake values do not link views to
    their bases, the schema does."""
    aliases = [r.alias_info for r in op._schema.returns if r.alias_info is not None]
    if not aliases:
        return None
    return "inplace" if any(a.is_write for a in aliases) else "view"


def leaf_tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    """Parameters and buffers a leaf module reads (its submodules' included). Walked directly:
    ``module.parameters()`` costs more than the rest of counting the node."""
    found = [t for t in (*module._parameters.values(), *module._buffers.values()) if t is not None]
    for child in module._modules.values():
        if child is not None:
            found += leaf_tensors(child)
    return found


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors inside ``value`` (nested tuples, lists and dicts, and registered pytree nodes)."""
    from fxflops.shapes import tensor_leaves

    return tensor_leaves(value)


def compute_dtype(inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> str | None:
    """The dtype a node computes in, for picking a peak: its first floating output's, else its first
    floating input's, else its first tensor's; ``None`` with no tensors. ``"bfloat16"``, ``"float32"``..."""
    for group in (outputs, inputs):
        for t in group:
            if t.is_floating_point() or t.is_complex():
                return str(t.dtype).removeprefix("torch.")
    for t in (*outputs, *inputs):
        return str(t.dtype).removeprefix("torch.")
    return None


def traffic(target: Any, args: Any, output: Any, module: torch.nn.Module | None = None) -> tuple[Any, Any, str | None]:
    """``(bytes_read, bytes_written, dtype)`` of a node calling ``target`` on ``args`` (its args and
    kwargs) and returning ``output``; ``module`` is the leaf module a ``call_module`` node runs."""
    kwargs = args[1] if isinstance(args, tuple) and len(args) == 2 and isinstance(args[1], dict) else {}
    return traffic_of(target, tensors_in(args), tensors_in(output), kwargs, module)


def traffic_of(target: Any, inputs: list[torch.Tensor], outputs: list[torch.Tensor], kwargs: dict[str, Any],
               module: torch.nn.Module | None = None) -> tuple[Any, Any, str | None]:
    """:func:`traffic` from the tensors already found in the node's arguments and output."""
    if isinstance(target, torch._ops.OpOverload) and _schema_kind(target) == "view":
        return 0, 0, compute_dtype(inputs, outputs)
    if module is not None:
        inputs = inputs + leaf_tensors(module)
        target = type(module)
    in_place = kwargs.get("inplace") is True or (module is not None and getattr(module, "inplace", False) is True)
    read, written = node_traffic(op_key(target), inputs, outputs, in_place)
    return read, written, compute_dtype(inputs, outputs)

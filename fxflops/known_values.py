"""Values that are known although the model runs on meta tensors: those computed from sizes.

Meta tensors carry no data, so a model that looks at a tensor's *value* cannot run on them: a
Hugging Face model asks ``(position_ids[:, -1] == 0).all()`` of positions it made with
``torch.arange``, BERT slices a ``token_type_ids`` buffer, a detector counts boxes. Many such
values depend on nothing but sizes (factories: ``arange``, ``ones``, ``full``, ``tensor``) or on
data the user did give (a real ``attention_mask``, real buffers). The recorder
(:mod:`fxflops.recorder`) keeps, beside a meta tensor, its real value on the CPU when every input
of the call that made it had one, so such questions get their real answer:

* a factory call's value is computed on the CPU alongside its meta result;
* a call whose tensor inputs all have known values gets its value computed too (the same call on
  the CPU copies), when its result has at most :data:`LIMIT` elements;
* a call that meta tensors cannot answer (``bool(t)``, ``t.item()``, ``t.nonzero()``) is answered
  from the known values when there are some, and its tensor results become meta tensors of the
  real shape, with their values known;
* an in-place call on a tensor with a known value updates the value, or forgets it when the
  call's other inputs are not known.

Nothing here touches the model's weights on meta: parameters have no known values, so a value
that depends on them (a router's choice) stays unknown, unless :mod:`fxflops.routing` assumes
one (``routing="uniform"``: such values are marked *assumed*, and so is everything computed from
them) or the count runs with data (``routing="data"``: parameters keep their real values and
:func:`unlimited` lifts the size limit, so the whole model runs for real beside the meta run).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._pytree import tree_map

from fxflops.shapes import tensor_leaves

#: Largest number of elements a known value may have (16 MiB of float32): masks and positions
#: fit, activations do not.
LIMIT = 1 << 22

_ATTRIBUTE = "_fxflops_known"
_ASSUMED = "_fxflops_assumed"
_SHARED = "_fxflops_shared"
_IN_PLACE_DUNDERS = frozenset({"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__",
                               "__imod__", "__ipow__", "__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__"})
#: The size limit in force: LIMIT, or none while counting with data (:func:`unlimited`).
_limit: contextvars.ContextVar[float] = contextvars.ContextVar("fxflops_known_limit", default=LIMIT)
_MISSING = object()
_CPU = torch.device("cpu")


def known(tensor: torch.Tensor) -> torch.Tensor | None:
    """The real CPU value beside ``tensor``, or ``None``. A CPU tensor is its own value (a model
    may keep tensors outside its parameters and buffers: anchors, scales)."""
    value = getattr(tensor, _ATTRIBUTE, None)
    if value is None and tensor.device.type == "cpu":
        return tensor
    return value


@contextlib.contextmanager
def unlimited() -> Iterator[None]:
    """Known values of any size: the model runs for real beside the meta run (``routing="data"``)."""
    token = _limit.set(math.inf)
    try:
        yield
    finally:
        _limit.reset(token)


def limit() -> float:
    """The largest number of elements a known value may have now."""
    return _limit.get()


def attach(meta: torch.Tensor, value: torch.Tensor) -> None:
    """Remember ``value`` as the real content of ``meta`` (same shape), if it is small enough."""
    if tuple(value.shape) == tuple(meta.shape) and value.numel() <= _limit.get():
        setattr(meta, _ATTRIBUTE, value)


def attach_shared(meta: torch.Tensor, value: torch.Tensor) -> None:
    """:func:`attach` a value that is the model's own storage (a parameter): an in-place call
    on it works on a copy (:func:`propagate`)."""
    attach(meta, value)
    setattr(meta, _SHARED, True)


def _writes_first_argument(func: Any) -> bool:
    name = getattr(func, "__name__", "")
    return (name.endswith("_") and not name.startswith("__")) or name in _IN_PLACE_DUNDERS


def mark_assumed(tensor: torch.Tensor) -> None:
    """Mark ``tensor``'s known value as assumed, not computed (:mod:`fxflops.routing`)."""
    setattr(tensor, _ASSUMED, True)


def any_assumed(leaves: list[torch.Tensor]) -> bool:
    """Whether a known value among ``leaves`` rests on an assumption."""
    return any(getattr(t, _ASSUMED, False) for t in leaves)


def forget(tensor: Any) -> None:
    if isinstance(tensor, torch.Tensor) and hasattr(tensor, _ATTRIBUTE):
        delattr(tensor, _ATTRIBUTE)
    if isinstance(tensor, torch.Tensor) and hasattr(tensor, _ASSUMED):
        delattr(tensor, _ASSUMED)


def all_known(leaves: list[torch.Tensor]) -> bool:
    return all(hasattr(t, _ATTRIBUTE) or t.device.type == "cpu" for t in leaves)


def _real_argument(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return known(value)
    if isinstance(value, slice) and any(isinstance(v, torch.Tensor) for v in (value.start, value.stop, value.step)):
        # x[y0:y1] with tensor bounds (torchvision pastes masks so): the bounds' values
        bounds = [_real_argument(v) for v in (value.start, value.stop, value.step)]
        if any(b is None and v is not None for b, v in zip(bounds, (value.start, value.stop, value.step), strict=True)):
            raise LookupError("a slice bound has no known value")
        return slice(*bounds)
    if isinstance(value, torch.device) and value.type == "meta":
        return _CPU
    return value


def evaluate(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``func`` on the known values of its tensor arguments, on the CPU; ``_MISSING`` if it fails.

    The caller has checked that every tensor argument has a known value.
    """
    try:
        real_args = tree_map(_real_argument, args)
        real_kwargs = tree_map(_real_argument, kwargs)
    except LookupError:
        return _MISSING
    if real_kwargs.get("device") == "meta":
        real_kwargs["device"] = _CPU
    try:
        with torch.no_grad():  # values only: no autograd graph behind them
            return func(*real_args, **real_kwargs)
    except Exception:
        return _MISSING


def small_enough(out: Any) -> bool:
    """Whether every tensor in ``out`` (meta) is within :data:`LIMIT` elements."""
    most = _limit.get()
    return all(math.prod(t.shape) <= most for t in tensor_leaves(out))


def propagate(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    """After ``out = func(*args, **kwargs)`` on meta tensors whose values are all known: compute
    the values of ``out`` too."""
    if not small_enough(out):
        return
    first = args[0] if args else None
    if isinstance(first, torch.Tensor) and first.device.type == "cpu" and _writes_first_argument(func):
        return  # a CPU tensor is its own value, and the call itself has just written it
    if isinstance(first, torch.Tensor) and getattr(first, _SHARED, False) and _writes_first_argument(func):
        setattr(first, _ATTRIBUTE, getattr(first, _ATTRIBUTE).clone())  # the model's parameter stays as it was
        delattr(first, _SHARED)
    real = evaluate(func, args, kwargs)
    if real is _MISSING:
        return
    metas, values = tensor_leaves(out), tensor_leaves(real)
    inputs = tensor_leaves((args, kwargs))
    assumed = any_assumed(inputs)
    # Views of a parameter's value share its storage: they are protected like it.
    shared = {getattr(t, _ATTRIBUTE).untyped_storage().data_ptr() for t in inputs if getattr(t, _SHARED, False)}
    if len(metas) == len(values):
        for meta, value in zip(metas, values, strict=True):
            if meta.device.type == "meta" and value.device.type == "cpu":
                attach(meta, value)
                if assumed and hasattr(meta, _ATTRIBUTE):
                    mark_assumed(meta)
                if shared and value.untyped_storage().data_ptr() in shared:
                    setattr(meta, _SHARED, True)


def answer(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A call meta tensors cannot answer, answered from known values: Python values as they are,
    tensors as meta tensors of the real shape with their values known. ``_MISSING`` if it fails."""
    real = evaluate(func, args, kwargs)
    if real is _MISSING:
        return _MISSING
    assumed = any_assumed(tensor_leaves((args, kwargs)))

    def as_meta(value: Any) -> Any:
        if not isinstance(value, torch.Tensor) or value.device.type != "cpu":
            return value
        meta = torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
        attach(meta, value)
        if assumed:
            mark_assumed(meta)
        return meta

    return tree_map(as_meta, real)


#: Calls whose result's *shape* depends on the values of their index arguments only, not on the
#: values of the tensor they index: ``x[mask]`` keeps as many rows as the mask has True entries.
INDEXING = frozenset({torch.Tensor.__getitem__, torch.Tensor.masked_select, torch.masked_select})


def index_shape(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``x[index]`` when the index has a known value and ``x`` has not: a meta tensor of the
    real result's shape (the values of ``x`` do not change it), computed on a stand-in for ``x``
    that allocates nothing (a zero expanded to its shape). ``_MISSING`` if that fails."""
    if func not in INDEXING or not args or not isinstance(args[0], torch.Tensor):
        return _MISSING
    rest = tensor_leaves((args[1:], kwargs))
    if not rest or not all_known(rest):
        return _MISSING
    source = args[0]
    stand_in = torch.zeros((), dtype=source.dtype).expand(source.shape)

    def real(value: Any) -> Any:
        if value is source:
            return stand_in
        return _real_argument(value)

    try:
        result = func(*tree_map(real, args), **tree_map(real, kwargs))
    except Exception:
        return _MISSING
    if not isinstance(result, torch.Tensor):
        return _MISSING
    return torch.empty(result.shape, dtype=result.dtype, device="meta")


def known_scalars_as_numbers(args: tuple[Any, ...], kwargs: dict[str, Any]
                             ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """``args``/``kwargs`` with every 0-d meta tensor whose value is known replaced by that Python
    number, or ``None`` if there is none. Sizes often arrive as 0-d tensors (``for t, h, w in
    grid_thw: F.interpolate(x, size=(h, w))``), which a call reads with ``int()``: as numbers they
    are the same sizes, and the call's tensor work is unchanged."""
    replaced = False

    def number(value: Any) -> Any:
        nonlocal replaced
        if isinstance(value, torch.Tensor) and value.device.type == "meta" and value.dim() == 0:
            real = known(value)
            if real is not None:
                replaced = True
                return real.item()
        return value

    new_args, new_kwargs = tree_map(number, args), tree_map(number, kwargs)
    return (new_args, new_kwargs) if replaced else None


def is_missing(value: Any) -> bool:
    return value is _MISSING

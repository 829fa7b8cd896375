"""FLOPs as formulas: input sizes marked as symbols, counts as sympy polynomials in them.

``count(model, inputs, dynamic={0: {1: "L"}})`` exports the model with those dimensions dynamic
(``torch.export.Dim.AUTO``), so every fake value in the graph carries symbolic sizes. Rules run
unchanged: they only do arithmetic on sizes, and arithmetic on ``SymInt``s yields symbolic
expressions. Each expression is translated from torch's shape-environment symbols (``s0``, ...)
into the user's names.

A dimension the model specializes on (a branch or a loop on its exact value) comes out of the
export as a plain integer: the cost is not a polynomial in that symbol, and counting says so.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import sympy
import torch
from torch import nn

from fxflops.errors import FxFlopsError

#: A count: a Python int, or a sympy expression when some input sizes are symbols.
Count = int | sympy.Expr

Dynamic = Mapping[int | str, Mapping[int, str]]


class NotPolynomialError(FxFlopsError):
    """A symbolic size was specialized by the model: its cost is not one polynomial in it."""


def _bind_names(model: nn.Module, method: str, n_positional: int) -> list[str]:
    parameters = list(inspect.signature(getattr(model, method)).parameters)
    return parameters[:n_positional]


def dynamic_shapes_for(
    model: nn.Module, method: str, inputs: tuple[Any, ...], kwargs: Mapping[str, Any], dynamic: Dynamic
) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any], dict[tuple[int | str, int], str]]:
    """``torch.export`` ``dynamic_shapes`` for ``dynamic``, and example inputs fit for it.

    Example sizes of dynamic dimensions below 2 are raised (torch specializes sizes 0 and 1), and
    chosen apart from other input sizes so that torch does not assume two dims are equal.
    Returns the new inputs, kwargs, the ``dynamic_shapes`` argument and ``(input, dim) -> name``.
    """
    names = _bind_names(model, method, len(inputs))
    taken = {int(s) for t in (*inputs, *kwargs.values()) if isinstance(t, torch.Tensor) for s in t.shape}
    new_inputs = list(inputs)
    new_kwargs = dict(kwargs)
    shapes: dict[str, Any] = {}
    marked: dict[tuple[int | str, int], str] = {}
    for key, dims in dynamic.items():
        if isinstance(key, int):
            if key >= len(inputs):
                raise ValueError(f"dynamic names positional input {key}, but only {len(inputs)} were given")
            tensor, arg_name = inputs[key], names[key]
        else:
            if key not in kwargs:
                raise ValueError(f"dynamic names keyword input {key!r}, which is not in kwargs")
            tensor, arg_name = kwargs[key], key
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"dynamic input {key!r} is not a tensor")
        shape = list(tensor.shape)
        spec: dict[int, Any] = {}
        if not isinstance(dims, Mapping):
            raise ValueError(f"dynamic[{key!r}] must map dims to symbol names, e.g. {{1: 'L'}}; got {dims!r}")
        for dim, symbol in dims.items():
            if isinstance(dim, bool) or not isinstance(dim, int) or not -len(shape) <= dim < len(shape):
                size = "x".join(map(str, shape)) or "a scalar"
                raise ValueError(f"dynamic[{key!r}] names dim {dim!r}, but that input has {len(shape)} dims "
                                 f"({size}); use 0..{len(shape) - 1}")
            if not str(symbol).isidentifier():
                raise ValueError(f"symbol names must be identifiers, got {symbol!r}")
            if shape[dim] < 2 or any(shape[dim] == int(s) for d, s in enumerate(tensor.shape) if d != dim):
                shape[dim] = next(v for v in range(max(2, shape[dim]), 10_000) if v not in taken)
            taken.add(shape[dim])
            spec[dim] = torch.export.Dim.AUTO
            marked[(key, dim % tensor.dim())] = str(symbol)
        shapes[arg_name] = spec
        resized = torch.empty(shape, dtype=tensor.dtype, device="meta")
        if isinstance(key, int):
            new_inputs[key] = resized
        else:
            new_kwargs[key] = resized
    # torch.export wants a spec (or None) for every input it is given.
    for index, name in enumerate(names):
        shapes.setdefault(name, None)
        del index
    for name in new_kwargs:
        shapes.setdefault(name, None)
    return tuple(new_inputs), new_kwargs, shapes, marked


def symbol_map(program: torch.export.ExportedProgram, marked: Mapping[tuple[int | str, int], str],
               n_positional: int) -> dict[sympy.Symbol, sympy.Symbol]:
    """torch's shape symbols (``s0``) -> the user's symbols (``L``), from the input placeholders.

    Raises :class:`NotPolynomialError` for a marked dimension the export specialized.
    """
    user_inputs = [s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    nodes = {n.name: n for n in program.graph_module.graph.nodes if n.op == "placeholder"}
    flat_names: dict[int | str, str] = {}
    for index, name in enumerate(user_inputs):
        flat_names[index] = name
    mapping: dict[sympy.Symbol, sympy.Symbol] = {}
    for (key, dim), symbol in marked.items():
        node_name = _placeholder_for(key, user_inputs, n_positional, program)
        value = nodes[node_name].meta["val"]
        size = value.shape[dim]
        if not isinstance(size, torch.SymInt) or not isinstance(size.node.expr, sympy.Symbol):
            raise NotPolynomialError(
                f"the cost is not a polynomial in {symbol}: the model specializes on the size of input "
                f"{key!r}, dim {dim} (a branch or loop on its exact value, or an equality with a fixed "
                f"size), so it was fixed at {size}; count at concrete sizes instead"
            )
        mapping[size.node.expr] = sympy.Symbol(symbol, integer=True, positive=True)
    return mapping


def _placeholder_for(key: int | str, user_inputs: list[str], n_positional: int,
                     program: torch.export.ExportedProgram) -> str:
    if isinstance(key, int):
        return user_inputs[key]
    # keyword inputs follow the positional ones, in the order torch.export flattened them
    spec = program.call_spec.in_spec
    kwargs_spec = (spec.child(1) if hasattr(spec, "child") else spec.children_specs[1]) if spec else None
    kw_names = list(kwargs_spec.context) if kwargs_spec is not None else []
    return user_inputs[n_positional + kw_names.index(key)]


def check_polynomial(total: Count, program: torch.export.ExportedProgram,
                     symbols: Mapping[sympy.Symbol, sympy.Symbol]) -> None:
    """Raise :class:`NotPolynomialError` when ``total`` is not a polynomial in the user's symbols
    (floor divisions, branches: the model's cost changes form with the size)."""
    if isinstance(total, int) or total.is_polynomial(*symbols.values()):
        return
    ranges = []
    for torch_symbol, user_symbol in symbols.items():
        bounds = program.range_constraints.get(torch_symbol)
        if bounds is not None:
            ranges.append(f"{user_symbol} in [{bounds.lower}, {bounds.upper}]")
    where = f" (and torch.export only found it valid for {', '.join(ranges)})" if ranges else ""
    raise NotPolynomialError(
        f"the cost is not a polynomial in {', '.join(str(s) for s in symbols.values())}: it came out as "
        f"{total}{where}; the model divides, branches or loops on the size, so count at concrete sizes instead"
    )


def to_count(value: Any, symbols: Mapping[sympy.Symbol, sympy.Symbol]) -> Count:
    """A rule's result as an int, or as a sympy polynomial in the user's symbols."""
    if isinstance(value, torch.SymInt):
        expr = value.node.expr
        if not expr.free_symbols:
            return int(expr)
        unknown = expr.free_symbols - set(symbols)
        if unknown:
            raise FxFlopsError(
                f"a FLOP count depends on sizes that are not input symbols ({', '.join(map(str, unknown))}): "
                "data-dependent sizes cannot be counted as a formula"
            )
        return sympy.expand(expr.xreplace(dict(symbols)))
    if isinstance(value, sympy.Expr):
        return sympy.expand(value)
    return int(value)


def dim_value(size: Any, symbols: Mapping[sympy.Symbol, sympy.Symbol]) -> int | str:
    """A tensor dimension for records: an int, or its expression as a string."""
    if isinstance(size, torch.SymInt):
        expr = size.node.expr
        return int(expr) if not expr.free_symbols else str(expr.xreplace(dict(symbols)))
    return int(size)


def half(value: Count) -> Count:
    """MACs from the FLOPs of matmul-class work (exact: those FLOPs are even)."""
    return value // 2 if isinstance(value, int) else sympy.expand(value / 2)


def evaluate(value: Count, sizes: Mapping[str, int]) -> int:
    """A count at concrete sizes, e.g. ``evaluate(36864*L**2, {"L": 128})``."""
    for name, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{name}={size!r}: sizes are positive integers")
    if isinstance(value, int):
        return value
    substituted = value.subs({sympy.Symbol(k, integer=True, positive=True): v for k, v in sizes.items()})
    if substituted.free_symbols:
        missing = ", ".join(sorted(str(s) for s in substituted.free_symbols))
        raise ValueError(f"give a size for every symbol; missing: {missing}")
    return int(substituted)

"""aten twins of the torch-level rules: ``aten.type_as`` counts as ``Tensor.type_as``,
``aten.multiply`` as ``torch.multiply``, ``aten.round_`` as ``torch.round``.

torch.export records aten operators, not the torch functions and Tensor methods a model calls; an
aten operator whose torch-level twin has a rule would otherwise be listed as uncounted (RoBERTa's
``type_as``, Gemma's ``multiply``, the in-place ``floor_`` of a position computation). For every
built-in torch-level rule (functions by ``__name__``, Tensor methods by name) this registers the
same rule, with the same category, on the aten operator of that name and on its in-place variant
(``name_``), on the in-place variant of every aten operator and Tensor method that has a rule, and
on the Tensor method named like a torch function or aten operator that has one (Flux's
``x.split_with_sizes``, whose aten twin had a rule), where torch has such an operator or method and
no rule claims it yet. aten operators take the same arguments, in the same
positions, as their torch-level twins (the premise of :mod:`fxflops.rules.aten`), and the
elementwise, reduction and zero rules read only shapes. ``tests/rules/test_aten_twins.py`` walks
the registry and fails on any twin left without a rule.
"""

from __future__ import annotations

from typing import Any

import torch

from fxflops.registry import DEFAULT_REGISTRY, RuleEntry, RuleRegistry

# Every family first: their rules are what is mirrored.
from . import aten as _aten  # noqa: F401
from . import attention, by_convention, conv, linalg, linear, moe, recurrent, spectral, zero  # noqa: F401


def torch_level_names(registry: RuleRegistry) -> dict[str, RuleEntry]:
    """Name -> rule of every torch-level target of ``registry`` (functions, Tensor methods), first
    registration first. Modules, aten operators and dunder names are left out."""
    names: dict[str, RuleEntry] = {}
    for key, entry in registry._entries.items():
        if isinstance(key, tuple) and key[0] == "method":
            name = key[1]
        elif isinstance(key, (type, torch._ops.OpOverloadPacket, torch._ops.OpOverload)) or not callable(key):
            continue
        else:
            name = getattr(key, "__name__", None)
        if isinstance(name, str) and name and not name.startswith("__"):
            names.setdefault(name, entry)
    return names


def twin_candidates(registry: RuleRegistry) -> dict[Any, RuleEntry]:
    """aten operator packet -> the rule it should share, for every twin ``registry`` has no rule for."""
    aten = torch.ops.aten
    wanted: dict[Any, RuleEntry] = {}

    def want(name: str, entry: RuleEntry) -> None:
        op = getattr(aten, name, None)
        if isinstance(op, torch._ops.OpOverloadPacket) and registry.lookup_function(op) is None:
            wanted.setdefault(op, entry)

    for name, entry in torch_level_names(registry).items():
        want(name, entry)
        want(name if name.endswith("_") else name + "_", entry)
    for key, entry in list(registry._entries.items()):
        if isinstance(key, torch._ops.OpOverloadPacket) and not key.__name__.endswith("_"):
            want(key.__name__ + "_", entry)
    return wanted


def in_place_method_candidates(registry: RuleRegistry) -> dict[str, RuleEntry]:
    """In-place Tensor method -> the rule of its out-of-place form, for every ``name_`` torch has
    (``x.floor_()``, ``x.clamp_min_(0)``) that ``registry`` has no rule for."""
    wanted: dict[str, RuleEntry] = {}
    for key, entry in list(registry._entries.items()):
        if isinstance(key, tuple) and key[0] == "method" and not key[1].endswith("_") and \
                not key[1].startswith("__") and hasattr(torch.Tensor, key[1] + "_") and \
                registry.lookup_method(key[1] + "_") is None:
            wanted[key[1] + "_"] = entry
    return wanted


def method_twin_candidates(registry: RuleRegistry) -> dict[str, RuleEntry]:
    """Tensor method -> the rule of the torch function or aten operator of its name, for every
    public method torch has (``x.split_with_sizes(...)``, ``x.hypot(y)``) that ``registry`` has no
    rule for. Methods are generated from the same native functions as the aten operators: the
    same arguments in the same positions, ``self`` first."""
    wanted: dict[str, RuleEntry] = {}
    named = dict(torch_level_names(registry))
    for key, entry in list(registry._entries.items()):
        if isinstance(key, torch._ops.OpOverloadPacket):
            named.setdefault(key.__name__, entry)
    for name, entry in named.items():
        if not name.startswith("_") and callable(getattr(torch.Tensor, name, None)) and \
                registry.lookup_method(name) is None:
            wanted[name] = entry
    return wanted


def register_twins(registry: RuleRegistry = DEFAULT_REGISTRY) -> int:
    """Register every missing Tensor-method twin, in-place method and aten twin in ``registry``;
    return how many."""
    twins = method_twin_candidates(registry)
    for name, entry in twins.items():
        registry.add(name, entry.rule, category=entry.category)  # a str names a Tensor method
    methods = in_place_method_candidates(registry)
    for name, entry in methods.items():
        registry.add(name, entry.rule, category=entry.category)  # a str names a Tensor method
    wanted = twin_candidates(registry)
    for op, entry in wanted.items():
        # No output function: an aten operator's own meta kernel gives its output.
        registry.add(op, entry.rule, category=entry.category)
    return len(twins) + len(methods) + len(wanted)


register_twins()

"""Every built-in torch-level rule has its aten twin and its in-place variants (rules/aten_twins.py).

torch.export records aten operators: one whose torch-level twin has a rule but that has none itself
would be listed as uncounted (RoBERTa's ``type_as``, Gemma's ``multiply``, ``floor_``...).
"""

from __future__ import annotations

import fxflops.rules  # registers the built-in rules
import pytest
import torch
from fxflops.rules.aten_twins import (
    in_place_method_candidates,
    method_twin_candidates,
    torch_level_names,
    twin_candidates,
)
from torch import nn

import fxflops
from fxflops.registry import DEFAULT_REGISTRY

aten = torch.ops.aten


def test_every_torch_level_rule_has_its_aten_twin_and_in_place_variants() -> None:
    # Walks the whole registry: a new torch-level rule whose aten operator (or in-place form) has no
    # rule fails here, by name.
    assert sorted(str(op) for op in twin_candidates(DEFAULT_REGISTRY)) == []
    assert sorted(in_place_method_candidates(DEFAULT_REGISTRY)) == []
    assert sorted(method_twin_candidates(DEFAULT_REGISTRY)) == []  # x.split_with_sizes as aten's
    assert len(torch_level_names(DEFAULT_REGISTRY)) > 400  # the walk sees the whole built-in set


@pytest.mark.parametrize("name", [
    # seen uncounted in the transformers sweep before the twins were registered
    "type_as", "concatenate", "multiply", "acos", "abs_", "unsqueeze_", "numpy_T", "real", "linalg_norm",
    "_is_all_true", "polar", "histc", "round_", "floor_", "ceil_", "trunc_", "clamp_min_", "hardtanh_",
    "nan_to_num_", "floor_divide_", "isin",
])
def test_aten_operators_seen_uncounted_have_rules(name: str) -> None:
    assert DEFAULT_REGISTRY.lookup_function(getattr(aten, name)) is not None


class _Splits(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.split_with_sizes([3, 5], dim=-1)  # Flux's attention splits its fused projection
        return a.sum() + b.hypot(b).sum()


@pytest.mark.parametrize("trace", ["symbolic", "run", "export"])
def test_tensor_methods_share_their_twins_rules(trace: str) -> None:
    report = fxflops.count(_Splits(), torch.empty(4, 8), trace=trace, convention="full", strict=True)
    # full: split 0; a.sum() 12 elements; b.hypot(b) 20; its sum 20; the add of two scalars 1: 53
    assert report.total == 53


class _InPlace(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2
        y.floor_()
        y.clamp_min_(0)
        return y.type_as(x)


@pytest.mark.parametrize("trace", ["run", "export"])
def test_in_place_and_cast_ops_count_on_both_engines(trace: str) -> None:
    report = fxflops.count(_InPlace(), torch.empty(4, 8), trace=trace, convention="full", strict=True)
    # full: mul, floor_, clamp_min_ are 1 FLOP per element each: 3 * 32 = 96; type_as is a cast, 0
    assert report.total == 3 * 32

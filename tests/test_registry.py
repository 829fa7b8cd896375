"""The rule registry: target kinds, Tensor methods, torch.ops operators, rule packs."""

from __future__ import annotations

import operator
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

import fxflops
from fxflops import plugins
from fxflops.registry import RuleRegistry, describe_target, normalize_target


def test_tensor_methods_by_descriptor_or_name() -> None:
    assert normalize_target(torch.Tensor.matmul) == normalize_target("matmul") == ("method", "matmul")
    assert describe_target(normalize_target("view")) == "Tensor.view"


def test_torch_ops_overloads_fall_back_to_their_packet() -> None:
    registry = RuleRegistry()
    registry.register(torch.ops.aten.mm, category="matmul")(lambda ctx: 7)
    entry = registry.lookup_function(torch.ops.aten.mm.default)
    assert entry is not None and entry.rule(None) == 7  # type: ignore[arg-type]
    assert registry.lookup_function(operator.matmul) is None


def test_builtin_rules_cover_the_required_families() -> None:
    import fxflops.rules

    registry = fxflops.DEFAULT_REGISTRY
    for target in (nn.Linear, nn.Conv2d, nn.ConvTranspose3d, nn.MultiheadAttention, nn.LSTM, nn.GRUCell,
                   nn.TransformerEncoderLayer, torch.matmul, operator.matmul, "matmul", torch.einsum,
                   torch.nn.functional.scaled_dot_product_attention, torch.ops.aten.addmm,
                   torch.ops.aten._scaled_dot_product_flash_attention_for_cpu):
        assert target in registry, target
    categories = {entry.category for entry in registry}
    assert {"matmul", "conv", "attention", "recurrent", "norm", "activation", "softmax", "elementwise",
            "reduction", "pooling", "interpolation", "zero"} <= categories


def test_boolean_dispatch_functions_have_rules_and_public_names() -> None:
    """torch.unique_consecutive (Qwen2.5-VL's window attention) is a boolean_dispatch closure, once
    reported as ``boolean_dispatch.<locals>.fn`` without a rule."""

    class Windows(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return self.proj(x[torch.unique_consecutive(index)])

    assert describe_target(torch.unique_consecutive) == "torch.functional.unique_consecutive"
    assert describe_target(torch.nn.functional.max_pool2d) == "torch.nn.functional.max_pool2d"
    report = fxflops.count(Windows(), (torch.ones(5, 8), torch.tensor([0, 0, 2, 3, 3])), strict=True)
    # unique_consecutive picks rows 0, 2, 3 (0 FLOPs); Linear: 2 * 3 rows * 8 in * 4 out = 192 (the
    # default convention, like FlopCounterMode, charges no bias)
    assert report.total == 192


def test_rule_packs_load_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    class Widget(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 5

    def register(registry: RuleRegistry) -> None:
        registry.register(Widget, category="custom")(lambda ctx: 11)

    broken = SimpleNamespace(name="broken", value="nowhere:fn", load=lambda: (_ for _ in ()).throw(ImportError("x")))
    good = SimpleNamespace(name="widgets", value="widgets:register", load=lambda: register)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [broken, good] if group == "fxflops.rules" else [])
    monkeypatch.setattr(plugins, "_loaded", False)
    try:
        with pytest.warns(UserWarning, match="rule pack 'broken'"):
            report = fxflops.count(Widget(), torch.empty(3, device="meta"))
        # the pack's rule: 11 FLOPs for the one Widget node
        assert report.total == 11
    finally:
        fxflops.DEFAULT_REGISTRY._entries.pop(Widget, None)


def test_subclasses_with_their_own_forward_keep_only_per_element_rules() -> None:
    """A Conv1d subclass that transposes first is followed (no inherited rule); a LayerNorm that
    casts back to its input's dtype (OpenCLIP's) keeps the LayerNorm rule: it costs per element."""

    class CastingNorm(nn.LayerNorm):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x.float()).to(x.dtype)

    class TransposingConv(nn.Conv1d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x.transpose(1, 2)).transpose(1, 2)

    class Plain(nn.Conv1d):
        pass

    registry = fxflops.DEFAULT_REGISTRY
    norm = registry.lookup_module(CastingNorm)
    assert norm is not None and norm is registry.lookup_module(nn.LayerNorm)
    assert registry.lookup_module(TransposingConv) is None
    assert registry.lookup_module(Plain) is registry.lookup_module(nn.Conv1d)


def test_a_subclass_that_sets_its_rule_aside_is_traced_into_not_left_a_bare_leaf() -> None:
    """torch.fx keeps every torch.ao.nn module a leaf; QAT's Linear defines its own forward, so it
    has no rule of its own and must be followed, not left uncounted."""
    qat = pytest.importorskip("torch.ao.nn.qat")
    from torch.ao.quantization import default_qconfig

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = qat.Linear(8, 4, qconfig=default_qconfig)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x)

    report = fxflops.count(Model(), torch.empty(2, 8))
    assert fxflops.DEFAULT_REGISTRY.has_ruled_base(qat.Linear)
    # the F.linear inside: 2 rows * 8 in * 4 out: 2 * 2 * 8 * 4 = 128 (fake quantization: no rule
    # needed, it is elementwise rounding counted 0 by convention)
    assert report.total == 128 and report.uncounted == []


class _PositionalAttention(torch.nn.Module):
    """SDPA with every argument it allows positional (attn_mask, dropout_p, is_causal); scale is
    keyword-only."""

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q, q, q, None, 0.0, True, scale=0.5)


@pytest.mark.parametrize("trace", ["symbolic", "run", "export"])
def test_rules_read_arguments_by_name_on_every_front_end(trace: str) -> None:
    """A rule names the argument; where it sits (the torch function's signature on torch.fx and in a
    meta run, aten's schema under torch.export) is the context's business."""
    seen: list[tuple[Any, Any, Any]] = []

    def probe(ctx: Any) -> int:
        seen.append((ctx.arg("is_causal"), ctx.arg("scale"), tuple(ctx.tensor("query").shape)))
        return 7

    rules = {torch.nn.functional.scaled_dot_product_attention: probe,
             torch.ops.aten.scaled_dot_product_attention.default: probe}
    report = fxflops.count(_PositionalAttention(), torch.empty(1, 2, 4, 8, device="meta"), rules=rules, trace=trace)
    # one SDPA node, counted 7 by the probe; it saw the positional is_causal=True and scale=0.5
    assert report.total == 7
    assert seen == [(True, 0.5, (1, 2, 4, 8))]


class _Pool(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.max_pool2d(x, 2)  # a boolean_dispatch function: (*args, **kwargs)


class _ReflectedMatmul(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return b.__rmatmul__(a)  # a @ b


@pytest.mark.parametrize("trace", ["symbolic", "run"])
def test_arguments_by_name_through_dispatch_wrappers_and_reflected_dunders(trace: str) -> None:
    x = torch.empty(1, 3, 8, 8, device="meta")
    # under "full": one compare per window element, numel(out) * kernel = (3*4*4) * (2*2) = 192
    assert fxflops.count(_Pool(), x, convention="full", trace=trace).total == 192
    a, b = torch.empty(5, 3, device="meta"), torch.empty(3, 4, device="meta")
    # (5, 3) @ (3, 4): 2 * 5 * 4 * 3 = 120
    assert fxflops.count(_ReflectedMatmul(), (a, b), trace=trace).total == 120


@pytest.mark.parametrize("trace", ["symbolic", "run"])
def test_counting_keeps_no_reference_to_the_model(trace: str) -> None:
    import gc
    import weakref

    model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    fxflops.count(model, torch.empty(2, 8), trace=trace)
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None

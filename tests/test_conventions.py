"""Conventions (``"default"``, ``"full"``, user-built), MACs, and causal-exact attention.

Every expected integer has its hand arithmetic in a comment above it. Formulas under ``"full"``
are in ``fxflops.rules.by_convention`` and ``docs/conventions.md``. Category rules are checked on
both trace paths: torch.fx (torch-level nodes) and torch.export (aten-level nodes); both must give
the same number.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from flop_testing import make_call, meta, torch_reference_flops
from fxflops.rules.attention import BOTTOM_RIGHT, TOP_LEFT, kept_scores
from torch import nn

import fxflops
from fxflops.convention import (
    CONVENTIONS,
    DEFAULT,
    FULL,
    MATMUL_CLASS,
    PER_ELEMENT_CATEGORIES,
    Convention,
    add_category,
    resolve_convention,
)
from fxflops.symbolic import NotPolynomialError

TRACES = ["symbolic", "export"]


def report(model: nn.Module, *inputs: Any, convention: str | Convention = "full", trace: str = "symbolic",
           causal: str = "dense", kwargs: dict[str, Any] | None = None) -> fxflops.FlopReport:
    """A count that must leave no node uncounted."""
    result = fxflops.count(model, inputs, kwargs=kwargs, convention=convention, trace=trace, causal=causal)
    assert [r.name for r in result.uncounted] == []
    return result


def total(model: nn.Module, *inputs: Any, **options: Any) -> int:
    return report(model, *inputs, **options).total


class Add(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


# -- the Convention object ----------------------------------------------------------------------


def test_named_conventions() -> None:
    assert resolve_convention("default") is DEFAULT
    assert resolve_convention("full") is FULL
    assert set(CONVENTIONS) == {"default", "full"}
    assert DEFAULT.counted == MATMUL_CLASS
    # full: everything but views (zero) and the always-counted custom, FFTs included
    assert FULL.counted == MATMUL_CLASS | PER_ELEMENT_CATEGORIES | {"fft", "linalg"}
    assert not FULL.counts("zero") and FULL.counts("bias") and not DEFAULT.counts("bias")
    assert DEFAULT.counts("custom") and FULL.counts("custom")
    mine = Convention("mine", {"matmul"})
    assert resolve_convention(mine) is mine
    with pytest.raises(ValueError, match="unknown convention 'fvcore'"):
        resolve_convention("fvcore")


def test_user_convention_is_validated() -> None:
    with pytest.raises(ValueError, match="per_element sets 'matmul'"):
        Convention("bad", {"matmul"}, per_element={"matmul": 1})
    with pytest.raises(ValueError, match="must be an int >= 0"):
        Convention("bad", {"norm"}, per_element={"norm": -1})
    with pytest.raises(ValueError, match="must be an int >= 0"):
        Convention("bad", {"norm"}, per_element={"norm": 2.5})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="iterable of category names"):
        Convention("bad", "norm")  # type: ignore[arg-type]
    # any iterable of names; user categories are allowed
    add_category("mine", "a test's own rules")
    assert Convention("ok", ["matmul", "mine"]).counted == frozenset({"matmul", "mine"})
    # a misspelt category would count 0 without a word: it is refused, with the close match
    with pytest.raises(ValueError, match=r"unknown category 'matmull' \(did you mean 'matmul'\?\)"):
        Convention("typo", {"matmull"})
    with pytest.raises(ValueError, match=r"the rule for torch.nn.Identity names the unknown category 'matmull'"):
        fxflops.rule(nn.Identity, category="matmull", override=True)(lambda ctx: 1)
    assert hash(Convention("ok", {"matmul"}, per_element={"norm": 2})) == hash(Convention("ok", {"matmul"}))


def test_describe_names_counted_categories_and_overrides() -> None:
    text = Convention("mine", {"matmul", "norm"}, per_element={"norm": 4}).describe()
    assert text == ("FLOPs (1 multiply-accumulate = 2 FLOPs), convention 'mine': counts matmul, norm; "
                    "per-element constants norm=4")


class LinearSoftmaxRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4, bias=False, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x).softmax(-1))


@pytest.mark.parametrize("trace", TRACES)
def test_user_convention_counts_only_its_categories(trace: str) -> None:
    model, x = LinearSoftmaxRelu(), meta(3, 8)
    mine = Convention("matmul+softmax", DEFAULT.counted | {"softmax"})
    result = report(model, x, convention=mine, trace=trace)
    # linear 2 * 3 * 8 * 4 + softmax 3 * 12; the ReLU is known and free under this convention
    expected = 228
    assert result.total == expected
    assert result.by_category()["activation"] == 0
    assert result.convention == "matmul+softmax"


@pytest.mark.parametrize("trace", TRACES)
def test_per_element_overrides(trace: str) -> None:
    model, x = LinearSoftmaxRelu(), meta(3, 8)
    mine = Convention("cheap", FULL.counted, per_element={"softmax": 1, "activation": 0})
    # linear 2 * 3 * 8 * 4 + softmax 1 * 12 + relu 0 * 12
    expected = 204
    assert total(model, x, convention=mine, trace=trace) == expected
    # the same model under "full": 192 + 3 * 12 + 1 * 12
    expected_full = 240
    assert total(model, x, trace=trace) == expected_full


# -- acceptance: x + y --------------------------------------------------------------------------


@pytest.mark.parametrize("trace", TRACES)
def test_add_costs_its_output_under_full_and_nothing_under_default(trace: str) -> None:
    x, y = meta(1000), meta(1000)
    # one add per output element: 1000
    expected = 1000
    assert total(Add(), x, y, trace=trace) == expected
    default = report(Add(), x, y, convention="default", trace=trace)
    assert default.total == 0 and default.uncounted == []
    assert default.by_category() == {"elementwise": 0}


@pytest.mark.parametrize("trace", TRACES)
def test_broadcasting_cost_follows_the_output(trace: str) -> None:
    # (1000, 1) + (1, 8) -> (1000, 8): 1000 * 8
    expected = 8000
    assert total(Add(), meta(1000, 1), meta(1, 8), trace=trace) == expected


# -- bias adds and MACs -------------------------------------------------------------------------


@pytest.mark.parametrize("trace", TRACES)
def test_linear_bias_under_full(trace: str) -> None:
    model, x = nn.Linear(8, 4, device="meta"), meta(3, 8)
    default = report(model, x, convention="default", trace=trace)
    full = report(model, x, trace=trace)
    # default: 2 * M * K * N = 2 * 3 * 8 * 4; MACs 3 * 8 * 4
    assert (default.total, default.macs) == (192, 96)
    # full: 2 * M * K * N + M * N = 192 + 3 * 4; MACs unchanged
    assert (full.total, full.macs) == (204, 96)
    assert [(n.flops, n.macs) for n in full.nodes if n.flops] == [(204, 96)]


def test_functional_linear_and_addmm_bias_under_full() -> None:
    x, w, b = meta(3, 8), meta(4, 8), meta(4)
    # 2 * 3 * 8 * 4 + 3 * 4
    expected = 204
    assert total(make_call(F.linear, 3), x, w, b) == expected
    assert total(make_call(torch.addmm, 3), b, x, w.T.contiguous()) == expected
    # without a bias the product alone: 2 * 3 * 8 * 4
    expected_no_bias = 192
    assert total(make_call(F.linear, 2), x, w) == expected_no_bias
    # beta=0: torch ignores the added tensor
    assert total(make_call(torch.addmm, 3, beta=0), b, x, w.T.contiguous()) == expected_no_bias


def test_bilinear_bias_under_full() -> None:
    model = nn.Bilinear(3, 4, 5, device="meta")
    # 2 * numel(y) * in2 * (in1 + 1) + numel(y) = 2 * 10 * 4 * 4 + 10
    expected = 330
    assert total(model, meta(2, 3), meta(2, 4)) == expected


@pytest.mark.parametrize("trace", TRACES)
def test_conv_bias_under_full(trace: str) -> None:
    model, x = nn.Conv2d(3, 4, 3, device="meta"), meta(1, 3, 6, 6)
    full = report(model, x, trace=trace)
    # MACs N * prod(weight) * prod(out_spatial) = 1 * (4*3*3*3) * (4*4) = 1728
    # FLOPs 2 * 1728 + bias numel(out) 1 * 4 * 4 * 4
    assert (full.total, full.macs) == (3520, 1728)
    default = report(model, x, convention="default", trace=trace)
    # 2 * 1728
    assert (default.total, default.macs) == (3456, 1728)


@pytest.mark.parametrize("trace", TRACES)
def test_conv_transpose_bias_under_full(trace: str) -> None:
    model, x = nn.ConvTranspose2d(2, 3, 2, stride=2, device="meta"), meta(1, 2, 3, 3)
    full = report(model, x, trace=trace)
    # MACs N * prod(weight) * prod(in_spatial) = 1 * (2*3*2*2) * (3*3) = 216
    # FLOPs 2 * 216 + bias numel(out) 3 * 6 * 6
    assert (full.total, full.macs) == (540, 216)


def test_functional_conv_bias_under_full() -> None:
    x, w, b = meta(1, 3, 6, 6), meta(4, 3, 3, 3), meta(4)
    # 2 * 1728 + 64 (see test_conv_bias_under_full)
    expected = 3520
    assert total(make_call(F.conv2d, 3), x, w, b) == expected
    # 2 * 1728
    expected_no_bias = 3456
    assert total(make_call(F.conv2d, 2), x, w) == expected_no_bias


def test_a_convention_may_count_bias_alone() -> None:
    bias_only = Convention("matmul+bias", DEFAULT.counted | {"bias"})
    model = nn.Sequential(nn.Linear(8, 4, device="meta"), nn.ReLU())
    # 2 * 3 * 8 * 4 + 3 * 4; the ReLU stays free
    expected = 204
    assert total(model, meta(3, 8), convention=bias_only) == expected


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, device="meta")
        self.norm = nn.LayerNorm(4, device="meta")
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True, device="meta")
        self.head = nn.Linear(4, 2, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.conv(x).flatten(2).transpose(1, 2)
        tokens = self.norm(F.gelu(tokens))
        tokens = tokens + self.attn(tokens, tokens, tokens, need_weights=False)[0]
        return self.head(tokens.mean(1))


@pytest.mark.parametrize("trace", TRACES)
def test_macs_are_the_same_under_every_convention(trace: str) -> None:
    model, x = Mixed(), meta(2, 3, 5, 5)
    default = report(model, x, convention="default", trace=trace)
    full = report(model, x, trace=trace)
    assert default.macs == full.macs
    assert default.total == 2 * default.macs
    assert full.total > default.total
    # MACs are matmul-class only: every other category reports 0
    assert all(n.macs == 0 for n in full.nodes if n.category not in MATMUL_CLASS)
    by_category = full.by_category()
    assert set(by_category) >= {"conv", "attention", "matmul", "norm", "activation", "elementwise",
                                "reduction"}
    assert sum(by_category.values()) == full.total


# -- norms --------------------------------------------------------------------------------------


NORM_CASES = [
    # LayerNorm with weight and bias on 2*4*8 = 64 elements: 64 * (5 + 2)
    pytest.param(lambda: nn.LayerNorm(8), (2, 4, 8), 448, id="layernorm"),
    # without affine: 64 * 5
    pytest.param(lambda: nn.LayerNorm(8, elementwise_affine=False), (2, 4, 8), 320, id="layernorm-plain"),
    # weight but no bias: 64 * 6
    pytest.param(lambda: nn.LayerNorm(8, bias=False), (2, 4, 8), 384, id="layernorm-no-bias"),
    # BatchNorm in training, batch statistics, on 2*3*4*4 = 96 elements: 96 * 7
    pytest.param(lambda: nn.BatchNorm2d(3).train(), (2, 3, 4, 4), 672, id="batchnorm-train"),
    # BatchNorm in eval, running statistics: one multiply and one add, 96 * 2
    pytest.param(lambda: nn.BatchNorm2d(3).eval(), (2, 3, 4, 4), 192, id="batchnorm-eval"),
    # GroupNorm on 2*4*3*3 = 72 elements: 72 * 7
    pytest.param(lambda: nn.GroupNorm(2, 4), (2, 4, 3, 3), 504, id="groupnorm"),
    # InstanceNorm2d (no affine by default) on 96 elements: 96 * 5
    pytest.param(lambda: nn.InstanceNorm2d(3), (2, 3, 4, 4), 480, id="instancenorm"),
    # RMSNorm with a weight on 64 elements: 64 * (3 + 1)
    pytest.param(lambda: nn.RMSNorm(8), (2, 4, 8), 256, id="rmsnorm"),
    # RMSNorm without a weight: 64 * 3
    pytest.param(lambda: nn.RMSNorm(8, elementwise_affine=False), (2, 4, 8), 192, id="rmsnorm-plain"),
]


@pytest.mark.parametrize("trace", TRACES)
@pytest.mark.parametrize(("make", "shape", "expected"), NORM_CASES)
def test_norms(make, shape, expected, trace: str) -> None:
    model = make().to("meta")
    result = report(model, meta(*shape), trace=trace)
    # BatchNorm's num_batches_tracked += 1 in training is an elementwise node of its own on export
    assert result.by_category()["norm"] == expected
    assert report(model, meta(*shape), convention="default", trace=trace).total == 0


class FunctionalLayerNorm(nn.Module):
    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), weight, bias)


def test_functional_norms() -> None:
    x = meta(4, 8)
    # F.normalize: |x|^p, sum, divide on 32 elements: 32 * 3
    expected = 96
    assert total(make_call(F.normalize, 1, dim=-1), x) == expected
    # F.layer_norm with weight and bias: 32 * 7
    expected = 224
    assert total(FunctionalLayerNorm(), x, meta(8), meta(8)) == expected
    # F.batch_norm on running stats (training=False), 2*3*2*2 = 24 elements: 24 * 2
    expected = 48
    assert total(make_call(F.batch_norm, 3), meta(2, 3, 2, 2), meta(3), meta(3)) == expected
    # local response norm, size 3, on 2*4*3*3 = 72 elements: 72 * (3 + 5)
    expected = 576
    assert total(nn.LocalResponseNorm(3), meta(2, 4, 3, 3)) == expected


# -- activations, softmax, elementwise, reductions --------------------------------------------


ACTIVATIONS = [nn.ReLU(), nn.ReLU6(), nn.LeakyReLU(), nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.Sigmoid(),
               nn.Tanh(), nn.Softplus(), nn.ELU(), nn.Hardswish(), nn.Mish()]


@pytest.mark.parametrize("trace", TRACES)
@pytest.mark.parametrize("module", ACTIVATIONS, ids=lambda m: repr(m))
def test_activations_cost_one_per_output_element(module: nn.Module, trace: str) -> None:
    # one function application per element: 4 * 10
    expected = 40
    assert total(module, meta(4, 10), trace=trace) == expected


@pytest.mark.parametrize("trace", TRACES)
@pytest.mark.parametrize("module", [nn.Softmax(-1), nn.LogSoftmax(-1)], ids=["softmax", "log_softmax"])
def test_softmax_costs_three_per_element(module: nn.Module, trace: str) -> None:
    # exp, sum, divide on 4 * 10 elements: 3 * 40
    expected = 120
    assert total(module, meta(4, 10), trace=trace) == expected


REDUCTIONS = [
    # 1 per input element: 4 * 10
    pytest.param(torch.sum, {}, 40, id="sum"),
    pytest.param(torch.mean, {"dim": 1}, 40, id="mean"),
    pytest.param(torch.amax, {"dim": 0}, 40, id="amax"),
    pytest.param(torch.cumsum, {"dim": 1}, 40, id="cumsum"),
    # variance: sum, subtract, square, sum: 4 * 40
    pytest.param(torch.var, {"dim": 1}, 160, id="var"),
    # vector norm: |x|^2, sum: 2 * 40
    pytest.param(torch.linalg.vector_norm, {}, 80, id="vector_norm"),
    # logsumexp: exp, sum: 2 * 40
    pytest.param(torch.logsumexp, {"dim": 1}, 80, id="logsumexp"),
]


@pytest.mark.parametrize("trace", TRACES)
@pytest.mark.parametrize(("fn", "keywords", "expected"), REDUCTIONS)
def test_reductions(fn, keywords, expected, trace: str) -> None:
    assert total(make_call(fn, 1, **keywords), meta(4, 10), trace=trace) == expected


@pytest.mark.parametrize("trace", TRACES)
def test_elementwise_functions(trace: str) -> None:
    x = meta(4, 10)
    # exp: 1 per output element, 40
    expected = 40
    assert total(make_call(torch.exp, 1), x, trace=trace) == expected
    # x * 2: 40
    assert total(make_call(torch.mul, 1, other=2.0), x, trace=trace) == expected


LOSSES = [
    # mse: subtract, square, sum: 3 * 40
    pytest.param(lambda: nn.MSELoss(), 120, id="MSELoss"),
    pytest.param(lambda: Call(F.mse_loss), 120, id="mse_loss"),
    # l1: subtract, |d|, sum: 3 * 40
    pytest.param(lambda: Call(F.l1_loss), 120, id="l1_loss"),
    # smooth l1 / huber: subtract, |d|, the branch, sum: 4 * 40
    pytest.param(lambda: nn.HuberLoss(), 160, id="HuberLoss"),
    pytest.param(lambda: Call(F.smooth_l1_loss), 160, id="smooth_l1_loss"),
]


class Call(nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fn(x, y)


@pytest.mark.parametrize("trace", [*TRACES, "run"])
@pytest.mark.parametrize(("make", "expected"), LOSSES)
def test_pointwise_losses_cost_their_passes_under_full_and_nothing_under_default(make, expected, trace: str
                                                                                 ) -> None:
    """DAC's forward returns an mse_loss, once left uncounted; FlopCounterMode counts losses as 0."""
    assert total(make(), meta(4, 10), meta(4, 10), trace=trace) == expected
    assert total(make(), meta(4, 10), meta(4, 10), trace=trace, convention="default") == 0


class ViewsOnly(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(2, 20).permute(1, 0).reshape(40)[:10]


@pytest.mark.parametrize("trace", TRACES)
def test_zero_category_stays_zero_under_full(trace: str) -> None:
    result = report(ViewsOnly(), meta(4, 10), trace=trace)
    assert result.total == 0
    assert set(result.by_category()) == {"zero"}


# -- pooling and interpolation ------------------------------------------------------------------


POOLING = [
    # (1, 2, 8, 8) -> (1, 2, 4, 4): 32 outputs * 3*3 window elements
    pytest.param(lambda: nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 8, 8), 288, id="maxpool2d-overlapping"),
    # (2, 3, 12) -> (2, 3, 3): 18 outputs * 4
    pytest.param(lambda: nn.AvgPool1d(4), (2, 3, 12), 72, id="avgpool1d"),
    # (1, 1, 4, 4, 4) -> (1, 1, 2, 2, 2): 8 outputs * 2*2*2
    pytest.param(lambda: nn.MaxPool3d(2), (1, 1, 4, 4, 4), 64, id="maxpool3d"),
    # 8 -> 3 per dim: windows [0,3) [2,6) [5,8) read 3 + 4 + 3 = 10; 2 channels * 10 * 10
    pytest.param(lambda: nn.AdaptiveAvgPool2d((3, 3)), (1, 2, 8, 8), 200, id="adaptive-avg-uneven"),
    # global average: every element once, 2 * 3 * 5 * 5
    pytest.param(lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 5, 5), 150, id="adaptive-avg-global"),
    # 8 -> 4: windows of 2, 8 reads per row, 2 * 3 rows * 8
    pytest.param(lambda: nn.AdaptiveMaxPool1d(4), (2, 3, 8), 48, id="adaptive-max1d"),
]


@pytest.mark.parametrize("trace", TRACES)
@pytest.mark.parametrize(("make", "shape", "expected"), POOLING)
def test_pooling(make, shape, expected, trace: str) -> None:
    assert total(make(), meta(*shape), trace=trace) == expected


def test_lp_pooling() -> None:
    # (1, 2, 4, 4) -> (1, 2, 2, 2): 8 outputs * 2*2 window * 2 (|x|^p, sum)
    expected = 64
    assert total(nn.LPPool2d(2, 2), meta(1, 2, 4, 4)) == expected


INTERPOLATION = [
    # (1, 3, 4, 4) -> (1, 3, 8, 8) = 192 outputs * 1 neighbour * 2
    pytest.param(lambda: nn.Upsample(scale_factor=2), (1, 3, 4, 4), 384, id="nearest"),
    # 192 outputs * 4 neighbours * 2
    pytest.param(lambda: make_call(F.interpolate, 1, scale_factor=2, mode="bilinear"), (1, 3, 4, 4), 1536,
                 id="bilinear"),
    # (1, 2, 4, 4) -> (1, 2, 6, 6) = 72 outputs * 16 neighbours * 2
    pytest.param(lambda: make_call(F.interpolate, 1, size=(6, 6), mode="bicubic"), (1, 2, 4, 4), 2304,
                 id="bicubic"),
    # (1, 1, 2, 2, 2) -> (1, 1, 4, 4, 4) = 64 outputs * 8 neighbours * 2
    pytest.param(lambda: make_call(F.interpolate, 1, scale_factor=2, mode="trilinear"), (1, 1, 2, 2, 2), 1024,
                 id="trilinear"),
    # (1, 2, 5) -> (1, 2, 10) = 20 outputs * 2 neighbours * 2
    pytest.param(lambda: make_call(F.interpolate, 1, size=10, mode="linear"), (1, 2, 5), 80, id="linear"),
    # antialiased 8 -> 4 per dim: 2 taps * ceil(8 / 4) = 4 per dim, 16 neighbours; 16 outputs * 16 * 2
    pytest.param(lambda: make_call(F.interpolate, 1, size=(4, 4), mode="bilinear", antialias=True),
                 (1, 1, 8, 8), 512, id="bilinear-antialias"),
    # area is adaptive average pooling: 8 -> 3 reads 10 per dim, 2 * 10 * 10 at 1 each
    pytest.param(lambda: make_call(F.interpolate, 1, size=(3, 3), mode="area"), (1, 2, 8, 8), 200, id="area"),
]


@pytest.mark.parametrize("trace", TRACES)
@pytest.mark.parametrize(("make", "shape", "expected"), INTERPOLATION)
def test_interpolation(make, shape, expected, trace: str) -> None:
    assert total(make(), meta(*shape), trace=trace) == expected


@pytest.mark.parametrize("trace", TRACES)
def test_grid_sample_and_affine_grid(trace: str) -> None:
    image, grid = meta(1, 2, 4, 4), meta(1, 3, 3, 2)
    # output (1, 2, 3, 3) = 18 elements * 4 neighbours * 2
    expected = 144
    assert total(make_call(F.grid_sample, 2, align_corners=False), image, grid, trace=trace) == expected
    # nearest: 18 * 1 * 2
    expected = 36
    assert total(make_call(F.grid_sample, 2, mode="nearest", align_corners=False), image, grid,
                 trace=trace) == expected
    # affine_grid to (2, 4, 5, 2): 80 coordinates, each a dot product of length 3: 80 * 3 * 2
    expected = 480
    assert total(make_call(F.affine_grid, 1, size=(2, 1, 4, 5), align_corners=False), meta(2, 2, 3),
                 trace=trace) == expected


# -- attention under "full" ---------------------------------------------------------------------

sdpa = F.scaled_dot_product_attention


@pytest.mark.parametrize("trace", TRACES)
def test_sdpa_under_full_adds_scaling_and_softmax(trace: str) -> None:
    q, k, v = meta(2, 4, 6, 8), meta(2, 4, 10, 8), meta(2, 4, 10, 12)
    result = report(make_call(sdpa, 3), q, k, v, trace=trace)
    # matmuls 2 * N * H * L * S * (E + Ev) = 2 * 2 * 4 * 6 * 10 * (8 + 12) = 19200
    # + per score entry (N * H * L * S = 480): scale 1 + softmax 3
    assert (result.total, result.macs) == (21120, 9600)
    # a float mask is added: + 480
    expected = 21600
    assert total(make_call(sdpa, 4), q, k, v, meta(6, 10), trace=trace) == expected
    # a boolean mask selects: no add
    expected = 21120
    assert total(make_call(sdpa, 4), q, k, v, meta(6, 10, dtype=torch.bool), trace=trace) == expected


@pytest.mark.parametrize("need_weights", [False, True], ids=["no-weights", "weights"])
@pytest.mark.parametrize("trace", TRACES)
def test_mha_under_full(trace: str, need_weights: bool) -> None:
    model = nn.MultiheadAttention(16, 4, batch_first=True, device="meta")
    q, kv = meta(2, 5, 16), meta(2, 7, 16)
    result = report(model, q, kv, kv, trace=trace, kwargs={"need_weights": need_weights})
    # matmuls (N=2, L=5, S=7, E=16): q 2*2*5*16*16 + k, v 2 * 2*2*7*16*16 + out 2*2*5*16*16
    #   + core 2*2*2*5*7*16 = 5120 + 14336 + 5120 + 4480 = 29056
    # biases: q N*L*E 160 + k, v 2*N*S*E 448 + out N*L*E 160 = 768
    # N*H*L*S = 2*4*5*7 = 280 score entries
    if need_weights:
        # torch scales the queries (N*L*E = 160), softmax 3 * 280, averages the heads' weights 280
        expected = 29056 + 768 + 160 + 3 * 280 + 280
    else:
        # SDPA scales the scores (280) and takes the softmax (3 * 280)
        expected = 29056 + 768 + 4 * 280
    assert (result.total, result.macs) == (expected, 29056 // 2)


@pytest.mark.parametrize("trace", TRACES)
def test_transformer_encoder_layer_under_full(trace: str) -> None:
    model = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True, device="meta")
    result = report(model, meta(2, 5, 16), trace=trace)
    # matmuls (N=2, L=5, E=16, F=32): 4 * 2*2*5*16*16 + 2*2*2*5*5*16 + 2 * 2*2*5*16*32 = 44160
    # extras: in/out projection biases 4*N*L*E = 640; scale + softmax 4 * N*H*L*L = 4 * 200 = 800;
    #   feed-forward biases N*L*F + N*L*E = 480; ReLU N*L*F = 320; two residual adds 2*N*L*E = 320;
    #   two affine LayerNorms 2 * 7 * N*L*E = 2240
    expected = 44160 + 640 + 800 + 480 + 320 + 320 + 2240
    assert (result.total, result.macs) == (expected, 22080)


# -- causal attention ---------------------------------------------------------------------------


@pytest.mark.parametrize("trace", TRACES)
def test_causal_acceptance(trace: str) -> None:
    model = make_call(sdpa, 3, is_causal=True)
    q = meta(1, 2, 16, 8)
    # dense: 2 * N * H * L * L * (E + E) = 2 * 1 * 2 * 16 * 16 * 16
    expected_dense = 16384
    assert total(model, q, q, q, convention="default", trace=trace) == expected_dense
    assert torch_reference_flops(model, q, q, q) == expected_dense
    # exact: 16 * 17 / 2 = 136 kept entries: 2 * 1 * 2 * 136 * (8 + 8)
    expected_exact = 8704
    exact = report(model, q, q, q, convention="default", trace=trace, causal="exact")
    assert (exact.total, exact.macs, exact.causal) == (expected_exact, expected_exact // 2, "exact")


@pytest.mark.parametrize("trace", TRACES)
@pytest.mark.parametrize(
    ("q_len", "k_len", "expected"),
    [
        # L=4 < S=6, top-left: row i keeps i+1 keys, 1+2+3+4 = 10: 2 * 10 * (8 + 8)
        pytest.param(4, 6, 320, id="L<S"),
        # L=6 > S=4: 1+2+3+4+4+4 = 18: 2 * 18 * 16
        pytest.param(6, 4, 576, id="L>S"),
    ],
)
def test_causal_exact_lq_ne_lk(q_len: int, k_len: int, expected: int, trace: str) -> None:
    model = make_call(sdpa, 3, is_causal=True)
    q, k = meta(1, 1, q_len, 8), meta(1, 1, k_len, 8)
    assert total(model, q, k, k, convention="default", trace=trace, causal="exact") == expected


@pytest.mark.parametrize("trace", TRACES)
def test_causal_exact_gqa_and_full(trace: str) -> None:
    model = make_call(sdpa, 3, is_causal=True, enable_gqa=True)
    q, kv = meta(1, 4, 5, 8), meta(1, 2, 5, 8)
    # 4 query heads, 5*6/2 = 15 kept entries each: 2 * 4 * 15 * (8 + 8)
    expected = 1920
    assert total(model, q, kv, kv, convention="default", trace=trace, causal="exact") == expected
    # full: + (scale 1 + softmax 3) * 4 * 15
    expected_full = 2160
    assert total(model, q, kv, kv, trace=trace, causal="exact") == expected_full


def test_causal_exact_without_is_causal_is_dense() -> None:
    q = meta(1, 2, 16, 8)
    # 2 * 1 * 2 * 16 * 16 * 16
    expected = 16384
    assert total(make_call(sdpa, 3), q, q, q, convention="default", causal="exact") == expected


def test_causal_exact_cpu_flash_kernel_at_aten_level() -> None:
    kernel = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    model = make_call(kernel, 3, dropout_p=0.0, is_causal=True)
    q = meta(1, 2, 16, 8)
    # as the acceptance case: 2 * 1 * 2 * 136 * 16
    expected = 8704
    assert total(model, q, q, q, convention="default", trace="export", causal="exact") == expected


def test_kept_scores_alignments() -> None:
    # top-left L=3, S=5: 1 + 2 + 3; bottom-right: 3 + 4 + 5
    assert kept_scores(3, 5, TOP_LEFT).count == 6
    assert kept_scores(3, 5, BOTTOM_RIGHT).count == 12
    # top-left L=5, S=3: 1 + 2 + 3 + 3 + 3; bottom-right: 0 + 0 + 1 + 2 + 3
    assert kept_scores(5, 3, TOP_LEFT).count == 12
    assert kept_scores(5, 3, BOTTOM_RIGHT).count == 6
    assert kept_scores(5, 3).count == 15 and kept_scores(5, 3).twice == 30


def test_causal_exact_symbolic_sizes() -> None:
    model = make_call(sdpa, 3, is_causal=True)
    q = meta(1, 2, 16, 8)
    same = {0: {2: "L"}, 1: {2: "L"}, 2: {2: "L"}}
    result = fxflops.count(model, (q, q, q), causal="exact", dynamic=same)
    # 2 * 2 * (L(L+1)/2) * 16 = 32 L^2 + 32 L, no min(): one expression for L and S
    assert result.formula() == "32*L**2 + 32*L"
    assert result.evaluate(L=16).total == 8704
    # different symbols: the kept count min(L, K)(min(L, K) + 1)/2 + ... is piecewise, not a polynomial
    k = meta(1, 2, 10, 8)
    different = {0: {2: "L"}, 1: {2: "K"}, 2: {2: "K"}}
    with pytest.raises(NotPolynomialError, match="Min"):
        fxflops.count(model, (meta(1, 2, 6, 8), k, k), causal="exact", dynamic=different)


def test_causal_exact_symbolic_under_full() -> None:
    model = make_call(sdpa, 3, is_causal=True)
    q = meta(1, 2, 16, 8)
    same = {0: {2: "L"}, 1: {2: "L"}, 2: {2: "L"}}
    result = fxflops.count(model, (q, q, q), causal="exact", convention="full", dynamic=same)
    # matmuls 32 L^2 + 32 L (above) + (scale 1 + softmax 3) * 2 heads * L(L+1)/2 = 4 L^2 + 4 L
    assert result.formula() == "36*L**2 + 36*L"
    # MACs: half the matmul FLOPs
    assert str(result.macs) == "16*L**2 + 16*L"
    # 8704 + 4 * 2 * 136
    assert result.evaluate(L=16).total == 9792


def _causal_mask(length: int) -> torch.Tensor:
    return nn.Transformer.generate_square_subsequent_mask(length, device="meta")


@pytest.mark.parametrize("trace", TRACES)
def test_mha_is_causal(trace: str) -> None:
    model = nn.MultiheadAttention(16, 4, batch_first=True, device="meta")
    x = meta(2, 6, 16)
    kwargs = {"attn_mask": _causal_mask(6), "is_causal": True, "need_weights": False}
    # projections 4 * 2*N*L*E*E = 4 * 2*2*6*16*16 = 24576; core 2*2*N*L*L*E = 2*2*2*6*6*16 = 4608
    expected_dense = 29184
    assert total(model, x, x, x, convention="default", trace=trace, kwargs=kwargs) == expected_dense
    # exact: 6*7/2 = 21 kept entries, core 2*2*N*21*E = 2*2*2*21*16 = 2688
    expected_exact = 24576 + 2688
    exact = total(model, x, x, x, convention="default", trace=trace, causal="exact", kwargs=kwargs)
    assert exact == expected_exact


def test_mha_is_causal_with_an_appended_key() -> None:
    model = nn.MultiheadAttention(16, 4, add_bias_kv=True, batch_first=True, device="meta")
    x = meta(2, 4, 16)
    kwargs = {"attn_mask": _causal_mask(4), "is_causal": True}
    # projections 4 * 2*2*4*16*16 = 16384; the bias key is appended after the mask's columns and every
    # query sees it: 4*5/2 + 4 = 14 kept entries, core 2*2*N*14*E = 2*2*2*14*16 = 1792
    expected = 16384 + 1792
    assert total(model, x, x, x, convention="default", causal="exact", kwargs=kwargs) == expected


@pytest.mark.parametrize("trace", TRACES)
def test_transformer_layers_is_causal(trace: str) -> None:
    encoder = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, device="meta")
    decoder = nn.TransformerDecoderLayer(16, 4, 32, batch_first=True, device="meta")
    x, memory = meta(2, 6, 16), meta(2, 5, 16)
    # encoder layer (N=2, L=6): 4 * 2*2*6*16*16 + core + 2 * 2*2*6*16*32 = 24576 + core + 24576;
    # core dense 2*2*2*36*16 = 4608, exact (21 entries) 2*2*2*21*16 = 2688
    enc = {"src_mask": _causal_mask(6), "is_causal": True}
    assert total(encoder, x, convention="default", trace=trace, kwargs=enc) == 24576 + 4608 + 24576
    exact = total(encoder, x, convention="default", trace=trace, causal="exact", kwargs=enc)
    assert exact == 24576 + 2688 + 24576
    # decoder layer: self-attention as above; cross-attention 2*2*N*L*E*E + 2*2*N*S*E*E = 12288 + 10240,
    # core 2*2*N*L*S*E = 2*2*2*6*5*16 = 3840; feed-forward 24576
    dec = {"tgt_mask": _causal_mask(6), "tgt_is_causal": True}
    dense = 24576 + 4608 + 12288 + 10240 + 3840 + 24576
    assert total(decoder, x, memory, convention="default", trace=trace, kwargs=dec) == dense
    # exact: the self-attention core keeps 21 of 36 entries: 4608 -> 2688
    expected = dense - 4608 + 2688
    exact = total(decoder, x, memory, convention="default", trace=trace, causal="exact", kwargs=dec)
    assert exact == expected


def test_decoder_memory_is_causal() -> None:
    decoder = nn.TransformerDecoderLayer(16, 4, 32, batch_first=True, device="meta")
    x, memory = meta(2, 6, 16), meta(2, 5, 16)
    kwargs = {"memory_mask": torch.zeros(6, 5, device="meta"), "memory_is_causal": True}
    dense = 24576 + 4608 + 12288 + 10240 + 3840 + 24576
    # cross-attention L=6 over S=5, top-left: 1+2+3+4+5+5 = 20 kept of 30: core 2*2*2*20*16 = 2560
    expected = dense - 3840 + 2560
    assert total(decoder, x, memory, convention="default", causal="exact", kwargs=kwargs) == expected


def test_transformer_and_encoder_stack_is_causal() -> None:
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, device="meta")
    stack = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    x = meta(2, 6, 16)
    kwargs = {"mask": _causal_mask(6), "is_causal": True}
    # two layers of (24576 + 2688 + 24576), see test_transformer_layers_is_causal
    expected = 2 * (24576 + 2688 + 24576)
    assert total(stack, x, convention="default", causal="exact", kwargs=kwargs) == expected
    model = nn.Transformer(16, 4, 1, 1, 32, batch_first=True, device="meta")
    src, tgt = meta(2, 5, 16), meta(2, 6, 16)
    kwargs = {"tgt_mask": _causal_mask(6), "tgt_is_causal": True}
    # encoder over S=5: 4*2*2*5*16*16 + 2*2*2*5*5*16 + 2*2*2*5*16*32 = 20480 + 3200 + 20480 = 44160;
    # decoder over L=6 attending to S=5, causal self-attention: 24576 + 2688 + 22528 + 3840 + 24576
    expected = 44160 + 24576 + 2688 + 12288 + 10240 + 3840 + 24576
    assert total(model, src, tgt, convention="default", causal="exact", kwargs=kwargs) == expected
    dense = expected - 2688 + 4608
    assert total(model, src, tgt, convention="default", kwargs=kwargs) == dense


# -- causal masks passed as tensors (fxflops.masks) ----------------------------------------------


class _GeneratedMask(nn.Module):
    """nn.TransformerEncoder with the mask built in forward, without is_causal (the usual way)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 1,
                                             enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, mask=nn.Transformer.generate_square_subsequent_mask(x.shape[1]))


def test_encoder_with_a_generated_mask() -> None:
    x = meta(1, 8, 16)
    # N=1, L=8, E=16, FF=32: projections 4 * 2*8*16*16 = 16384, core 2*2*8*8*16 = 4096,
    # feed-forward 2 * 2*8*16*32 = 16384
    assert total(_GeneratedMask(), x, convention="default") == 16384 + 4096 + 16384
    # the mask evaluates to torch's causal mask: 8*9/2 = 36 of 64 entries, core 2*2*36*16 = 2304
    assert total(_GeneratedMask(), x, convention="default", causal="exact") == 16384 + 2304 + 16384


class _BufferMask(nn.Module):
    """nn.MultiheadAttention given a causal mask kept as a buffer, as OpenCLIP's text tower does."""

    def __init__(self, mask: torch.Tensor, device: str = "cpu") -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True, device=device)
        self.register_buffer("mask", mask.to(device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, attn_mask=self.mask.to(x.dtype), need_weights=False)[0]


def _float_causal(length: int) -> torch.Tensor:
    return torch.full((length, length), float("-inf")).triu(1)


# projections 4 * 2*8*16*16 = 16384 (N=1, L=8, E=16); core 2*2*8*8*16 = 4096 dense, 2*2*36*16 = 2304 exact
MHA_DENSE, MHA_EXACT = 16384 + 4096, 16384 + 2304


@pytest.mark.parametrize("mask", [
    _float_causal(8),                                  # additive: -inf above the diagonal
    torch.ones(8, 8, dtype=torch.bool).triu(1),        # boolean, MHA's meaning: True = not attended
    _float_causal(8).expand(2, 8, 8).clone(),          # one copy per head (N * heads, L, S)
])
@pytest.mark.parametrize("trace", TRACES)
def test_mha_recognises_a_causal_buffer(mask: torch.Tensor, trace: str) -> None:
    x = meta(1, 8, 16)
    assert total(_BufferMask(mask), x, convention="default", trace=trace) == MHA_DENSE
    assert total(_BufferMask(mask), x, convention="default", trace=trace, causal="exact") == MHA_EXACT


@pytest.mark.parametrize("mask", [
    torch.zeros(8, 8),                                 # attends everywhere
    torch.ones(8, 8, dtype=torch.bool).tril(),         # SDPA's meaning of a causal mask: for MHA, its opposite
    _float_causal(8).T.contiguous(),                   # anti-causal
])
@pytest.mark.parametrize("trace", TRACES)
def test_mha_other_masks_stay_dense(mask: torch.Tensor, trace: str) -> None:
    if mask.dtype == torch.bool:
        mask = mask & ~torch.eye(8, dtype=torch.bool)  # keep every row attending somewhere
    exact = total(_BufferMask(mask), meta(1, 8, 16), convention="default", trace=trace, causal="exact")
    assert exact == MHA_DENSE


@pytest.mark.parametrize("trace,why", [("symbolic", r"attribute 'mask', which is on the meta device"),
                                       ("export", r"parameters, buffers or constants without data")])
def test_meta_mask_counts_dense_and_warns(trace: str, why: str) -> None:
    with pytest.warns(fxflops.CausalMaskWarning, match=rf"1 attention node\(s\).*{why}"):
        exact = total(_BufferMask(_float_causal(8), device="meta"), meta(1, 8, 16), convention="default",
                      trace=trace, causal="exact")
    assert exact == MHA_DENSE


class _SdpaMask(nn.Module):
    def forward(self, q: torch.Tensor) -> torch.Tensor:
        keep = torch.ones(16, 16, dtype=torch.bool, device=q.device).tril()  # SDPA: True = attended
        return F.scaled_dot_product_attention(q, q, q, attn_mask=keep)


@pytest.mark.parametrize("trace", TRACES)
def test_sdpa_recognises_a_boolean_causal_mask(trace: str) -> None:
    q = meta(1, 2, 16, 8)
    # B=1, H=2, L=S=16, E=Ev=8: 2*1*2*16*16*(8+8) = 16384 dense; 136 of 256 entries: 2*2*136*16 = 8704
    assert total(_SdpaMask(), q, convention="default", trace=trace) == 16384
    assert total(_SdpaMask(), q, convention="default", trace=trace, causal="exact") == 8704


def test_open_clip_text_tower_causal_exact(vit_b_16: nn.Module) -> None:
    image, text = meta(1, 3, 224, 224), meta(1, 77, dtype=torch.long)
    result = fxflops.count(vit_b_16, (image, text), causal="exact")
    # the text tower's attention core, 12 layers, width 512, 77 tokens: dense 12 * 2*2*77*77*512
    # = 145,711,104; its causal mask keeps 77*78/2 = 3003 entries: 12 * 2*2*3003*512 = 73,801,728
    assert result.module("text") == 5_959_540_736 - 145_711_104 + 73_801_728
    # the image tower has no mask: 35,126,906,880 as dense
    assert result.module("visual") == 35_126_906_880
    # torch.export sees the buffer on a meta clone; its data comes from the model: the same figure
    exported = fxflops.count(vit_b_16, text, method="encode_text", trace="export", causal="exact")
    assert exported.total == 5_959_540_736 - 145_711_104 + 73_801_728

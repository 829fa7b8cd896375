"""FLOPs as formulas: symbolic batch size and sequence length (issue 8)."""

from __future__ import annotations

from typing import Any

import pytest
import sympy
import torch
from flop_testing import meta
from torch import nn

import fxflops
from fxflops.report import FlopReport
from fxflops.symbolic import NotPolynomialError

L, B = sympy.symbols("L B", integer=True, positive=True)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(32, 96)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return torch.softmax(q @ k.transpose(-1, -2), -1) @ v


def test_sequence_length_as_a_symbol() -> None:
    report = fxflops.count(Attention(), meta(2, 10, 32), dynamic={0: {1: "L"}})
    # qkv: 2 * 2*L * 32 * 96 = 12288*L; scores and values: 2 * (2 * 2*L*L*32) = 256*L**2
    assert sympy.expand(report.total - (256 * L**2 + 12288 * L)) == 0
    assert report.formula() == "256*L**2 + 12288*L"
    assert report.symbols == ["L"]
    concrete = fxflops.count(Attention(), meta(2, 10, 32))
    # at L = 10: 256*100 + 12288*10 = 148,480
    assert report.evaluate(L=10).total == concrete.total == 148_480
    assert report.at(L=10).by_module() == concrete.by_module()


def test_symbolic_report_json_and_table() -> None:
    report = fxflops.count(Attention(), meta(2, 10, 32), dynamic={0: {0: "B", 1: "L"}})
    # the per-batch-row cost times B: B * (128*L**2 + 6144*L)
    assert report.formula() == "128*B*L**2 + 6144*B*L"
    data = report.to_dict()
    assert data["total"] == "128*B*L**2 + 6144*B*L" and data["symbols"] == ["B", "L"]
    again = FlopReport.from_json(report.to_json())
    # B = 3, L = 7: 128*3*49 + 6144*3*7 = 18,816 + 129,024
    assert again.evaluate(B=3, L=7).total == report.evaluate(B=3, L=7).total == 147_840
    assert "128*B*L**2 + 6144*B*L" in report.table(depth=1)
    with pytest.raises(ValueError, match="missing: L"):
        report.evaluate(B=3)


def test_gpt2_formula() -> None:
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model("gpt2")).eval()
    report = fxflops.count(model, meta(1, 128, dtype=torch.long),
                           dynamic={0: {1: "L"}})
    # linear per token: 2 * (12 * (768*2304 + 768*768 + 2*768*3072) + 768*50257) = 247,064,064
    # attention: 12 layers * 2 matmuls * 2 * L*L*768 = 36,864 * L**2
    assert report.formula() == "36864*L**2 + 247064064*L"
    # at L = 128: 36,864 * 16,384 + 247,064,064 * 128, the concrete count (test_fallback.py)
    assert report.evaluate(L=128).total == 32_228_179_968


def test_open_clip_text_tower_in_batch(vit_b_16: nn.Module) -> None:
    report = fxflops.count(vit_b_16.text, meta(1, 77, dtype=torch.long), dynamic={0: {0: "B"}})
    # the text tower costs 5,959,540,736 FLOPs per sequence (openclip.md, section 3)
    assert report.formula() == "5959540736*B"


class Halving(nn.Module):
    """Its cost is not a polynomial in L: it loops log2(L) times."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while x.shape[1] > 1:
            x = self.proj(x[:, : x.shape[1] // 2])
        return x


def test_cost_that_is_not_a_polynomial_is_refused() -> None:
    with pytest.raises(NotPolynomialError, match="not a polynomial in L"):
        fxflops.count(Halving(), meta(1, 16, 8), dynamic={0: {1: "L"}})
    # at a concrete size it counts: L = 16 halves to 8, 4, 2, 1: 2 * 8 * 8 * (8 + 4 + 2 + 1)
    assert fxflops.count(Halving(), meta(1, 16, 8)).total == 1_920


def test_gpt2_causal_exact_follows_kaplan() -> None:
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model("gpt2")).eval()
    report = fxflops.count(model, meta(1, 128, dtype=torch.long),
                           dynamic={0: {1: "L"}}, causal="exact")
    # GPT-2 passes its causal mask as a tensor; fxflops evaluates it (it depends on sizes only) and
    # finds torch's top-left causal mask. Per layer, query i attends to i + 1 keys:
    # sum_{i<L} (i + 1) = L(L+1)/2 scores, each 2 * (64 + 64) FLOPs per head for QK^T and AV:
    # 12 layers * 12 heads * 2 * 128 * L(L+1)/2 = 18432*L**2 + 18432*L.
    # Kaplan et al. (2020): attention costs 2 * n_layer * n_ctx * d_attn per token, i.e.
    # 2 * 12 * L * 768 * L = 18432 * L**2 over L tokens: the same quadratic term.
    assert report.formula() == "18432*L**2 + 247082496*L"
    # 247,064,064*L (linear) + 18,432*L (the causal diagonal)
    assert report.evaluate(L=128).total == 31_928_549_376


def test_masks_that_are_not_causal_stay_dense() -> None:
    class Masked(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            keep = torch.ones(q.shape[-2], q.shape[-2], dtype=torch.bool, device=q.device)
            return torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=keep)

    report = fxflops.count(Masked(), meta(1, 2, 16, 8), trace="export", causal="exact")
    # an all-true mask keeps every score: dense 2 * 1*2 * 16*16 * (8 + 8)
    assert report.total == 16_384


def test_a_tril_mask_counts_as_causal() -> None:
    class Tril(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            keep = torch.ones(q.shape[-2], q.shape[-2], dtype=torch.bool, device=q.device).tril()
            return torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=keep)

    report = fxflops.count(Tril(), meta(1, 2, 16, 8), trace="export", causal="exact")
    # 2 * 1*2 * 136 * (8 + 8): 136 = 16*17/2 kept scores per head
    assert report.total == 8_704
    # dense by default: 2 * 1*2 * 16*16 * (8 + 8)
    assert fxflops.count(Tril(), meta(1, 2, 16, 8), trace="export").total == 16_384


def test_evaluate_refuses_sizes_that_are_not_positive_integers() -> None:
    report = fxflops.count(nn.Linear(8, 4), meta(3, 8), dynamic={0: {0: "B"}})
    # 2 * B * 8 * 4 = 64 * B
    assert report.evaluate(B=2).total == 128
    for bad in (-1, 0, 2.5, True):
        with pytest.raises(ValueError, match="sizes are positive integers"):
            report.evaluate(B=bad)


def test_a_rule_returning_a_cost_gets_macs_in_the_users_symbols() -> None:
    def fused(ctx: Any) -> Any:
        return fxflops.Cost(matmul=2 * ctx.output_numel * 32, extra=ctx.output_numel)

    # dynamic= counts through torch.export: the rule is the aten op's
    rules = {torch.ops.aten.linear.default: fused, torch.ops.aten.addmm.default: fused}
    report = fxflops.count(nn.Linear(32, 16), meta(2, 10, 32), dynamic={0: {1: "L"}}, rules=rules)
    # FLOPs 2 * (2*L*16) * 32 + 2*L*16 = 2080 L; MACs half the matmul part alone: 1024 L
    assert sympy.expand(report.total - 2080 * L) == 0
    assert sympy.expand(report.macs - 1024 * L) == 0

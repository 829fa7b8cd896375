"""fxflops pinned to the published LLM FLOP accounting (../shared/reference/llm-formulas.md), each
with its derivation: Megatron's per-layer formula for GPT-2, PaLM's 6N + 12LHQT for LLaMA-3-8B, and
the causal half that ``causal="exact"`` leaves out. The models are built from configs on the meta
device and counted with their default call.
"""

from __future__ import annotations

import pytest
import torch

import fxflops

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def gpt2() -> torch.nn.Module:
    with torch.device("meta"):
        return transformers.GPT2LMHeadModel(transformers.GPT2Config())


@pytest.fixture(scope="module")
def llama3_8b() -> torch.nn.Module:
    config = transformers.LlamaConfig(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0)
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(config)


def test_gpt2_forward_is_megatrons_formula(gpt2: torch.nn.Module) -> None:
    ids = torch.zeros(1, 1024, dtype=torch.long, device="meta")
    # Megatron (Narayanan et al. 2021), B=1, s=1024, h=768, l=12, V=50257:
    # l * (24*B*s*h^2 + 4*B*s^2*h) + 2*B*s*h*V
    # = 12 * (14,495,514,624 + 3,221,225,472) + 79,047,426,048 = 291,648,307,200
    assert 12 * (24 * 1024 * 768**2 + 4 * 1024**2 * 768) + 2 * 1024 * 768 * 50257 == 291_648_307_200
    assert fxflops.count(gpt2, ids).total == 291_648_307_200


def test_gpt2_training_is_megatrons_formula(gpt2: torch.nn.Module) -> None:
    ids = torch.zeros(1, 1024, dtype=torch.long, device="meta")
    # Megatron's forward + backward: 72*B*s*l*h^2 * (1 + s/(6h) + V/(12*l*h)), 3x the forward:
    # 72 * 1024 * 12 * 768^2 * (1 + 1024/4608 + 50257/110592) = 874,944,921,600
    assert 3 * 291_648_307_200 == 874_944_921_600
    assert fxflops.count(gpt2, ids, backward=True).total == 874_944_921_600


def test_llama3_8b_training_per_token_is_palms_6n_plus_12lhqt(llama3_8b: torch.nn.Module) -> None:
    tokens = 8192
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    report = fxflops.count(llama3_8b, ids, backward=True)
    params = sum(p.numel() for p in llama3_8b.parameters())
    embedding = llama3_8b.model.embed_tokens.weight.numel()
    norms = sum(p.numel() for name, p in llama3_8b.named_parameters() if "norm" in name)
    # N = 8,030,261,248 - 525,336,576 (input embedding: a lookup, no FLOPs) = 7,504,924,672;
    # L=32 layers, H=32 heads, Q=128 head dim, T=8192: 12*L*H*Q*T = 12,884,901,888 per token
    n = params - embedding
    assert n == 7_504_924_672
    palm = tokens * (6 * n + 12 * 32 * 32 * 128 * tokens)
    assert palm == 474_435_173_744_640
    assert report.total == pytest.approx(palm, rel=1e-4)
    # The residual is exactly PaLM's 6 FLOPs per norm weight per token: N counts the 266,240 RMSNorm
    # weights (65 norms x 4096), which are multiplies, not matmul weights.
    assert norms == 65 * 4096
    assert palm - report.total == 6 * norms * tokens == 13_086_228_480


def test_causal_exact_drops_exactly_the_masked_half(llama3_8b: torch.nn.Module) -> None:
    tokens = 8192
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    dense = fxflops.count(llama3_8b, ids).total
    exact = fxflops.count(llama3_8b, ids, causal="exact").total
    # Per layer and head, QK^T and AV cost 2*Q FLOPs per score entry each; the causal mask keeps
    # T(T+1)/2 of the T^2 entries: 32 layers * 32 heads * 2 products * 2 * 128 * (T^2 - T(T+1)/2)
    masked = 32 * 32 * 2 * 2 * 128 * (tokens**2 - tokens * (tokens + 1) // 2)
    assert masked == 17_590_038_560_768
    assert dense - exact == masked


def test_compare_formulas_explains_each_difference_by_term(gpt2: torch.nn.Module) -> None:
    report = fxflops.count(gpt2, torch.zeros(1, 1024, dtype=torch.long, device="meta"))
    comparison = fxflops.compare_formulas(report, gpt2.config)
    # exact: weights 2*T*(12 layers * 7,077,888 matrix weights) = 173,946,175,488; attention 4*L*T^2*d
    # = 38,654,705,664; LM head 2*T*d*V = 79,047,426,048
    assert comparison.exact == {"weights": 173_946_175_488, "attention": 38_654_705_664,
                                "lm_head": 79_047_426_048, "other": 0}
    differences = {e.name.split(" ")[0]: {k: v for k, v in e.difference.items() if v} for e in comparison.estimates}
    # Megatron's formula is this model's exact count
    assert differences["Megatron"] == {}
    # Kaplan: N holds the 121,344 bias and norm weights (12 * 9,984 + 1,536): 2*T*121,344 = 248,512,512
    # more; attention at 2*L*T*d_attn per token is half the exact 38,654,705,664; the tied head is not in N
    assert differences["Kaplan"] == {"weights": 2 * 1024 * 121_344, "attention": -19_327_352_832,
                                     "lm_head": -79_047_426_048}
    # PaLM / torchtitan: N also holds the 786,432 position embeddings: 2*T*(121,344 + 786,432)
    assert differences["PaLM"] == {"weights": 2 * 1024 * 907_776, "lm_head": -79_047_426_048}
    # Chinchilla: the input embedding as a matmul 2*T*V*d = 79,047,426,048, and the softmax
    # 3*H*T^2*L = 452,984,832
    assert differences["Chinchilla"] == {"other": 79_047_426_048 + 452_984_832}
    assert "Megatron (24 T d^2 + 4 T^2 d per layer, + 2 T d V)  291,648,307,200      +0.00%  -" in comparison.table()


def test_compare_formulas_for_training_are_three_forwards(llama3_8b: torch.nn.Module) -> None:
    report = fxflops.count(llama3_8b, torch.zeros(1, 8192, dtype=torch.long, device="meta"), backward=True)
    palm = next(e for e in fxflops.compare_formulas(report, llama3_8b.config).estimates if e.name.startswith("PaLM"))
    # 6N + 12LHQT: only the 6 FLOPs per norm weight per token differ (see the test above)
    assert palm.total == 474_435_173_744_640
    assert {k: v for k, v in palm.difference.items() if v} == {"weights": 13_086_228_480}


def test_hardware_flops_add_what_training_recomputes(gpt2: torch.nn.Module) -> None:
    report = fxflops.count(gpt2, torch.zeros(1, 1024, dtype=torch.long, device="meta"), backward=True)
    # forward + backward 874,944,921,600 (above); attention forward 4 * 12 * 1024^2 * 768 = 38,654,705,664
    # a fused attention backward recomputes QK^T: + 19,327,352,832
    assert fxflops.hardware_flops(report) == 874_944_921_600 + 19_327_352_832
    # selective recomputation runs the attention core again: + 38,654,705,664 more
    assert fxflops.hardware_flops(report, "selective") == 874_944_921_600 + 19_327_352_832 + 38_654_705_664
    # full recomputation runs the whole forward again: + 291,648,307,200
    assert fxflops.hardware_flops(report, "full") == 874_944_921_600 + 19_327_352_832 + 291_648_307_200
    # HFU over MFU is hardware over model FLOPs: 894,272,274,432 / 874,944,921,600
    ratio = fxflops.hfu(report, 100, "h100") / fxflops.mfu(report, 100, "h100")
    assert ratio == pytest.approx(894_272_274_432 / 874_944_921_600)
    with pytest.raises(ValueError, match=r"^hardware FLOPs are a training step's: count with backward=True$"):
        fxflops.hardware_flops(fxflops.count(gpt2, torch.zeros(1, 8, dtype=torch.long, device="meta")))

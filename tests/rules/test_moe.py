"""Mixture-of-experts: the grouped matmuls of Hugging Face's default experts implementation.

The reference is what the eager per-expert loop costs (``_experts_implementation="eager"``),
counted by FlopCounterMode on the CPU with real weights and math SDPA; fxflops counts the
default (grouped) implementation on the meta device, where FlopCounterMode sees no grouped GEMM.
"""

from __future__ import annotations

import pytest
import torch
from flop_testing import meta
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import fxflops

transformers = pytest.importorskip("transformers")

SMALL = {"vocab_size": 128, "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4,
         "num_experts": 4, "n_routed_experts": 4, "num_experts_per_tok": 2, "head_dim": 16,
         "shared_expert_intermediate_size": 64, "max_position_embeddings": 64, "first_k_dense_replace": 1,
         "n_group": 1, "topk_group": 1, "kv_lora_rank": 16, "q_lora_rank": 32, "qk_rope_head_dim": 8,
         "qk_nope_head_dim": 8, "v_head_dim": 16, "n_shared_experts": 1}


#: Where SMALL leaves a family without attention or experts in 2 layers, or with a rotary size
#: that does not fit its heads.
FAMILY = {"jamba": {"attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2,
                    "expert_layer_offset": 1},
          "qwen3_next": {"full_attention_interval": 2, "decoder_sparse_step": 1},
          "deepseek_v3": {"head_dim": 8}}


def _build(model_type: str, experts: str | None = None) -> torch.nn.Module:
    config = transformers.AutoConfig.for_model(model_type, **{**SMALL, **FAMILY.get(model_type, {})})
    if experts is not None:
        config._experts_implementation = experts
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def _eager_reference(model_type: str) -> int:
    model = _build(model_type, "eager")
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(torch.randint(0, 128, (1, 16)))
    return counter.get_total_flops()


def test_mixtral_grouped_experts_count_what_the_eager_loop_does() -> None:
    model = _build("mixtral").to("meta")
    report = fxflops.count(model, meta(1, 16, dtype=torch.long))
    # Per layer at L = 16, d = 64, 4 heads of 16 (2 key/value heads), 4 experts of 128, top-2:
    #   q, o 2 * 16 * 64 * 64 * 2 = 262,144; k, v 2 * 16 * 64 * 32 * 2 = 131,072
    #   scores and values 2 * (2 * 4 * 16 * 16 * 16) = 65,536; router 2 * 16 * 64 * 4 = 8,192
    #   experts: 16 * 2 = 32 (token, expert) rows; gate_up 2 * 32 * 64 * 256 = 1,048,576,
    #   down 2 * 32 * 128 * 64 = 524,288
    #   layer: 262,144 + 131,072 + 65,536 + 8,192 + 1,048,576 + 524,288 = 2,039,808
    # 2 layers + lm_head 2 * 16 * 64 * 128 = 262,144: 4,341,760
    assert report.total == 4_341_760
    assert report.total == _eager_reference("mixtral")
    assert report.uncounted == []
    grouped = [r for r in report.nodes if r.target == "torch._grouped_mm"]
    # two grouped GEMMs per layer: 1,048,576 + 524,288
    assert [r.flops for r in grouped] == [1_048_576, 524_288] * 2


MOE_FAMILIES = ["qwen2_moe", "qwen3_moe", "olmoe", "gpt_oss", "deepseek_v2", "deepseek_v3", "jamba", "minimax",
                "hunyuan_v1_moe", "glm4_moe", "granitemoe", "phimoe", "ernie4_5_moe", "qwen3_next", "dots1"]


@pytest.mark.parametrize("model_type", MOE_FAMILIES)
def test_moe_families_on_meta_equal_their_eager_loop(model_type: str) -> None:
    model = _build(model_type).to("meta")
    report = fxflops.count(model, meta(1, 16, dtype=torch.long))
    assert report.uncounted == []
    reference = _eager_reference(model_type)
    assert report.total == reference
    # The eager loop itself on meta: its per-expert rows rest on the uniform routing assumption
    # (fxflops.routing), and a top-k MoE costs the same under any routing.
    eager = fxflops.count(_build(model_type, "eager").to("meta"), meta(1, 16, dtype=torch.long))
    assert (eager.total, eager.uncounted) == (reference, [])
    assert eager.routing == "uniform"


def test_by_role_separates_experts_attention_dense_and_the_lm_head() -> None:
    report = fxflops.count(_build("mixtral").to("meta"), meta(1, 16, dtype=torch.long))
    # per layer (test_mixtral_grouped_experts_count_what_the_eager_loop_does): experts 1,048,576 + 524,288;
    # attention 262,144 + 131,072 + 65,536; router (dense) 8,192; times 2 layers; lm_head 262,144
    assert report.by_role() == {"expert": 3_145_728, "attention": 917_504, "dense": 16_384, "lm_head": 262_144}
    assert sum(report.by_role().values()) == report.total == 4_341_760


def test_mixtral_8x7b_total_and_active_parameters() -> None:
    from fxflops.params import parameter_count

    with torch.device("meta"):
        model = transformers.MixtralForCausalLM(transformers.MixtralConfig())  # Mixtral 8x7B's shape
    counted = parameter_count(model)
    # experts: 32 layers * 8 experts * 3 matrices * 4096 * 14336 = 45,097,156,608
    assert counted.expert == 32 * 8 * 3 * 4096 * 14336 == 45_097_156_608
    # a token uses 2 of 8: active = 46,702,792,704 - 45,097,156,608 * 6/8 = 12,879,925,248
    assert counted.total == 46_702_792_704
    assert counted.active == 46_702_792_704 - 45_097_156_608 * 6 // 8 == 12_879_925_248
    assert counted.describe() == "46.70 B (active 12.88 B per token: 2 of 8 experts)"


def test_reports_state_active_parameters_of_moe_models_only() -> None:
    moe = _build("mixtral")
    ids = torch.zeros(1, 16, dtype=torch.long, device="meta")
    report = fxflops.count(moe, ids)
    expert = sum(p.numel() for name, p in moe.named_parameters() if ".experts." in name)
    # 4 experts, top-2: half of the expert parameters are idle for a token
    assert report.active_params == report.params - expert // 2
    assert fxflops.FlopReport.from_json(report.to_json()).active_params == report.active_params
    with torch.device("meta"):
        dense = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{
            k: SMALL[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                  "num_attention_heads", "num_key_value_heads")}))
    assert fxflops.count(dense, ids).active_params is None


def test_grouped_experts_backward_counts_both_gradients() -> None:
    model = _build("mixtral").to("meta")
    report = fxflops.count(model, meta(1, 16, dtype=torch.long), backward=True)
    grouped = [r for r in report.nodes if r.target == "torch._grouped_mm"]
    # each grouped GEMM's backward: F for the tokens' gradient, F for the experts' weights
    assert [r.backward_flops for r in grouped] == [2 * 1_048_576, 2 * 524_288] * 2
    eager = _build("mixtral", "eager")
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        eager(torch.randint(0, 128, (1, 16))).logits.sum().backward()
    # forward 4,341,760; backward 2,392,064 outside the experts + 2 * 2 * 1,572,864 = 6,291,456 in them
    assert report.total == 13_025_280 == counter.get_total_flops()

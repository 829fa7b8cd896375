"""Shapes that depend on a router's choice: ``routing="uniform"`` on meta, ``routing="data"`` on real data.

References are FlopCounterMode around a real forward on the CPU with math SDPA (it counts the real
routing); fxflops' uniform counts are checked against hand arithmetic.
"""

from __future__ import annotations

import pytest
import torch
from flop_testing import meta
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import fxflops
from fxflops.routing import _round_robin

transformers = pytest.importorskip("transformers")


def _reference(model: nn.Module, *args: torch.Tensor, **kwargs: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        model(*args, **kwargs)
    return counter.get_total_flops()


def _eager_mixtral(device: str = "cpu") -> nn.Module:
    config = transformers.MixtralConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=64)
    config._experts_implementation = "eager"  # the per-expert loop: torch.where over the router's choice
    torch.manual_seed(0)
    with torch.device(device):
        return transformers.MixtralForCausalLM(config).eval()


def _switch(device: str = "cpu") -> nn.Module:
    # Capacity 3 per expert: with 8 encoder tokens over 4 experts, a real router can drop tokens.
    config = transformers.SwitchTransformersConfig(
        vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        num_experts=4, expert_capacity=3, num_sparse_encoder_layers=1, num_sparse_decoder_layers=1)
    torch.manual_seed(0)
    with torch.device(device):
        return transformers.SwitchTransformersForConditionalGeneration(config).eval()


def _expert_flops(report: fxflops.FlopReport) -> int:
    return sum(r.flops for r in report.nodes if ".experts." in r.module + ".")


def test_round_robin_gives_each_token_distinct_choices_and_each_expert_its_share() -> None:
    # 6 tokens choosing 2 of 4 experts: rows (0,1) (2,3) (0,1) (2,3) (0,1) (2,3)
    indices = _round_robin((6, 2), -1, 4)
    assert indices.tolist() == [[0, 1], [2, 3], [0, 1], [2, 3], [0, 1], [2, 3]]
    # 6 * 2 / 4 = 3 (token, expert) pairs per expert
    assert torch.bincount(indices.flatten(), minlength=4).tolist() == [3, 3, 3, 3]


def test_eager_expert_loop_counts_on_meta_under_the_uniform_assumption() -> None:
    report = fxflops.count(_eager_mixtral("meta"), meta(1, 16, dtype=torch.long))
    # The same arithmetic as the grouped implementation (tests/rules/test_moe.py): per layer
    #   attention 262,144 + 131,072 + 65,536, router 8,192, experts 1,048,576 + 524,288 = 2,039,808;
    # 2 layers + lm_head 262,144 = 4,341,760. A top-k MoE without capacity costs this under any routing.
    assert report.total == 4_341_760
    assert report.routing == "uniform"
    assert report.uncounted == []
    # 16 tokens * top-2 / 4 experts = 8 rows per expert call, 4 experts, 2 layers
    rows = [r.input_shapes[0][0] for r in report.nodes if r.module.endswith("mlp.experts") and r.flops]
    assert rows == [8] * 16


def test_eager_expert_loop_with_real_weights_counts_the_real_routing() -> None:
    model = _eager_mixtral()
    ids = torch.randint(0, 128, (1, 16), generator=torch.Generator().manual_seed(1))
    report = fxflops.count(model, ids)
    # 4,341,760 as above: the real routing changes the rows per expert, not their sum
    assert report.total == 4_341_760 == _reference(model, ids)
    assert report.routing == "data"
    rows = [r.input_shapes[0][0] for r in report.nodes if r.module.endswith("mlp.experts") and r.flops]
    assert sum(rows) == 2 * 2 * 16 * 2  # 2 linears per expert call, 2 layers, 16 tokens, top-2


def test_capacity_limited_router_uniform_on_meta_and_real_on_data() -> None:
    ids = torch.randint(0, 128, (1, 8), generator=torch.Generator().manual_seed(0))
    decoder_ids = torch.randint(0, 128, (1, 4), generator=torch.Generator().manual_seed(1))
    inputs = {"input_ids": ids, "decoder_input_ids": decoder_ids}
    uniform = fxflops.count(_switch("meta"), kwargs=inputs)
    assert uniform.routing == "uniform"
    assert uniform.uncounted == []
    # One expert (32 -> 64 -> 32) costs 2 * 32 * 64 * 2 = 8,192 FLOPs per token. Uniform top-1 sends
    # 8 / 4 = 2 encoder tokens and 4 / 4 = 1 decoder token to each expert, within capacity 3: none
    # dropped, (8 + 4) * 8,192 = 98,304.
    assert _expert_flops(uniform) == 98_304

    model = _switch()
    real = fxflops.count(model, kwargs=inputs)
    assert real.routing == "data"
    assert real.total == _reference(model, **inputs)
    # This seed's router sends more than 3 encoder tokens to an expert: capacity drops some.
    assert _expert_flops(real) < 98_304
    assert _expert_flops(real) % 8_192 == 0
    # Everything but the experts is the same under either routing.
    assert uniform.total - _expert_flops(uniform) == real.total - _expert_flops(real)

    forced = fxflops.count(model, kwargs=inputs, routing="uniform")
    assert forced.total == uniform.total
    assert forced.routing == "uniform"


def test_reports_without_a_routed_shape_name_no_routing() -> None:
    report = fxflops.count(nn.Linear(8, 4), meta(2, 8))
    assert report.routing is None
    assert fxflops.FlopReport.from_json(report.to_json()).routing is None


def test_routing_is_written_to_json_and_the_summary() -> None:
    from fxflops.output import summary_lines

    report = fxflops.count(_eager_mixtral("meta"), meta(1, 4, dtype=torch.long))
    assert fxflops.FlopReport.from_json(report.to_json()).routing == "uniform"
    lines = summary_lines(report, spec="mixtral", inputs="(1, 4)")
    assert any(line.startswith("routing: uniform") for line in lines)


class _DropNegative(nn.Module):
    """Keeps the rows a linear layer scores positive: a shape that depends on weights and data."""

    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Linear(8, 1)
        self.proj = nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = self.score(x).squeeze(-1) > 0
        return self.proj(x[keep])


def test_value_dependent_shapes_count_with_the_data_and_leave_the_model_alone() -> None:
    torch.manual_seed(0)
    model = _DropNegative()
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = fxflops.count(model, x)
    kept = int((model.score(x).squeeze(-1) > 0).sum())
    # score 2 * 32 * 8 * 1 = 512; proj 2 * kept * 8 * 16 = 256 * kept
    assert report.total == 512 + 256 * kept == _reference(model, x)
    assert 0 < kept < 32
    assert report.routing == "data"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_routing_data_needs_real_weights_and_inputs() -> None:
    with pytest.raises(ValueError, match=r"routing='data'.*parameter 'score.weight' is on the meta device"):
        fxflops.count(_DropNegative().to("meta"), torch.randn(4, 8), routing="data")
    with pytest.raises(ValueError, match=r"an input of shape \(4, 8\) is on the meta device"):
        fxflops.count(_DropNegative(), meta(4, 8), routing="data")
    with pytest.raises(ValueError, match="routing must be one of auto, uniform, data, got 'real'"):
        fxflops.count(_DropNegative(), torch.randn(4, 8), routing="real")


def test_in_place_writes_in_forward_leave_the_parameters_alone() -> None:
    class Writes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(4, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                self.w.mul_(2)  # a forward that rescales its own weight
            y = x @ self.w
            return y[y.sum(-1) > 0]

    model = Writes()
    report = fxflops.count(model, torch.ones(3, 4), routing="data")
    # x @ w: 2 * 3 * 4 * 4 = 96
    assert report.total == 96
    assert torch.equal(model.w, torch.ones(4, 4))


def test_generation_through_an_eager_expert_loop_equals_flop_counter_mode_around_generate() -> None:
    model = _eager_mixtral()
    ids = torch.randint(0, 128, (1, 6), generator=torch.Generator().manual_seed(3))
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        model.generate(ids, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    report = fxflops.count_generation(_eager_mixtral("meta"), ids.to("meta"), new_tokens=3)
    # top-2 without capacity: every (token, expert) pair costs the same, so the uniform
    # assumption gives the real routing's count, step by step
    assert report.total == counter.get_total_flops()
    assert report.prefill.routing == "uniform"


class _SampledLength(nn.Module):
    """Keeps a random number of rows, as VITS samples its durations from noise."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = int(torch.randint(1, x.shape[0] + 1, ()))
        return self.proj(x[:keep])


def test_random_shapes_follow_the_callers_random_stream_and_leave_it_where_it_was() -> None:
    model, x = _SampledLength(), torch.randn(64, 8)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    report = fxflops.count(model, x)
    assert torch.equal(torch.get_rng_state(), state)  # counting drew nothing from the user's stream
    kept = int(torch.randint(1, 65, ()))  # what the forward draws next from this state
    # proj: 2 * kept * 8 * 8 = 128 * kept
    assert report.total == 128 * kept
    torch.manual_seed(5)
    assert report.total == _reference(model, x)

"""The run-on-meta front end (fxflops.recorder): Hugging Face models with their default calls,
repeated blocks counted once, known values, threads, and models left exactly as they were."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from flop_testing import meta
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

import fxflops
from fxflops import RuleError, TraceError

transformers = pytest.importorskip("transformers")


def _flop_counter_mode(model: nn.Module, *args: Any, **kwargs: Any) -> int:
    """FlopCounterMode on the meta device: the fairest peer (no arithmetic, autograd on)."""
    with FlopCounterMode(display=False) as counter, torch.device("meta"):
        model(*args, **kwargs)
    return counter.get_total_flops()


def _tiny_llama(layers: int = 2) -> nn.Module:
    config = transformers.LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(config).eval()


# Per layer at L = 16 tokens, d = 64, 4 heads of 16 (2 key/value heads), MLP 128:
#   q, o: 2 * 16 * 64 * 64 = 131,072 each; k, v: 2 * 16 * 64 * 32 = 65,536 each
#   gate, up, down: 3 * 2 * 16 * 64 * 128 = 786,432
#   scores and values: 2 * (2 * 4 * 16 * 16 * 16) = 65,536
#   layer: 131,072 * 2 + 65,536 * 2 + 786,432 + 65,536 = 1,245,184
# lm_head: 2 * 16 * 64 * 128 = 262,144
LLAMA_LAYER = 1_245_184
LLAMA_HEAD = 262_144


def test_llama_counts_with_its_default_call() -> None:
    model = _tiny_llama()
    ids = meta(1, 16, dtype=torch.long)
    report = fxflops.count(model, ids)  # use_cache defaults to True: a DynamicCache comes out
    # 2 layers * 1,245,184 + 262,144
    assert report.total == 2_752_512 == 2 * LLAMA_LAYER + LLAMA_HEAD
    assert report.total == _flop_counter_mode(model, ids)
    assert report.trace == "run" and report.uncounted == []
    assert report.by_module(depth=3)["model.layers.1"] == LLAMA_LAYER
    # every record names the Hugging Face source line that made it
    q_proj = next(r for r in report.nodes if r.module == "model.layers.0.self_attn.q_proj")
    assert q_proj.target == "torch.nn.Linear" and "modeling_llama.py" in q_proj.source


def test_repeated_blocks_are_counted_once_and_never_change_a_count() -> None:
    model = _tiny_llama(layers=6)
    ids = meta(1, 16, dtype=torch.long)
    reused = fxflops.count(model, ids)
    every = fxflops.count(model, ids, reuse_blocks=False)
    # 6 layers * 1,245,184 + 262,144
    assert reused.total == every.total == 7_733_248
    assert [(r.module, r.target, r.flops) for r in reused.nodes] == [(r.module, r.target, r.flops) for r in every.nodes]
    assert len({r.name for r in reused.nodes}) == len(reused.nodes)  # names stay unique


def test_layer_number_attributes_do_not_split_blocks_but_real_differences_do() -> None:
    class Block(nn.Module):
        def __init__(self, width: int, layer_idx: int) -> None:
            super().__init__()
            self.layer_idx = layer_idx
            self.proj = nn.Linear(8, width)
            self.back = nn.Linear(width, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > 0:  # a branch on a size: torch.fx cannot trace the model
                return self.back(self.proj(x))
            return x

    class Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([Block(16, 0), Block(16, 1), Block(32, 2)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks:
                x = block(x)
            return x

    report = fxflops.count(Stack(), meta(2, 8))
    # width 16: 2 * 2 * 8 * 16 * 2 = 1,024 twice; width 32: 2 * 2 * 8 * 32 * 2 = 2,048
    assert report.by_module(depth=2) == {"": 4_096, "blocks": 4_096, "blocks.0": 1_024, "blocks.1": 1_024,
                                         "blocks.2": 2_048}


def test_encoder_decoder_with_defaults_equals_flop_counter_mode() -> None:
    config = transformers.T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                                   num_heads=4, decoder_start_token_id=0)
    with torch.device("meta"):
        model = transformers.T5ForConditionalGeneration(config).eval()
    ids, decoder_ids = meta(1, 12, dtype=torch.long), meta(1, 5, dtype=torch.long)
    report = fxflops.count(model, ids, kwargs={"decoder_input_ids": decoder_ids})
    # encoder layer at 12 tokens: q, k, v, o 4 * 2 * 12 * 32 * 32 = 98,304; scores and values
    #   2 * (2 * 4 * 12 * 12 * 8) = 18,432; FF 2 * 2 * 12 * 32 * 64 = 98,304 -> 215,040
    # decoder layer at 5 tokens: self-attention 4 * 2 * 5 * 32 * 32 = 40,960 + 2 * (2 * 4 * 5 * 5 * 8) = 3,200;
    #   cross-attention q, o 2 * 2 * 5 * 32 * 32 = 20,480, k, v 2 * 2 * 12 * 32 * 32 = 49,152,
    #   scores and values 2 * (2 * 4 * 5 * 12 * 8) = 7,680; FF 2 * 2 * 5 * 32 * 64 = 40,960 -> 162,432
    # lm_head: 2 * 5 * 32 * 64 = 20,480
    # total: 2 * 215,040 + 2 * 162,432 + 20,480 = 775,424
    assert report.total == 775_424
    assert report.total == _flop_counter_mode(model, ids, decoder_input_ids=decoder_ids)
    assert report.uncounted == []


def test_state_space_model_with_defaults_equals_flop_counter_mode() -> None:
    config = transformers.MambaConfig(vocab_size=64, hidden_size=32, state_size=4, num_hidden_layers=2,
                                      intermediate_size=64, conv_kernel=4, time_step_rank=4)
    with torch.device("meta"):
        model = transformers.MambaForCausalLM(config).eval()
    ids = meta(1, 10, dtype=torch.long)
    report = fxflops.count(model, ids)
    # per layer at 10 tokens: in_proj 2 * 10 * 32 * 128 = 81,920; x_proj 2 * 10 * 64 * (4 + 2 * 4) = 15,360;
    #   dt_proj 2 * 10 * 4 * 64 = 5,120; out_proj 2 * 10 * 64 * 32 = 40,960; depthwise conv
    #   2 * 64 * 4 * 13 (10 + 3 padded outputs) = 6,656 -> 150,016;
    #   the selective scan's matmuls 2 * (10 * 64 * 4) = 5,120 -> 155,136
    # lm_head: 2 * 10 * 32 * 64 = 40,960; total 2 * 155,136 + 40,960 = 351,232
    assert report.total == _flop_counter_mode(model, ids)
    assert report.total == 351_232
    assert report.uncounted == []


def test_known_values_answer_questions_about_positions() -> None:
    class Positions(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            positions = torch.arange(x.shape[0])
            if (positions[-1] == x.shape[0] - 1).all():  # a value, computed from sizes only
                return self.proj(x)
            return x

    # 2 * 4 * 8 * 8 = 512: the branch needs the value of an arange, which is known
    assert fxflops.count(Positions(), meta(4, 8)).total == 512


def test_real_inputs_are_counted_with_their_data() -> None:
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.proj(x[mask])  # as many rows as the mask keeps

    mask = torch.tensor([True, False, True, True, False])
    # 3 rows kept: 2 * 3 * 8 * 8 = 384
    assert fxflops.count(Gate(), (meta(5, 8), mask)).total == 384


def test_sizes_read_from_a_real_grid_reach_calls_that_take_numbers() -> None:
    """HunYuan-VL's patch embedding: ``for t, h, w in grid_thw: F.interpolate(pos, size=(h, w))``.
    The sizes are 0-d tensors with known values; interpolate reads them with ``int()``."""

    class GridPositions(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.grid = nn.Parameter(torch.zeros(1, 4, 2, 2))
            self.proj = nn.Linear(4, 2)

        def forward(self, grid_thw: torch.Tensor) -> torch.Tensor:
            out = []
            for t, h, w in grid_thw:
                pos = F.interpolate(self.grid, size=(h, w), mode="nearest")
                out.append(pos.flatten(2).transpose(1, 2).repeat(t, 1, 1))
            return self.proj(torch.cat(out, dim=1))

    with torch.device("meta"):
        model = GridPositions()
    # grid [[1, 3, 5]]: 15 positions of 4 channels (nearest interpolation: 0 FLOPs, as in
    # FlopCounterMode); Linear 2 * 15 * 4 * 2 = 240
    assert fxflops.count(model, torch.tensor([[1, 3, 5]]), strict=True).total == 240


class Counting(nn.Module):
    """A forward with side effects on its own module: counting must not keep them."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps.add_(1)
        self.calls += 1
        self.last = x
        return self.proj(x)


@pytest.mark.parametrize("trace", ["symbolic", "run", "export"])
def test_counting_leaves_buffers_and_attributes_alone(trace: str) -> None:
    model = Counting()
    report = fxflops.count(model, meta(2, 4), trace=trace)
    # 2 * 2 * 4 * 4 = 64
    assert report.total == 64
    assert model.steps.item() == 0 and model.calls == 0 and not hasattr(model, "last")


def test_args_and_kwargs_forwards_are_counted() -> None:
    class Star(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 4)

        def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
            return self.proj(args[0]) + self.proj(kwargs["other"])

    report = fxflops.count(Star(), meta(3, 8), kwargs={"other": meta(3, 8)})
    # two calls of 2 * 3 * 8 * 4 = 192
    assert report.total == 384


def test_threads_count_what_a_sequential_count_does() -> None:
    model = _tiny_llama()
    ids = meta(1, 16, dtype=torch.long)
    expected = fxflops.count(model, ids).total
    results: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(fxflops.count(model, ids).total)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # 4 threads * 3 rounds, each 2,752,512 (test_llama_counts_with_its_default_call)
    assert results == [expected] * 12 and expected == 2_752_512


class Router(nn.Module):
    """Keeps the rows whose score is positive: its output size depends on the data."""

    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[self.score(x).squeeze(-1) > 0]


class Routed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.router = Router()
        self.expert = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expert(self.router(x))


def _router_flops(ctx: fxflops.NodeContext) -> int:
    """The score: 2 * rows * 8."""
    return 2 * ctx.args[0].shape[0] * 8


def _half_the_rows(ctx: fxflops.NodeContext) -> torch.Tensor:
    x = ctx.args[0]
    return torch.empty(x.shape[0] // 2, x.shape[1], device="meta")


@pytest.mark.parametrize("trace", ["symbolic", "run"])
def test_a_leaf_rule_gives_the_output_of_a_data_dependent_module(trace: str) -> None:
    with pytest.raises(TraceError):
        fxflops.count(Routed(), meta(6, 8), trace="run")
    rules = {Router: fxflops.registry.RuleEntry(_router_flops, "matmul", Router, output=_half_the_rows)}
    report = fxflops.count(Routed(), meta(6, 8), rules=rules, trace=trace)
    # router 2 * 6 * 8 = 96; the expert sees 3 of 6 rows: 2 * 3 * 8 * 8 = 384
    assert report.by_module() == {"": 480, "router": 96, "expert": 384}


@pytest.mark.parametrize("bad", [-5, 1.5, True, "12"])
@pytest.mark.parametrize("trace", ["symbolic", "run", "export"])
def test_every_front_end_refuses_a_bad_rule_result(trace: str, bad: Any) -> None:
    def bad_rule(ctx: fxflops.NodeContext) -> Any:
        return bad

    rules = {nn.Linear: bad_rule, torch.ops.aten.linear: bad_rule}
    with pytest.raises(RuleError, match=r"the rule .*bad_rule returned"):
        fxflops.count(nn.Sequential(nn.Linear(4, 4)), meta(2, 4), rules=rules, trace=trace)


def test_a_rule_is_called_once_per_node_with_backward() -> None:
    calls: list[int] = []

    def linear(ctx: fxflops.NodeContext) -> int:
        calls.append(1)
        return 10

    for trace in ("symbolic", "run", "export"):
        calls.clear()
        fxflops.count(nn.Sequential(nn.Linear(4, 4)), meta(2, 4), backward=True, trace=trace,
                      rules={nn.Linear: linear, torch.ops.aten.linear: linear})
        assert calls == [1], trace


def test_leaf_modules_must_name_modules() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"'nope', which is not a submodule of Sequential"):
        fxflops.count(model, meta(1, 4), leaf_modules=["nope"])
    with pytest.raises(TypeError, match=r"leaf_modules holds <class 'int'>"):
        fxflops.count(model, meta(1, 4), leaf_modules=[int])
    # a real submodule name is fine: 2 * 1 * 4 * 4 = 32
    assert fxflops.count(model, meta(1, 4), leaf_modules=["0"]).total == 32


@pytest.mark.parametrize("trace", ["symbolic", "run"])
def test_weight_norm_reparametrization_is_counted_once_per_forward(trace: str) -> None:
    from torch.nn.utils.parametrizations import weight_norm

    model = nn.Sequential(weight_norm(nn.Conv1d(4, 8, 3)), nn.ReLU())
    x = torch.empty(1, 4, 16, device="meta")
    # Conv1d(4, 8, 3) on 16 samples: 14 outputs x 8 channels, each 4 * 3 MACs: 2 * 112 * 12 = 2688
    assert fxflops.count(model, x, trace=trace).total == 2688
    # full: + bias 112 + ReLU 112 + weight_norm g * v / ||v||, 4 per weight element: 4 * (8 * 4 * 3) = 384
    full = fxflops.count(model, x, trace=trace, convention="full")
    assert full.total == 2688 + 112 + 112 + 384
    assert full.by_op()["torch._weight_norm"] == 384
    assert full.by_op()["torch.nn.Conv1d"] == 2800  # named by the layer it wraps, not ParametrizedConv1d


class _AttrDict(dict):
    """A config read by attribute, as diffusers' FrozenDict and many model configs are."""

    def __getattr__(self, name: str) -> object:
        return self[name]


class _Configured(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.config = _AttrDict(hidden=8)
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).view(-1, self.config.hidden)


@pytest.mark.parametrize("trace", ["auto", "run", "export"])
def test_dict_subclass_config_keeps_its_type_in_the_meta_clone(trace: str) -> None:
    # Linear(8, 8) on 2 rows: 2 * 2 * 8 * 8 = 256
    assert fxflops.count(_Configured(), torch.empty(2, 8), trace=trace).total == 256


class _Doubled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_forward_hooks_run_and_their_work_is_counted() -> None:
    model = _Doubled()
    seen: list[tuple[int, ...]] = []
    model.fc.register_forward_hook(lambda module, args, out: out * 2)  # replaces the output: real work
    model.fc.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    x = torch.empty(4, 8)
    # Linear(8, 8) on 4 rows: 2 * 4 * 8 * 8 = 512; under full + bias 32 + the hook's multiply 32
    full = fxflops.count(model, x, convention="full")
    assert full.total == 512 + 32 + 32
    assert full.trace == "run"  # torch.fx cannot follow hooks: auto runs the model, hooks included
    assert fxflops.count(model, x).total == 512
    assert seen == [(4, 8), (4, 8)]  # the hooks ran on the meta copy, once per count
    # the user's module keeps exactly its own hooks
    assert len(model.fc._forward_hooks) == 1 and len(model.fc._forward_pre_hooks) == 1


class _Properties(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.T @ x.mT.T  # property reads: torch reports them as their descriptors' __get__


def test_tensor_property_reads_are_their_methods() -> None:
    report = fxflops.count(_Properties(), torch.empty(4, 8), trace="run", strict=True)
    # (8, 4) @ (4, 8): 2 * 8 * 8 * 4 = 512
    assert report.total == 512
    assert [r.target for r in report.nodes if r.target.startswith("Tensor.")][:2] == ["Tensor.T", "Tensor.mT"]


class _WritesThroughData(nn.Module):
    """CogVideoX-style: the forward assigns a buffer's ``.data``."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.register_buffer("pos", torch.zeros(1, 4, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.pos.data = torch.ones(1, 4, 8) * 2
        return self.proj(x) + self.pos


@pytest.mark.parametrize("trace", ["auto", "run"])
def test_writes_through_data_count_and_leave_the_model_alone(trace: str) -> None:
    model = _WritesThroughData()
    # Linear(8, 8) on 4 positions: 2 * 4 * 8 * 8 = 512
    assert fxflops.count(model, torch.empty(1, 4, 8), trace=trace).total == 512
    assert model.pos.device.type == "cpu" and float(model.pos.abs().sum()) == 0.0


def test_root_forward_hooks_run_too() -> None:
    model = _Doubled()
    model.register_forward_hook(lambda module, args, out: out + 1)
    # Linear(8, 8) on 4 rows: 512, + bias 32, + the root hook's add 32 (full)
    assert fxflops.count(model, torch.empty(4, 8), convention="full").total == 512 + 32 + 32


class _Float32Positions(nn.Module):
    """diffusers' Helios: an autocast context built from its input's device, which is meta here."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.proj(x.float())


@pytest.mark.parametrize("trace", ["auto", "run"])  # torch.fx cannot read x.device.type of a proxy
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_autocast_asked_for_on_the_meta_device_runs(trace: str, device: str) -> None:
    init = torch.amp.autocast_mode.autocast.__init__
    with torch.device(device):
        model, x = _Float32Positions(), torch.zeros(2, 8)
    # Linear 2 rows * 8 in * 4 out: 2 * 2 * 8 * 4 = 128
    assert fxflops.count(model, x, trace=trace).total == 128
    assert torch.amp.autocast_mode.autocast.__init__ is init  # restored after the count
    with pytest.raises(RuntimeError):  # and torch itself still refuses it outside a count
        torch.autocast(device_type="meta", enabled=False)


class _StrayTensorAndScalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pos = torch.arange(4.0)  # a plain attribute: a CPU tensor the meta clone keeps
        self.proj = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.lerp(x, self.pos, w[0]))  # w[0]: a 0-d tensor with a known value


def test_a_call_with_a_known_scalar_and_a_stray_cpu_tensor_still_runs() -> None:
    report = fxflops.count(_StrayTensorAndScalar(), (torch.empty(3, 4, device="meta"), torch.tensor([0.5, 0.2])),
                           trace="run")
    # Linear 3 rows * 4 in * 2 out: 2 * 3 * 4 * 2 = 48 (lerp is 0 by convention)
    assert report.total == 48

"""fxflops.count end to end: OpenCLIP ViT-B-16, model untouched, rules, leaves, strict mode."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from flop_testing import meta
from torch import nn

import fxflops
from fxflops import FlopReport, NodeContext, RuleConflictError, RuleError, TraceError, UncountedOpError

# -- OpenCLIP ViT-B-16 ---------------------------------------------------------------------------


def test_vit_b_16_whole_model_and_towers(vit_b_16: nn.Module) -> None:
    image, text = meta(1, 3, 224, 224), meta(1, 77, dtype=torch.long)
    report = fxflops.count(vit_b_16, (image, text))
    # image: conv 231,211,008 + qkv 8,366,063,616 + out 2,788,687,872 + mlp 22,309,502,976
    #        + attention 2 * 715,327,488 + proj 786,432 = 35,126,906,880 (openclip.md, section 3)
    # text: qkv 1,453,326,336 + out 484,442,112 + mlp 3,875,536,896 + attention 145,711,104
    #       + proj 524,288 = 5,959,540,736
    # total: 35,126,906,880 + 5,959,540,736
    assert report.total == 41_086_447_616
    assert report.module("visual") == 35_126_906_880
    assert report.module("text") == 5_959_540_736
    assert report.uncounted == []
    # 86,192,640 image + 63,428,096 text + 1 logit_scale
    assert report.params == 149_620_737
    assert report.macs == 41_086_447_616 // 2


def test_vit_b_16_towers_counted_alone(vit_b_16: nn.Module) -> None:
    image, text = meta(1, 3, 224, 224), meta(1, 77, dtype=torch.long)
    # the same figures as inside the whole model (openclip.md, section 3)
    assert fxflops.count(vit_b_16.visual, image).total == 35_126_906_880
    assert fxflops.count(vit_b_16.text, text).total == 5_959_540_736
    # method=: encode_text runs the text tower and normalizes: same 5,959,540,736
    assert fxflops.count(vit_b_16, text, method="encode_text").total == 5_959_540_736


def test_vit_b_16_twelve_equal_vision_blocks(vit_b_16: nn.Module) -> None:
    report = fxflops.count(vit_b_16.visual, meta(1, 3, 224, 224))
    modules = report.by_module(depth=3)
    blocks = [modules[f"transformer.resblocks.{i}"] for i in range(12)]
    # per block, 197 tokens, width 768, MLP 3072:
    # qkv 2*197*768*2304 + out 2*197*768*768 + mlp 2*2*197*768*3072 + attention 2*2*197*197*768
    # = 697,171,968 + 232,390,656 + 1,859,125,248 + 119,221,248
    assert blocks == [2_907_909_120] * 12
    table = report.table(by="module", depth=3)
    assert table.count("ResidualAttentionBlock") == 12
    assert "2,907,909,120" in table


def test_count_does_not_grow_with_batch(vit_b_16: nn.Module) -> None:
    one = fxflops.count(vit_b_16.visual, meta(1, 3, 224, 224)).total
    many = fxflops.count(vit_b_16.visual, meta(64, 3, 224, 224)).total
    # cost is linear in the batch: 64 * 35,126,906,880
    assert many == 64 * one == 2_248_122_040_320


# -- the model is left exactly as it was -------------------------------------------------------


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 32)
        self.norm = nn.LayerNorm(32)
        self.register_buffer("scale", torch.full((32,), 2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc(x)) * self.scale @ torch.ones(32, 8)


def test_model_untouched_after_counting() -> None:
    model = Block().train()
    calls: list[str] = []
    handle = model.fc.register_forward_hook(lambda *_: calls.append("hook"))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    storages = {k: v.untyped_storage().data_ptr() for k, v in model.state_dict().items()}
    attributes = set(vars(model))
    before = copy.deepcopy(list(model._modules))

    report = fxflops.count(model, torch.randn(4, 16))
    # fc: 2*4*16*32 = 4,096; matmul (4,32)@(32,8): 2*4*32*8 = 2,048
    assert report.total == 6_144

    assert model.training and model.fc.training
    assert set(vars(model)) == attributes and list(model._modules) == before
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]) and value.untyped_storage().data_ptr() == storages[key]
        assert value.device.type == "cpu"
    # The hook's work is part of the model's: it ran once, on the meta copy (not on the model)
    assert calls == ["hook"]
    assert report.trace == "run"
    model(torch.randn(4, 16))
    assert calls == ["hook", "hook"]  # the user's hook is still registered and works
    handle.remove()
    model(torch.randn(4, 16))
    assert calls == ["hook", "hook"]


def test_real_and_meta_models_count_the_same() -> None:
    real = Block()
    with torch.device("meta"):
        on_meta = Block()
    # 2*4*16*32 + 2*4*32*8 = 4,096 + 2,048
    assert fxflops.count(real, torch.randn(4, 16)).total == 6_144
    assert fxflops.count(on_meta, meta(4, 16)).total == 6_144


# -- rules: user rules, scoping, conflicts, MRO -----------------------------------------------


class Gate(nn.Module):
    """A custom op the tracer must not enter once it has a rule."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > 1:  # control flow on a size: torch.fx cannot trace it, meta tensors can run it
            return x * 2
        return x


class GatedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gate = Gate()
        self.fc = nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gate(x))


def gate_flops(ctx: NodeContext) -> int:
    """3 FLOPs per element, for the test."""
    return 3 * ctx.output_numel


def test_user_rule_makes_a_leaf_and_is_used() -> None:
    with pytest.raises(TraceError, match=r"could not trace GatedNet\.forward \(in module 'gate'\)"):
        fxflops.count(GatedNet(), meta(2, 10), trace="symbolic")
    report = fxflops.count(GatedNet(), meta(2, 10), rules={Gate: gate_flops})
    # gate: 3 * 2*10 = 60; fc: 2*2*10*10 = 400
    assert report.total == 460
    gate = next(r for r in report.nodes if r.module == "gate")
    assert (gate.op, gate.flops, gate.rule) == ("call_module", 60, "test_counter.gate_flops")


def test_rules_argument_is_scoped_to_one_call() -> None:
    fxflops.count(GatedNet(), meta(2, 10), rules={Gate: gate_flops})
    assert Gate not in fxflops.DEFAULT_REGISTRY
    with pytest.raises(TraceError):
        fxflops.count(GatedNet(), meta(2, 10), trace="symbolic")


def test_registered_rule_and_conflict() -> None:
    registry = fxflops.RuleRegistry()
    registry.register(Gate, category="custom")(gate_flops)
    with pytest.raises(RuleConflictError, match=r"already has the rule test_counter\.gate_flops"):
        registry.register(Gate)(lambda ctx: 0)
    registry.register(Gate, override=True)(lambda ctx: 1)
    assert registry.lookup_module(Gate).rule(None) == 1  # type: ignore[arg-type,union-attr]


def test_decorator_registers_in_the_default_registry() -> None:
    class Scaler(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 3

    @fxflops.rule(Scaler, category="custom")
    def scaler_flops(ctx: NodeContext) -> int:
        return ctx.output_numel

    try:
        # 1 FLOP per element of a (5, 7) output
        assert fxflops.count(Scaler(), meta(5, 7)).total == 35
        with pytest.raises(RuleConflictError):
            fxflops.rule(Scaler)(scaler_flops)
    finally:
        fxflops.DEFAULT_REGISTRY._entries.pop(Scaler)


def test_module_rules_follow_the_mro() -> None:
    class MyLinear(nn.Linear):
        pass

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = MyLinear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(x)

    report = fxflops.count(Net(), meta(4, 6))
    # nn.Linear's rule: 2*4*6*3
    assert report.total == 144
    assert report.nodes[-1].rule == "fxflops.rules.linear.linear_flops"
    assert report.nodes[-1].op == "call_module"


def test_bad_targets_are_rejected() -> None:
    with pytest.raises(TypeError, match=r"not an nn\.Module subclass"):
        fxflops.RuleRegistry().register(int)(gate_flops)


def test_leaf_modules_by_class_and_by_name() -> None:
    report = fxflops.count(GatedNet(), meta(2, 10), leaf_modules=["gate"], rules={Gate: gate_flops})
    # same as with the rule alone: 60 + 400
    assert report.total == 460
    report = fxflops.count(GatedNet(), meta(2, 10), leaf_modules=[Gate], trace="symbolic")
    # without a rule, the leaf is uncounted, not zero-by-convention: only fc's 400 is known
    assert report.total == 400
    assert [r.name for r in report.uncounted] == ["gate"]


# -- uncounted ops and strict mode ---------------------------------------------------------------


class Spectral(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(x) @ x.T  # torch.special.bessel_j0 has no FLOP rule


def test_op_without_rule_is_listed_and_strict_raises() -> None:
    report = fxflops.count(Spectral(), meta(4, 8))
    # only the matmul (4,8)@(8,4) is known: 2*4*8*4
    assert report.total == 256
    assert [(r.name, r.target) for r in report.uncounted] == [("special_bessel_j0", "torch.special.bessel_j0")]
    with pytest.raises(UncountedOpError) as error:
        fxflops.count(Spectral(), meta(4, 8), strict=True)
    message = str(error.value)
    assert "special_bessel_j0: call_function torch.special.bessel_j0 in module '<root>' at" in message
    assert "test_counter.py:" in message and "hint:" in message
    assert isinstance(error.value, fxflops.FxFlopsError)


def test_known_zero_ops_are_not_uncounted() -> None:
    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.gelu(F.layer_norm(x, (8,))).softmax(-1) + x
            return y.view(2, 4, 8).permute(0, 2, 1).flatten(1).sum(-1)

    report = fxflops.count(Net(), meta(8, 8))
    assert report.total == 0
    assert report.uncounted == []
    categories = {r.target: r.category for r in report.nodes if r.op != "get_attr"}
    assert categories["torch.nn.functional.gelu"] == "activation"
    assert categories["torch.nn.functional.layer_norm"] == "norm"
    assert categories["Tensor.softmax"] == "softmax"
    assert categories["operator.add"] == "elementwise"
    assert categories["Tensor.view"] == "zero"


# -- errors carry the node, the module and the source line -------------------------------------


def broken_rule(ctx: NodeContext) -> int:
    raise ZeroDivisionError("boom")


def test_rule_errors_name_the_node_and_keep_the_cause() -> None:
    with pytest.raises(RuleError) as error:
        fxflops.count(GatedNet(), meta(2, 10), rules={Gate: broken_rule})
    message = str(error.value)
    assert "the rule test_counter.broken_rule raised ZeroDivisionError: boom" in message
    assert "call_module[target=gate]" in message and "module 'gate' (Gate)" in message
    assert "test_counter.py:" in message
    assert isinstance(error.value.__cause__, ZeroDivisionError)


def test_rule_must_return_an_int() -> None:
    with pytest.raises(RuleError, match=r"returned 1\.5 \(a float\) as FLOPs"):
        fxflops.count(GatedNet(), meta(2, 10), rules={Gate: lambda ctx: 1.5})


def test_shape_errors_name_the_node() -> None:
    with pytest.raises(TraceError, match=r"shape propagation on meta tensors failed(.|\n)*call_module\[target=fc\]"):
        fxflops.count(GatedNet(), meta(2, 7), rules={Gate: gate_flops})


# -- inputs, kwargs, methods -----------------------------------------------------------------------


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, *, scale: float = 1.0) -> torch.Tensor:
        out = self.fc(x) * scale
        if y is not None:
            out = out @ y
        return out


def test_kwargs_tensors_are_traced_and_values_are_baked_in() -> None:
    # fc alone: 2*3*4*4
    assert fxflops.count(TwoInputs(), meta(3, 4)).total == 96
    # fc + (3,4)@(4,5): 96 + 2*3*4*5
    assert fxflops.count(TwoInputs(), meta(3, 4), kwargs={"y": meta(4, 5), "scale": 2.0}).total == 216
    assert fxflops.count(TwoInputs(), (meta(3, 4), meta(4, 5))).total == 216


def test_inputs_on_any_device_and_dtype() -> None:
    cpu = fxflops.count(TwoInputs(), torch.zeros(3, 4)).total
    on_meta = fxflops.count(TwoInputs(), meta(3, 4)).total
    # 2*3*4*4 both ways
    assert cpu == on_meta == 96


def test_mismatched_inputs_give_a_clear_error() -> None:
    with pytest.raises(TraceError, match=r"inputs do not match TwoInputs\.forward"):
        fxflops.count(TwoInputs(), (meta(3, 4), meta(4, 5), meta(1)))


# -- the report ----------------------------------------------------------------------------------


def test_report_roundtrips_through_json(vit_b_16: nn.Module) -> None:
    report = fxflops.count(vit_b_16.text, meta(1, 77, dtype=torch.long))
    again = FlopReport.from_json(report.to_json())
    # the text tower: 5,959,540,736 (openclip.md, section 3)
    assert again.total == report.total == 5_959_540_736
    assert again.by_module() == report.by_module()
    assert again.nodes == report.nodes
    data = report.to_dict()
    assert data["format"] == 1 and data["unit"] == "FLOPs" and data["convention"] == "default"
    assert data["versions"]["torch"] and data["versions"]["fxflops"] == fxflops.__version__


def test_by_module_children_sum_to_parents(vit_b_16: nn.Module) -> None:
    report = fxflops.count(vit_b_16, (meta(1, 3, 224, 224), meta(1, 77, dtype=torch.long)))
    modules = report.by_module()
    assert modules[""] == report.total
    for name, flops in modules.items():
        prefix = name + "." if name else ""
        depth = name.count(".") + 1 if name else 0
        children = [v for k, v in modules.items() if k.startswith(prefix) and k and k.count(".") == depth]
        assert sum(children) <= flops, name
    # the root's own nodes (logit_scale.exp()) cost 0, so visual + text is the total
    assert modules["visual"] + modules["text"] == modules[""]
    assert sum(report.by_op().values()) == report.total
    # attention: visual 12 * (qkv 697,171,968 + out 232,390,656 + core 119,221,248)
    #            + text 12 * (qkv 121,110,528 + out 40,370,176 + core 12,142,592) = 14,668,886,016
    # matmul: MLPs 22,309,502,976 + 3,875,536,896 + projections 786,432 + 524,288 = 26,186,350,592
    # conv: patch embedding 231,211,008
    assert report.by_category() == {
        "matmul": 26_186_350_592,
        "attention": 14_668_886_016,
        "conv": 231_211_008,
        "activation": 0, "elementwise": 0, "norm": 0, "reduction": 0, "zero": 0,
    }


def test_str_is_one_line(vit_b_16: nn.Module) -> None:
    report = fxflops.count(vit_b_16.visual, meta(1, 3, 224, 224))
    assert str(report) == (
        "VisionTransformer: 35.13 GFLOPs (35,126,906,880 FLOPs, convention 'default'), 86,192,640 params"
    )


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("batched", [True, False])
def test_fast_attention_output_shapes_match_running_it(batch_first: bool, need_weights: bool, average: bool,
                                                        batched: bool) -> None:
    from fxflops.counter import _fast_output

    with torch.device("meta"):
        mha = nn.MultiheadAttention(16, 4, batch_first=batch_first, kdim=8, vdim=12, add_bias_kv=True)
    q = meta(2, 5, 16) if batched else meta(5, 16)
    k = meta(2, 7, 8) if batched else meta(7, 8)
    v = meta(2, 7, 12) if batched else meta(7, 12)
    if not batch_first and batched:
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    kwargs = {"need_weights": need_weights, "average_attn_weights": average}
    expected = mha(q, k, v, **kwargs)
    fast = _fast_output(mha, (q, k, v), kwargs)
    assert fast[0].shape == expected[0].shape
    assert (fast[1] is None) == (expected[1] is None)
    if expected[1] is not None:
        assert fast[1].shape == expected[1].shape


def test_wrappers_are_looked_through() -> None:
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    x = meta(3, 8)
    # 2*3*8*4 + 2*3*4*2 = 192 + 48
    expected = 240
    assert fxflops.count(torch.compile(model), x).total == expected
    assert fxflops.count(nn.DataParallel(model), x).total == expected
    assert fxflops.count(torch.compile(nn.DataParallel(model)), x).total == expected


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_torchscript_gets_a_hint() -> None:
    scripted = torch.jit.script(nn.Linear(8, 4))
    with pytest.raises(TraceError, match=r"TorchScript module(.|\n)*hint: count the nn\.Module before"):
        fxflops.count(scripted, torch.empty(1, 8))


def test_garbage_collector_state_is_restored() -> None:
    import gc

    model, x = nn.Linear(8, 4), meta(1, 8)
    assert gc.isenabled()
    fxflops.count(model, x)
    assert gc.isenabled()
    with pytest.raises(TraceError):
        fxflops.count(model, (x, x))  # one input too many
    assert gc.isenabled()
    gc.disable()
    try:
        fxflops.count(model, x)
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()


class _TiedHead(nn.Module):
    """Marian-style: the LM head's weight is tied to a larger embedding table than its out_features."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, 16)
        self.head = nn.Linear(16, 10, bias=False)  # out_features says 10 ...
        self.head.weight = self.embed.weight  # ... the forward multiplies by 1000 rows

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids))


@pytest.mark.parametrize("trace", ["symbolic", "run"])
def test_linear_counts_the_weight_it_multiplies_by(trace: str) -> None:
    # 4 tokens * 16 * 1000 rows * 2 = 128,000 (not 4 * 16 * 10 * 2 = 1,280)
    assert fxflops.count(_TiedHead(), torch.zeros(1, 4, dtype=torch.long), trace=trace).total == 128_000


class _ReinitializesInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nn.init.kaiming_uniform_(self.w)  # as BigBird-Pegasus does: a random fill, no arithmetic
        return x @ self.w


@pytest.mark.parametrize("trace", ["symbolic", "run"])
def test_weight_initializers_called_in_forward_cost_zero(trace: str) -> None:
    # (2, 4) @ (4, 4): 2 * 2 * 4 * 4 = 64; strict: the initializer has a (zero) rule
    assert fxflops.count(_ReinitializesInForward(), torch.empty(2, 4), strict=True, trace=trace).total == 64


class _PadsSequences(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return nn.utils.rnn.pad_sequence([a, b], batch_first=True)  # Qwen2.5-Omni's audio chunks


@pytest.mark.parametrize("trace", ["symbolic", "run"])
def test_pad_sequence_is_a_copy(trace: str) -> None:
    # 0 FLOPs, and strict: pad_sequence has a (zero) rule
    assert fxflops.count(_PadsSequences(), (torch.empty(3, 4), torch.empty(2, 4)), strict=True, trace=trace).total == 0

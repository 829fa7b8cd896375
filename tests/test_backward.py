"""Training FLOPs: analytic backward counts from the forward graph, equal to FlopCounterMode
over a real forward and backward pass (issue 9)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import fxflops
from fxflops.shapes import meta_clone, to_meta


def torch_forward_backward(model: nn.Module, inputs: tuple, kwargs: dict | None = None) -> int:
    """FlopCounterMode over forward + backward on fake tensors (math SDPA kernel)."""
    cache: dict = {}
    clone = meta_clone(model, cache)
    args, kw = to_meta(inputs, cache), to_meta(kwargs or {}, cache)
    counter = FlopCounterMode(display=False)
    with FakeTensorMode(allow_non_fake_inputs=True), torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        out = clone(*args, **kw)
        (out.logits if hasattr(out, "logits") else out).sum().backward()
    return counter.get_total_flops()


@pytest.fixture
def resnet18() -> nn.Module:
    with torch.device("meta"):
        return torchvision.models.resnet18()


def test_resnet18_with_input_grad_is_three_forwards(resnet18: nn.Module) -> None:
    x = torch.empty(1, 3, 224, 224, device="meta", requires_grad=True)
    report = fxflops.count(resnet18, x, backward=True)
    # forward 3,628,146,688; backward = input grads + weight grads = 2 * forward
    assert report.forward == 3_628_146_688
    assert report.backward == 7_256_293_376
    # torch's own anchor: 10,884,440,064 = 3 * 3,628,146,688
    assert report.total == 10_884_440_064 == torch_forward_backward(resnet18, (x,))
    assert report.includes_backward and report.macs == report.total // 2


def test_resnet18_without_input_grad(resnet18: nn.Module) -> None:
    x = torch.empty(1, 3, 224, 224, device="meta")
    report = fxflops.count(resnet18, x, backward=True)
    # the stem conv needs no input gradient: 2 * 1*64*3*7*7*112*112 = 236,027,904 saved
    assert report.total == 10_884_440_064 - 236_027_904 == 10_648_412_160
    assert report.total == torch_forward_backward(resnet18, (x,))


def test_frozen_backbone_drops_weight_gradients(resnet18: nn.Module) -> None:
    for p in resnet18.parameters():
        p.requires_grad_(False)
    for p in resnet18.fc.parameters():
        p.requires_grad_(True)
    x = torch.empty(1, 3, 224, 224, device="meta")
    report = fxflops.count(resnet18, x, backward=True)
    # only fc trains: forward 3,628,146,688 + its weight gradient 2 * 512 * 1000 = 1,024,000
    assert report.total == 3_629_170_688 == torch_forward_backward(resnet18, (x,))


def test_record_split_and_json() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    report = fxflops.count(model, torch.empty(2, 8, device="meta"), backward=True)
    first, last = report.nodes[0], report.nodes[-1]
    # first linear: 2*2*8*16 = 512 forward; input needs no grad, so only the weight grad: 512
    assert (first.flops, first.backward_flops) == (512, 512)
    # last linear: 2*2*16*4 = 256; input and weight grads: 512
    assert (last.flops, last.backward_flops) == (256, 512)
    data = report.to_dict()
    assert (data["forward"], data["backward"], data["total"]) == (768, 1_024, 1_792)


def test_attention_backward_matches_torch() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(64, 4, batch_first=True, kdim=32, vdim=48)

        def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return self.attn(q, k, v, need_weights=False)[0]

    q, k, v = (torch.empty(2, 10, 64, device="meta"), torch.empty(2, 7, 32, device="meta"),
               torch.empty(2, 7, 48, device="meta"))
    report = fxflops.count(Block(), (q, k, v), backward=True)
    # forward: q 2*2*10*64*64 + k 2*2*7*32*64 + v 2*2*7*48*64 + out 2*2*10*64*64
    #          + scores and values 2 * (2*2*10*7*64)
    #        = 163,840 + 57,344 + 86,016 + 163,840 + 35,840 = 506,880
    # backward: projections' weight grads only (inputs need none) 163,840 + 57,344 + 86,016
    #           + dQ, dK, dV, dP 4 * 17,920 + out_proj input and weight grads 2 * 163,840
    #         = 307,200 + 71,680 + 327,680 = 706,560; total 506,880 + 706,560
    assert report.forward == 506_880
    assert report.total == 1_213_440 == torch_forward_backward(Block(), (q, k, v))


def test_gpt2_forward_backward() -> None:
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model("gpt2"))
    ids = torch.zeros(1, 128, dtype=torch.long, device="meta")
    report = fxflops.count(model, ids, backward=True)
    # forward 32,228,179,968 (test_fallback.py); token ids need no gradient, so the backward is
    # 2 * forward: every product has a trainable weight and an activation that requires grad
    assert report.forward == 32_228_179_968
    assert report.total == 96_684_539_904 == torch_forward_backward(model, (ids,), {})


def test_mfu_stays_a_function_after_its_module_is_imported() -> None:
    import fxflops.cli
    import fxflops.utilization

    assert callable(fxflops.mfu) and fxflops.mfu is fxflops.utilization.mfu


def test_mfu() -> None:
    model = nn.Linear(1000, 1000)
    report = fxflops.count(model, torch.empty(10, 1000, device="meta"), backward=True)
    # forward 2*10*1000*1000 = 20,000,000; backward weight grad only (input needs none): 20,000,000
    assert report.total == 40_000_000
    # 4,000,000 FLOPs per sample * 1e6 samples/s over an A100's 312e12
    assert fxflops.mfu(report, 1e6, "a100", units_per_call=10) == pytest.approx(4e6 * 1e6 / 312e12)
    assert fxflops.mfu(report, 1e6, 312e12, units_per_call=10) == pytest.approx(0.01282, rel=1e-3)
    with pytest.raises(ValueError, match="unknown accelerator"):
        fxflops.mfu(report, 1.0, "tpu-v9")


class _Wrap(nn.Module):
    """Calls a layer on one or two inputs and returns its first output."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        out = self.layer(a) if b is None else self.layer(a, b)
        return out[0] if isinstance(out, tuple) else out


def _meta(*shape: int, grad: bool = False) -> torch.Tensor:
    return torch.empty(shape, device="meta", requires_grad=grad)


LAYERS = {
    "encoder-layer": (lambda: nn.TransformerEncoderLayer(64, 4, 128, batch_first=True), (_meta(2, 10, 64),)),
    "encoder-layer-input-grad": (lambda: nn.TransformerEncoderLayer(64, 4, 128, batch_first=True),
                                 (_meta(2, 10, 64, grad=True),)),
    "decoder-layer": (lambda: nn.TransformerDecoderLayer(64, 4, 128), (_meta(10, 2, 64), _meta(7, 2, 64))),
    "transformer": (lambda: nn.Transformer(64, 4, 2, 2, 128, batch_first=True), (_meta(2, 7, 64), _meta(2, 10, 64))),
    "lstm": (lambda: nn.LSTM(16, 32, num_layers=2), (_meta(5, 3, 16),)),
    "lstm-bidirectional-input-grad": (lambda: nn.LSTM(16, 32, num_layers=2, bidirectional=True),
                                      (_meta(5, 3, 16, grad=True),)),
    "lstm-proj": (lambda: nn.LSTM(16, 32, num_layers=2, proj_size=8, batch_first=True), (_meta(3, 5, 16),)),
    "gru": (lambda: nn.GRU(16, 32), (_meta(5, 3, 16),)),
    "lstm-cell": (lambda: nn.LSTMCell(16, 32), (_meta(3, 16),)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_backward_equals_torch(name: str) -> None:
    make, inputs = LAYERS[name]
    with torch.device("meta"):
        model = _Wrap(make())
    report = fxflops.count(model, inputs, backward=True)
    assert report.total == torch_forward_backward(model, inputs)


def _encoder(norm_first: bool = False) -> nn.Module:
    return nn.TransformerEncoderLayer(64, 4, 128, batch_first=True, norm_first=norm_first)


def _decoder(norm_first: bool = False) -> nn.Module:
    return nn.TransformerDecoderLayer(64, 4, 128, batch_first=True, norm_first=norm_first)


# (layer, inputs, parameter prefixes to freeze): prompt tuning (frozen layer, input needing grad),
# frozen attention or feed-forward, trainable norms alone, frozen cross-attention, frozen encoder.
FROZEN = {
    "encoder-frozen-input-grad": (_encoder, (_meta(2, 10, 64, grad=True),), [""]),
    "encoder-attention-frozen": (_encoder, (_meta(2, 10, 64),), ["self_attn"]),
    "encoder-linear1-frozen": (_encoder, (_meta(2, 10, 64),), ["linear1"]),
    "encoder-norms-trainable-only": (_encoder, (_meta(2, 10, 64),), ["self_attn", "linear"]),
    "decoder-cross-frozen": (_decoder, (_meta(2, 10, 64), _meta(2, 7, 64)), ["multihead_attn"]),
    "decoder-self-frozen-memory-grad": (_decoder, (_meta(2, 10, 64), _meta(2, 7, 64, grad=True)), ["self_attn"]),
    "stack-first-layer-frozen": (lambda nf=False: nn.TransformerEncoder(_encoder(nf), 2, enable_nested_tensor=False),
                                 (_meta(2, 10, 64),), ["layers.0"]),
    "transformer-encoder-frozen": (lambda nf=False: nn.Transformer(64, 4, 1, 1, 128, batch_first=True, norm_first=nf),
                                   (_meta(2, 7, 64), _meta(2, 10, 64)), ["encoder"]),
}


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning")
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("name", list(FROZEN))
def test_partly_frozen_transformer_backward_equals_torch(name: str, norm_first: bool) -> None:
    make, inputs, frozen = FROZEN[name]
    with torch.device("meta"):
        model = _Wrap(make(norm_first))
    for parameter_name, parameter in model.layer.named_parameters():
        if any(parameter_name.startswith(prefix) for prefix in frozen):
            parameter.requires_grad_(False)
    report = fxflops.count(model, inputs, backward=True)
    assert report.total == torch_forward_backward(model, inputs)


def test_prompt_tuning_backward_by_hand() -> None:
    with torch.device("meta"):
        layer = _encoder().requires_grad_(False)
    x = _meta(2, 10, 64, grad=True)
    report = fxflops.count(layer, x, backward=True)
    # N=2, L=10, E=64, FF=128. forward: qkv 2*2*10*64*192 = 491,520; out 163,840; QK^T and AV
    # 2*2*64*10*10 = 25,600 each; feed-forward 2 * 2*2*10*64*128 = 655,360
    assert report.forward == 491_520 + 163_840 + 2 * 25_600 + 655_360 == 1_361_920
    # frozen weights: input gradients only, but both operands of QK^T and AV need theirs:
    # 491,520 + 163,840 + 4 * 25,600 + 655,360
    assert report.backward == 1_413_120


RNN_FROZEN = {
    "lstm-first-input-weights": (lambda: nn.LSTM(16, 32, num_layers=2), False, ["weight_ih_l0"]),
    "lstm-layer0": (lambda: nn.LSTM(16, 32, num_layers=2), False, ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                                                   "bias_hh_l0"]),
    "lstm-layer1": (lambda: nn.LSTM(16, 32, num_layers=2), False, ["weight_ih_l1", "weight_hh_l1", "bias_ih_l1",
                                                                   "bias_hh_l1"]),
    "lstm-all-input-grad": (lambda: nn.LSTM(16, 32, num_layers=2), True, ["weight", "bias"]),
    "lstm-proj-weights": (lambda: nn.LSTM(16, 32, num_layers=2, proj_size=8), False, ["weight_hr"]),
    "lstm-bidirectional-reverse": (lambda: nn.LSTM(16, 32, bidirectional=True), False, ["weight_ih_l0_reverse"]),
    "gru-recurrent-weights": (lambda: nn.GRU(16, 32), False, ["weight_hh"]),
}


@pytest.mark.parametrize("name", list(RNN_FROZEN))
def test_partly_frozen_recurrent_backward_equals_torch(name: str) -> None:
    make, input_grad, frozen = RNN_FROZEN[name]
    with torch.device("meta"):
        model = _Wrap(make())
    for parameter_name, parameter in model.layer.named_parameters():
        if any(parameter_name.startswith(prefix) for prefix in frozen):
            parameter.requires_grad_(False)
    inputs = (_meta(5, 3, 16, grad=input_grad),)
    report = fxflops.count(model, inputs, backward=True)
    assert report.total == torch_forward_backward(model, inputs)


@pytest.mark.parametrize("kind", [nn.LSTMCell, nn.GRUCell, nn.RNNCell])
@pytest.mark.parametrize("frozen,input_grad", [(["weight_ih"], False), (["weight_hh"], True),
                                               (["weight", "bias"], True)])
def test_partly_frozen_cell_backward_equals_torch(kind: type[nn.Module], frozen: list[str],
                                                  input_grad: bool) -> None:
    with torch.device("meta"):
        model = _Wrap(kind(16, 32))
    for parameter_name, parameter in model.layer.named_parameters():
        if any(parameter_name.startswith(prefix) for prefix in frozen):
            parameter.requires_grad_(False)
    inputs = (_meta(3, 16, grad=input_grad),)
    assert fxflops.count(model, inputs, backward=True).total == torch_forward_backward(model, inputs)


def test_lstm_with_frozen_first_layer_by_hand() -> None:
    with torch.device("meta"):
        model = _Wrap(nn.LSTM(16, 32, num_layers=2))
    for parameter in model.layer.parameters():
        parameter.requires_grad_(False)
    model.layer.weight_ih_l1.requires_grad_(True)
    model.layer.weight_hh_l1.requires_grad_(True)
    report = fxflops.count(model, _meta(5, 3, 16), backward=True)
    # forward 430,080 (see below). Layer 0 is frozen and its input needs no grad: no gradient.
    # Layer 1 (T=5, N=3, 4 gates of 32): weight gradients of x@W_ih and h@W_hh, 5 * 2*3*32*128 = 122,880
    # each; input gradients of h@W_hh on steps 1..4 (h0 = 0 needs none), 4 * 2*3*32*128 = 98,304
    assert report.backward == 122_880 + 122_880 + 98_304 == 344_064


def test_lstm_backward_by_hand() -> None:
    with torch.device("meta"):
        model = _Wrap(nn.LSTM(16, 32, num_layers=2))
    report = fxflops.count(model, _meta(5, 3, 16), backward=True)
    # forward, T=5, N=3, 4 gates of 32: layer 0 2*5*3*128*(16+32) = 184,320; layer 1 2*5*3*128*(32+32) = 245,760
    assert report.forward == 430_080
    # backward: 2 * forward, less layer 0's input projection (x needs no grad) 2*5*3*16*128 = 61,440
    # and each layer's first recurrent step (h0 = 0 needs no grad) 2 * (2*3*32*128) = 49,152
    assert report.backward == 2 * 430_080 - 61_440 - 49_152 == 749_568


class _Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def test_a_matmul_rule_without_a_backward_formula_is_an_error_not_a_silent_zero() -> None:
    rule = fxflops.registry.rule_of(lambda ctx: 2 * ctx.output_numel, "matmul")
    x = torch.empty(4, 8, device="meta", requires_grad=True)
    with pytest.raises(fxflops.RuleError) as excinfo:
        fxflops.count(_Gate(), x, rules={_Gate: rule}, backward=True)
    assert "has no backward formula: its gradients would count 0" in str(excinfo.value).splitlines()[0]


def test_a_rule_brings_its_backward_formula() -> None:
    x = torch.empty(4, 8, device="meta", requires_grad=True)
    given = fxflops.registry.rule_of(lambda ctx: 2 * ctx.output_numel, "matmul",
                                     backward=lambda ctx, forward: 3 * forward)
    report = fxflops.count(_Gate(), x, rules={_Gate: given}, backward=True)
    # forward 2 * 32 = 64; backward 3 * 64 = 192
    assert (report.forward, report.backward) == (64, 192)
    none = fxflops.registry.rule_of(lambda ctx: 2 * ctx.output_numel, "matmul", backward=fxflops.NO_BACKWARD)
    # forward 64, and no gradient work by declaration
    assert fxflops.count(_Gate(), x, rules={_Gate: none}, backward=True).backward == 0

"""Rules of ``fxflops.rules.attention``: SDPA, multi-head attention, the nn.Transformer layers.

Each case: fxflops == hand arithmetic == FlopCounterMode (meta tensors, math SDPA kernel, grad
on, so torch takes no fused fast path), no node uncounted. Layers with an inference fast path
are also counted by fxflops in eval mode under ``torch.no_grad()``: the count must not change.

Notation: N batch, L target (query) length, S source (key) length, E embed dim, F feed-forward
dim. Multi-head attention costs, whatever the number of heads:
q ``2*N*L*E*E`` + k ``2*N*S*kdim*E`` + v ``2*N*S*vdim*E`` + out ``2*N*L*E*E`` + scores and
values ``2 * 2*N*L*S*E``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn


def meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, device="meta")


def count_in_every_mode(count, model: nn.Module, *inputs, kwargs=None) -> int:
    """fxflops' total in train mode and in eval mode under no_grad; they must agree."""
    model.train()
    train = count(model, *inputs, kwargs=kwargs)
    model.eval()
    with torch.no_grad():
        inference = count(model, *inputs, kwargs=kwargs)
    assert inference == train
    return train


# -- F.scaled_dot_product_attention -----------------------------------------------------------

sdpa = F.scaled_dot_product_attention


def test_sdpa_lq_ne_lk_and_dv_ne_d(count, torch_flops, call):
    model = call(sdpa, 3)
    q, k, v = meta(2, 4, 6, 8), meta(2, 4, 10, 8), meta(2, 4, 10, 12)
    # 2 * N * H * L * S * (E + Ev) = 2 * 2 * 4 * 6 * 10 * (8 + 12)
    expected = 19200
    assert count(model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


def test_sdpa_grouped_query_attention(count, torch_flops, call):
    model = call(sdpa, 3, enable_gqa=True)
    q, k, v = meta(2, 8, 6, 8), meta(2, 2, 10, 8), meta(2, 2, 10, 12)
    # every one of the 8 query heads attends: 2 * N * Hq * L * S * (E + Ev) = 2 * 2 * 8 * 6 * 10 * (8 + 12)
    expected = 38400
    assert count(model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


def test_sdpa_with_mask(count, torch_flops, call):
    model = call(sdpa, 4)
    q, k, v, mask = meta(1, 2, 3, 4), meta(1, 2, 5, 4), meta(1, 2, 5, 6), meta(3, 5)
    # the mask add is free: 2 * N * H * L * S * (E + Ev) = 2 * 1 * 2 * 3 * 5 * (4 + 6)
    expected = 600
    assert count(model, q, k, v, mask) == expected
    assert torch_flops(model, q, k, v, mask) == expected


def test_sdpa_causal_is_counted_dense(count, torch_flops, call):
    model = call(sdpa, 3, is_causal=True)
    q = k = v = meta(2, 4, 6, 8)
    # 2 * N * H * L * L * (E + E) = 2 * 2 * 4 * 6 * 6 * (8 + 8)
    expected = 9216
    assert count(model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


def test_sdpa_3d(count, torch_flops, call):
    model = call(sdpa, 3)
    q, k, v = meta(3, 6, 8), meta(3, 10, 8), meta(3, 10, 12)
    # 2 * B * L * S * (E + Ev) = 2 * 3 * 6 * 10 * (8 + 12)
    expected = 7200
    assert count(model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


def test_sdpa_query_broadcast_against_keys(count, torch_flops, call):
    model = call(sdpa, 3)
    q, k, v = meta(4, 6, 8), meta(3, 4, 10, 8), meta(3, 4, 10, 12)
    # the output is (3, 4, 6, 12): 2 * N * H * L * S * (E + Ev) = 2 * 3 * 4 * 6 * 10 * (8 + 12)
    expected = 28800
    assert count(model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


# -- nn.MultiheadAttention --------------------------------------------------------------------


@pytest.mark.parametrize("need_weights", [False, True], ids=["no-weights", "weights"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["LNE", "NLE"])
def test_mha_kdim_vdim(count, torch_flops, batch_first, need_weights):
    model = nn.MultiheadAttention(16, 4, kdim=8, vdim=12, batch_first=batch_first, device="meta")
    n, length, source = 2, 3, 5
    if batch_first:
        q, k, v = meta(n, length, 16), meta(n, source, 8), meta(n, source, 12)
    else:
        q, k, v = meta(length, n, 16), meta(source, n, 8), meta(source, n, 12)
    kwargs = {"need_weights": need_weights}
    # q 2*N*L*E*E + k 2*N*S*kdim*E + v 2*N*S*vdim*E + out 2*N*L*E*E + core 2*2*N*L*S*E
    # = 2*2*3*16*16 + 2*2*5*8*16 + 2*2*5*12*16 + 2*2*3*16*16 + 2*2*2*3*5*16
    expected = 14464
    assert count_in_every_mode(count, model, q, k, v, kwargs=kwargs) == expected
    assert torch_flops(model, q, k, v, **kwargs) == expected


def test_mha_packed_cross_attention(count, torch_flops):
    model = nn.MultiheadAttention(16, 2, device="meta")
    q, k, v = meta(4, 3, 16), meta(6, 3, 16), meta(6, 3, 16)
    # key is not value, one packed in-projection weight:
    # q 2*N*L*E*E + k 2*N*S*E*E + v 2*N*S*E*E + out 2*N*L*E*E + core 2*2*N*L*S*E
    # = 2*3*4*16*16 + 2*3*6*16*16 + 2*3*6*16*16 + 2*3*4*16*16 + 2*2*3*4*6*16
    expected = 35328
    assert count_in_every_mode(count, model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


def test_mha_self_attention_fast_path_mode(count, torch_flops):
    model = nn.MultiheadAttention(16, 2, batch_first=True, device="meta")
    x = meta(3, 4, 16)
    # eval + no_grad + batch_first self-attention is torch's fused fast path; same matmuls:
    # 4 projections 4 * 2*N*L*E*E + core 2*2*N*L*L*E = 4 * 2*3*4*16*16 + 2*2*3*4*4*16
    expected = 27648
    assert count_in_every_mode(count, model, x, x, x) == expected
    assert torch_flops(model, x, x, x) == expected


@pytest.mark.parametrize("batch_first", [False, True], ids=["LNE", "NLE"])
def test_mha_unbatched(count, torch_flops, batch_first):
    model = nn.MultiheadAttention(16, 4, batch_first=batch_first, device="meta")
    q, k, v = meta(5, 16), meta(7, 16), meta(7, 16)
    # N = 1: q 2*L*E*E + k 2*S*E*E + v 2*S*E*E + out 2*L*E*E + core 2*2*L*S*E
    # = 2*5*16*16 + 2*7*16*16 + 2*7*16*16 + 2*5*16*16 + 2*2*5*7*16
    expected = 14528
    assert count_in_every_mode(count, model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


@pytest.mark.parametrize(
    ("add_bias_kv", "add_zero_attn", "expected"),
    [
        # one extra key: projections 2*2*N*L*E*E + 2*2*N*S*E*E, core 2*2*N*L*(S+1)*E
        # = 2*2*2*5*16*16 + 2*2*2*7*16*16 + 2*2*2*5*(7+1)*16
        pytest.param(True, False, 29696, id="bias_kv"),
        # = 2*2*2*5*16*16 + 2*2*2*7*16*16 + 2*2*2*5*(7+1)*16
        pytest.param(False, True, 29696, id="zero_attn"),
        # two extra keys: = 2*2*2*5*16*16 + 2*2*2*7*16*16 + 2*2*2*5*(7+2)*16
        pytest.param(True, True, 30336, id="both"),
    ],
)
def test_mha_extra_keys(count, torch_flops, add_bias_kv, add_zero_attn, expected):
    model = nn.MultiheadAttention(16, 4, add_bias_kv=add_bias_kv, add_zero_attn=add_zero_attn, device="meta")
    q, k, v = meta(5, 2, 16), meta(7, 2, 16), meta(7, 2, 16)
    assert count_in_every_mode(count, model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


# -- F.multi_head_attention_forward -----------------------------------------------------------


class FunctionalMHA(nn.Module):
    """Calls F.multi_head_attention_forward with its own weights, as OpenCLIP's AttentionPool2d."""

    def __init__(self, embed_dim: int, heads: int, *, kdim: int | None = None, vdim: int | None = None,
                 out_dim: int | None = None, separate: bool = False, bias_kv: bool = False,
                 zero_attn: bool = False) -> None:
        super().__init__()
        e = embed_dim
        self.embed_dim, self.heads, self.separate, self.zero_attn = e, heads, separate, zero_attn
        with torch.device("meta"):
            self.in_proj_weight = nn.Parameter(torch.empty(3 * e, e))
            self.in_proj_bias = nn.Parameter(torch.empty(3 * e))
            self.q_proj_weight = nn.Parameter(torch.empty(e, e))
            self.k_proj_weight = nn.Parameter(torch.empty(e, kdim or e))
            self.v_proj_weight = nn.Parameter(torch.empty(e, vdim or e))
            self.out_proj_weight = nn.Parameter(torch.empty(out_dim or e, e))
            self.out_proj_bias = nn.Parameter(torch.empty(out_dim or e))
            self.bias_k = nn.Parameter(torch.empty(1, 1, e)) if bias_kv else None
            self.bias_v = nn.Parameter(torch.empty(1, 1, e)) if bias_kv else None

    def forward(self, query, key, value):
        return F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.heads,
            None if self.separate else self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.zero_attn, 0.0, self.out_proj_weight, self.out_proj_bias,
            need_weights=False, use_separate_proj_weight=self.separate, q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
        )[0]


def test_functional_mha_packed(count, torch_flops):
    model = FunctionalMHA(16, 4)
    q, k, v = meta(5, 2, 16), meta(7, 2, 16), meta(7, 2, 16)
    # q 2*N*L*E*E + k 2*N*S*E*E + v 2*N*S*E*E + out 2*N*L*E*E + core 2*2*N*L*S*E
    # = 2*2*5*16*16 + 2*2*7*16*16 + 2*2*7*16*16 + 2*2*5*16*16 + 2*2*2*5*7*16
    expected = 29056
    assert count(model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


def test_functional_mha_separate_weights_kdim_vdim(count, torch_flops):
    model = FunctionalMHA(16, 4, kdim=8, vdim=12, separate=True)
    q, k, v = meta(5, 2, 16), meta(7, 2, 8), meta(7, 2, 12)
    # q 2*N*L*E*E + k 2*N*S*kdim*E + v 2*N*S*vdim*E + out 2*N*L*E*E + core 2*2*N*L*S*E
    # = 2*2*5*16*16 + 2*2*7*8*16 + 2*2*7*12*16 + 2*2*5*16*16 + 2*2*2*5*7*16
    expected = 23680
    assert count(model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


def test_functional_mha_output_projection_changes_width(count, torch_flops):
    # OpenCLIP's AttentionPool2d: one query token, c_proj maps E=16 to 24 features
    model = FunctionalMHA(16, 4, out_dim=24, separate=True)
    q, k, v = meta(1, 2, 16), meta(7, 2, 16), meta(7, 2, 16)
    # q 2*N*L*E*E + k 2*N*S*E*E + v 2*N*S*E*E + out 2*N*L*E*out + core 2*2*N*L*S*E
    # = 2*2*1*16*16 + 2*2*7*16*16 + 2*2*7*16*16 + 2*2*1*16*24 + 2*2*2*1*7*16
    expected = 17792
    assert count(model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


def test_functional_mha_bias_kv_and_zero_attn(count, torch_flops):
    model = FunctionalMHA(16, 4, bias_kv=True, zero_attn=True)
    q, k, v = meta(5, 2, 16), meta(7, 2, 16), meta(7, 2, 16)
    # two extra keys: 2*2*N*L*E*E + 2*2*N*S*E*E + core 2*2*N*L*(S+2)*E
    # = 2*2*2*5*16*16 + 2*2*2*7*16*16 + 2*2*2*5*(7+2)*16
    expected = 30336
    assert count(model, q, k, v) == expected
    assert torch_flops(model, q, k, v) == expected


class StaticKeysMHA(nn.Module):
    """F.multi_head_attention_forward with pre-projected static keys and values."""

    def __init__(self) -> None:
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.empty(48, 16, device="meta"))
        self.out_proj_weight = nn.Parameter(torch.empty(16, 16, device="meta"))

    def forward(self, query, key, value, static_k, static_v):
        return F.multi_head_attention_forward(
            query, key, value, 16, 4, self.in_proj_weight, None, None, None, False, 0.0,
            self.out_proj_weight, None, need_weights=False, static_k=static_k, static_v=static_v,
        )[0]


def test_functional_mha_static_keys(count, torch_flops):
    model = StaticKeysMHA()
    q, k, v = meta(5, 2, 16), meta(7, 2, 16), meta(7, 2, 16)
    static_k, static_v = meta(2 * 4, 11, 4), meta(2 * 4, 11, 4)  # (N * heads, S', E / heads)
    # torch still projects key and value (over S = 7) before it switches to the static ones;
    # the core runs over S' = 11:
    # 2*2*N*L*E*E + 2*2*N*S*E*E + core 2*2*N*L*S'*E = 2*2*2*5*16*16 + 2*2*2*7*16*16 + 2*2*2*5*11*16
    expected = 31616
    assert count(model, q, k, v, static_k, static_v) == expected
    assert torch_flops(model, q, k, v, static_k, static_v) == expected


# -- nn.Transformer* layers -------------------------------------------------------------------


def test_transformer_encoder_layer(count, torch_flops):
    model = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, device="meta")
    x = meta(5, 2, 16)
    # self-attention 4 * 2*N*L*E*E + 2*2*N*L*L*E, feed-forward 2 * 2*N*L*E*F
    # = 4 * 2*2*5*16*16 + 2*2*2*5*5*16 + 2 * 2*2*5*16*32
    expected = 44160
    assert count_in_every_mode(count, model, x) == expected
    assert torch_flops(model, x) == expected


def test_transformer_encoder_layer_batch_first_norm_first(count, torch_flops):
    model = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True, norm_first=True,
                                       device="meta")
    x = meta(3, 4, 16)
    # = 4 * 2*3*4*16*16 + 2*2*3*4*4*16 + 2 * 2*3*4*16*32
    expected = 52224
    assert count_in_every_mode(count, model, x) == expected
    assert torch_flops(model, x) == expected


def test_transformer_encoder_layer_unbatched(count, torch_flops):
    model = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, device="meta")
    x = meta(5, 16)
    # N = 1: = 4 * 2*5*16*16 + 2*2*5*5*16 + 2 * 2*5*16*32
    expected = 22080
    assert count_in_every_mode(count, model, x) == expected
    assert torch_flops(model, x) == expected


@pytest.mark.parametrize("batch_first", [False, True], ids=["LNE", "NLE"])
def test_transformer_decoder_layer(count, torch_flops, batch_first):
    model = nn.TransformerDecoderLayer(16, 4, dim_feedforward=32, batch_first=batch_first, device="meta")
    tgt, memory = (meta(2, 5, 16), meta(2, 7, 16)) if batch_first else (meta(5, 2, 16), meta(7, 2, 16))
    # self-attention over L = 5: 4 * 2*N*L*E*E + 2*2*N*L*L*E
    # cross-attention to S = 7: 2 * 2*N*L*E*E + 2 * 2*N*S*E*E + 2*2*N*L*S*E
    # feed-forward: 2 * 2*N*L*E*F
    # = 4*2*2*5*16*16 + 2*2*2*5*5*16 + 2*2*2*5*16*16 + 2*2*2*7*16*16 + 2*2*2*5*7*16 + 2*2*2*5*16*32
    expected = 73216
    assert count_in_every_mode(count, model, tgt, memory) == expected
    assert torch_flops(model, tgt, memory) == expected


def test_transformer_encoder_stack(count, torch_flops):
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True, device="meta")
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    x = meta(2, 5, 16)
    # two encoder layers: = 2 * (4 * 2*2*5*16*16 + 2*2*2*5*5*16 + 2 * 2*2*5*16*32)
    expected = 88320
    assert count_in_every_mode(count, model, x) == expected
    assert torch_flops(model, x) == expected


def test_transformer_decoder_stack(count, torch_flops):
    layer = nn.TransformerDecoderLayer(16, 4, dim_feedforward=32, device="meta")
    model = nn.TransformerDecoder(layer, 2)
    tgt, memory = meta(5, 2, 16), meta(7, 2, 16)
    # two decoder layers (see test_transformer_decoder_layer):
    # = 2 * (4*2*2*5*16*16 + 2*2*2*5*5*16 + 2*2*2*5*16*16 + 2*2*2*7*16*16 + 2*2*2*5*7*16 + 2*2*2*5*16*32)
    expected = 146432
    assert count_in_every_mode(count, model, tgt, memory) == expected
    assert torch_flops(model, tgt, memory) == expected


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_transformer(count, torch_flops):
    model = nn.Transformer(16, 4, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=32,
                           device="meta")
    src, tgt = meta(7, 2, 16), meta(5, 2, 16)
    # an encoder layer over S = 7: 4 * 2*N*S*E*E + 2*2*N*S*S*E + 2 * 2*N*S*E*F
    #   = 4*2*2*7*16*16 + 2*2*2*7*7*16 + 2*2*2*7*16*32 = 63616
    # a decoder layer over L = 5 attending to S = 7: 73216 (see test_transformer_decoder_layer)
    # two encoder layers, one decoder layer = 2 * 63616 + 73216
    expected = 200448
    assert count_in_every_mode(count, model, src, tgt) == expected
    assert torch_flops(model, src, tgt) == expected


def test_transformer_inside_a_model(count, torch_flops):
    class Seq2Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = nn.Transformer(16, 4, 1, 1, 32, batch_first=True, device="meta")
            self.head = nn.Linear(16, 10, device="meta")

        def forward(self, src, tgt):
            return self.head(self.transformer(src, tgt))

    model = Seq2Seq()
    src, tgt = meta(2, 7, 16), meta(2, 5, 16)
    # one encoder layer over S = 7 (63616, see test_transformer), one decoder layer over L = 5
    # (73216, see test_transformer_decoder_layer), then the head 2*N*L*E*10:
    # = 63616 + 73216 + 2*2*5*16*10
    expected = 140032
    assert count_in_every_mode(count, model, src, tgt) == expected
    assert torch_flops(model, src, tgt) == expected

"""Rules of ``fxflops.rules.recurrent``: nn.RNN, nn.LSTM, nn.GRU and their cells.

Each case: fxflops == hand arithmetic == FlopCounterMode (meta tensors, grad on), no node
uncounted. Per time step, batch row, layer and direction, a layer with G gates (RNN 1, GRU 3,
LSTM 4), hidden size H and layer input size I costs ``2 * G * H * (I + H)``; with ``proj_size``
P the recurrent input is P instead of H and the projection adds ``2 * H * P``. Layers above the
first take ``directions * (P or H)`` inputs. T is the sequence length, N the batch size.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn


def meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, device="meta")


# -- nn.LSTM, nn.GRU, nn.RNN ------------------------------------------------------------------


def test_lstm_two_layers_bidirectional(count, torch_flops):
    model = nn.LSTM(4, 5, num_layers=2, bidirectional=True, device="meta")
    x = meta(7, 2, 4)
    # T * N * directions * (layer 0: 2*G*H*(I+H) + layer 1: 2*G*H*(2H+H))
    # = 7 * 2 * 2 * (2*4*5*(4+5) + 2*4*5*(10+5))
    expected = 26880
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_gru_two_layers_bidirectional(count, torch_flops):
    model = nn.GRU(4, 5, num_layers=2, bidirectional=True, device="meta")
    x = meta(7, 2, 4)
    # T * N * directions * (2*G*H*(I+H) + 2*G*H*(2H+H)) = 7 * 2 * 2 * (2*3*5*(4+5) + 2*3*5*(10+5))
    expected = 20160
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_lstm_proj_size(count, torch_flops):
    model = nn.LSTM(4, 5, proj_size=3, device="meta")
    x = meta(7, 2, 4)
    # T * N * (2*G*H*(I+P) + projection 2*H*P) = 7 * 2 * (2*4*5*(4+3) + 2*5*3)
    expected = 4340
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_lstm_proj_size_two_layers_bidirectional(count, torch_flops):
    model = nn.LSTM(4, 5, num_layers=2, bidirectional=True, proj_size=3, device="meta")
    x = meta(7, 2, 4)
    # layer 1 takes 2P = 6 inputs:
    # T * N * directions * ((2*G*H*(I+P) + 2*H*P) + (2*G*H*(2P+P) + 2*H*P))
    # = 7 * 2 * 2 * ((2*4*5*(4+3) + 2*5*3) + (2*4*5*(6+3) + 2*5*3))
    expected = 19600
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_rnn_tanh_two_layers_bidirectional(count, torch_flops):
    model = nn.RNN(4, 5, num_layers=2, bidirectional=True, device="meta")
    x = meta(7, 2, 4)
    # T * N * directions * (2*H*(I+H) + 2*H*(2H+H)) = 7 * 2 * 2 * (2*5*(4+5) + 2*5*(10+5))
    expected = 6720
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_rnn_relu_three_layers_batch_first(count, torch_flops):
    model = nn.RNN(4, 5, num_layers=3, nonlinearity="relu", batch_first=True, device="meta")
    x = meta(2, 7, 4)
    # N * T * (2*H*(I+H) + 2 * 2*H*(H+H)) = 2 * 7 * (2*5*(4+5) + 2 * 2*5*(5+5))
    expected = 4060
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_gru_batch_first_bidirectional(count, torch_flops):
    model = nn.GRU(4, 5, num_layers=2, bidirectional=True, batch_first=True, device="meta")
    x = meta(3, 7, 4)
    # N * T * directions * (2*G*H*(I+H) + 2*G*H*(2H+H)) = 3 * 7 * 2 * (2*3*5*(4+5) + 2*3*5*(10+5))
    expected = 30240
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


@pytest.mark.parametrize("batch_first", [False, True])
def test_gru_unbatched(count, torch_flops, batch_first):
    model = nn.GRU(4, 5, num_layers=2, bidirectional=True, batch_first=batch_first, device="meta")
    x = meta(7, 4)  # (T, I) whatever batch_first says
    # T * directions * (2*G*H*(I+H) + 2*G*H*(2H+H)) = 7 * 2 * (2*3*5*(4+5) + 2*3*5*(10+5))
    expected = 10080
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_lstm_with_initial_state(count, torch_flops):
    model = nn.LSTM(4, 5, batch_first=True, device="meta")
    x, state = meta(3, 7, 4), (meta(1, 3, 5), meta(1, 3, 5))
    # N * T * 2*G*H*(I+H) = 3 * 7 * 2*4*5*(4+5)
    expected = 7560
    assert count(model, x, state) == expected
    assert torch_flops(model, x, state) == expected


def test_gru_with_initial_state(count, torch_flops):
    model = nn.GRU(4, 5, device="meta")
    x, h0 = meta(7, 2, 4), meta(1, 2, 5)
    # T * N * 2*G*H*(I+H) = 7 * 2 * 2*3*5*(4+5)
    expected = 3780
    assert count(model, x, h0) == expected
    assert torch_flops(model, x, h0) == expected


# -- cells ------------------------------------------------------------------------------------


def test_rnn_cell(count, torch_flops):
    model = nn.RNNCell(6, 3, device="meta")
    x = meta(4, 6)
    # N * 2*H*(I+H) = 4 * 2*3*(6+3)
    expected = 216
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_gru_cell(count, torch_flops):
    model = nn.GRUCell(4, 5, device="meta")
    x = meta(2, 4)
    # N * 2*G*H*(I+H) = 2 * 2*3*5*(4+5)
    expected = 540
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_lstm_cell_with_state(count, torch_flops):
    model = nn.LSTMCell(4, 5, device="meta")
    x, state = meta(2, 4), (meta(2, 5), meta(2, 5))
    # N * 2*G*H*(I+H) = 2 * 2*4*5*(4+5)
    expected = 720
    assert count(model, x, state) == expected
    assert torch_flops(model, x, state) == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        # 2*H*(I+H) = 2*5*(4+5)
        pytest.param(nn.RNNCell, 90, id="rnn"),
        # 2*G*H*(I+H) = 2*3*5*(4+5)
        pytest.param(nn.GRUCell, 270, id="gru"),
        # 2*G*H*(I+H) = 2*4*5*(4+5)
        pytest.param(nn.LSTMCell, 360, id="lstm"),
    ],
)
def test_cells_unbatched(count, torch_flops, cell, expected):
    model = cell(4, 5, device="meta")
    x = meta(4)
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected

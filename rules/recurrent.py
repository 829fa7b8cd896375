"""Recurrent layers: the gate matmuls, 2 FLOPs per multiply-accumulate; biases and gate
nonlinearities are not counted.

Per time step, batch row, layer and direction, a layer with ``G`` gates (RNN 1, GRU 3, LSTM 4),
hidden size ``H``, recurrent size ``R`` (``proj_size`` if set, else ``H``) and layer input size
``I`` (``input_size`` for layer 0, ``R * num_directions`` above) computes
``2 * G * H * (I + R)`` FLOPs, plus ``2 * H * R`` for the LSTM projection when ``proj_size > 0``.
"""

from __future__ import annotations

from torch import nn

from fxflops.context import NodeContext
from fxflops.registry import rule

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def rnn_cost(module: nn.RNNBase, steps: int, batch: int) -> int:
    """FLOPs of a full ``nn.RNN``/``nn.LSTM``/``nn.GRU`` over ``steps`` time steps."""
    gates = _GATES[module.mode]
    hidden = module.hidden_size
    proj = getattr(module, "proj_size", 0) or 0
    recurrent = proj or hidden
    directions = 2 if module.bidirectional else 1
    per_token = 0
    for layer in range(module.num_layers):
        layer_input = module.input_size if layer == 0 else recurrent * directions
        per_direction = 2 * gates * hidden * (layer_input + recurrent)
        if proj:
            per_direction += 2 * hidden * proj
        per_token += per_direction * directions
    return per_token * steps * batch


def steps_and_batch(shape: tuple[int, ...], batch_first: bool) -> tuple[int, int]:
    """(time steps, batch) of a recurrent input: (T, N, I), (N, T, I) when batch_first, or (T, I)."""
    if len(shape) == 2:  # unbatched
        return shape[0], 1
    return (shape[1], shape[0]) if batch_first else (shape[0], shape[1])


@rule(nn.RNN, nn.LSTM, nn.GRU, category="recurrent")
def rnn_flops(ctx: NodeContext) -> int:
    """``nn.RNN``/``nn.LSTM``/``nn.GRU``: layers x directions x steps x batch x gate matmuls."""
    module = ctx.module
    assert isinstance(module, nn.RNNBase)
    steps, batch = steps_and_batch(ctx.input_shapes[0], module.batch_first)
    return rnn_cost(module, steps, batch)


@rule(nn.RNNCell, nn.LSTMCell, nn.GRUCell, category="recurrent")
def rnn_cell_flops(ctx: NodeContext) -> int:
    """One step of a cell: ``2 * G * H * (I + H)`` per batch row (G = 1, 4, 3)."""
    module = ctx.module
    assert isinstance(module, nn.RNNCellBase)
    gates = {nn.RNNCell: 1, nn.LSTMCell: 4, nn.GRUCell: 3}[next(c for c in type(module).__mro__
                                                               if c in (nn.RNNCell, nn.LSTMCell, nn.GRUCell))]
    shape = ctx.input_shapes[0]
    batch = shape[0] if len(shape) == 2 else 1
    return 2 * gates * module.hidden_size * (module.input_size + module.hidden_size) * batch

"""Built-in FLOP rules, one module per op family; installed as ``fxflops.rules``.

Importing this package registers every built-in rule in ``fxflops.registry.DEFAULT_REGISTRY``.
Find a rule by its op's family:

* ``linear``: ``nn.Linear``, ``F.linear``, ``matmul``/``@``, ``mm``, ``bmm``, ``baddbmm``,
  ``addmm``, ``addbmm``, ``einsum``
* ``conv``: ``nn.Conv1d/2d/3d``, ``nn.ConvTranspose1d/2d/3d`` and their functional forms
* ``attention``: ``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``,
  ``F.multi_head_attention_forward``, the ``nn.Transformer*`` layers
* ``recurrent``: ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` and their cells
* ``moe``: grouped matmuls of mixture-of-experts layers (``F.grouped_mm``, ``torch._grouped_mm``)
* ``by_convention``: norms, activations, softmax, elementwise arithmetic, reductions, pooling,
  interpolation (0 FLOPs under the default convention)
* ``linalg``: triangular solves (``torch.linalg.solve_triangular``), under ``"full"``
* ``spectral``: FFTs (``torch.fft``), ``5 N log2 N`` under ``"full"``
* ``zero``: views, reshapes, indexing, copies, casts, dropout, embedding lookups (0 by definition)
* ``aten``: the same families at the aten level, for graphs captured by ``torch.export``
* ``aten_twins``: every torch-level rule above on the aten operator of the same name, and on
  in-place variants (``aten.type_as``, ``aten.multiply``, ``aten.round_``)
"""

from __future__ import annotations

from . import (
    aten,  # after the families whose rules it reuses
    aten_twins,  # imports every family first: it mirrors their rules
    attention,
    by_convention,
    conv,
    linalg,
    linear,
    moe,
    recurrent,
    spectral,
    zero,
)

__all__ = ["aten", "aten_twins", "attention", "by_convention", "conv", "linalg", "linear", "moe", "recurrent",
           "spectral", "zero"]

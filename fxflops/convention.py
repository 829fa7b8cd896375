"""Counting conventions: which categories of ops a report counts.

Every rule belongs to a category. A convention says which categories are counted; the others are
known ops that are recorded with 0 FLOPs "by convention", never listed as uncounted.

``"default"`` counts what OpenCLIP's published table and ``torch.utils.flop_counter.FlopCounterMode``
count: matmul-class work (linear, matmul, convolution, attention, recurrent layers), 2 FLOPs per
multiply-accumulate, bias adds not counted. Norms, activations, softmax, elementwise arithmetic,
pooling, reductions and interpolation cost 0 under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Categories whose work is multiply-accumulates (1 MAC = 2 FLOPs); MACs are reported for them.
MATMUL_CLASS = frozenset({"matmul", "conv", "attention", "recurrent"})

#: Every category the built-in rules use, with a one-line meaning (used by docs and the CLI).
CATEGORIES: dict[str, str] = {
    "matmul": "linear layers, matmul, mm, bmm, einsum: 2 FLOPs per multiply-accumulate",
    "conv": "convolutions and transposed convolutions: 2 FLOPs per multiply-accumulate",
    "attention": "attention score and value matmuls, plus the projections of attention layers",
    "recurrent": "RNN, LSTM and GRU gate matmuls",
    "norm": "batch, layer, group, instance and RMS norms",
    "activation": "ReLU family, GELU, SiLU, sigmoid, tanh, softplus, ...",
    "softmax": "softmax and log-softmax",
    "elementwise": "elementwise arithmetic (add, mul, div, ...)",
    "reduction": "sum, mean, max, ... over dimensions",
    "pooling": "max, average and adaptive pooling",
    "interpolation": "upsampling and interpolation",
    "zero": "views, reshapes, indexing, copies, casts, shape arithmetic: 0 FLOPs by definition",
    "custom": "rules registered by users without a category: always counted",
}


@dataclass(frozen=True)
class Convention:
    """Which categories count.

    ``counted`` lists the categories whose rules' FLOPs enter the total; every other category is
    recorded as 0 "by convention". ``custom`` (rules registered without a category) always counts.
    """

    name: str
    counted: frozenset[str] = field(default_factory=frozenset)

    def counts(self, category: str) -> bool:
        """True when FLOPs of ``category`` enter the total under this convention."""
        return category == "custom" or category in self.counted

    def describe(self) -> str:
        """One line stating the unit and the convention, printed with every report."""
        counted = ", ".join(sorted(self.counted))
        return f"FLOPs (1 multiply-accumulate = 2 FLOPs), convention '{self.name}': counts {counted}"


DEFAULT = Convention("default", MATMUL_CLASS)

CONVENTIONS: dict[str, Convention] = {"default": DEFAULT}


def resolve_convention(convention: str | Convention) -> Convention:
    """The :class:`Convention` named by ``convention`` (or ``convention`` itself)."""
    if isinstance(convention, Convention):
        return convention
    try:
        return CONVENTIONS[convention]
    except KeyError:
        raise ValueError(
            f"unknown convention {convention!r}; expected one of {sorted(CONVENTIONS)} or a Convention"
        ) from None

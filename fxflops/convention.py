"""Counting conventions: which categories of ops a report counts, and at what per-element cost.

Every rule belongs to a category. A convention says which categories are counted; the others are
known ops that are recorded with 0 FLOPs "by convention", never listed as uncounted.

* ``"default"`` counts what OpenCLIP's published table and ``torch.utils.flop_counter.FlopCounterMode``
  count: matmul-class work (linear, matmul, convolution, attention, recurrent layers), 2 FLOPs per
  multiply-accumulate, bias adds not counted. Norms, activations, softmax, elementwise arithmetic,
  pooling, reductions and interpolation cost 0 under it.
* ``"full"`` also counts norms, activations, softmax, elementwise arithmetic, reductions, pooling,
  interpolation and bias adds, with the formulas of ``fxflops.rules.by_convention`` (the table is
  in ``docs/conventions.md``). Fused ops count what their unfused equivalent would: under
  ``"full"``, ``F.scaled_dot_product_attention`` adds its score scaling and softmax, a
  ``nn.TransformerEncoderLayer`` its norms, activation, residual adds and biases.

MACs (multiply-accumulates) are reported for matmul-class work only, under every convention: bias
adds, softmax and the rest never add MACs.

Build your own:

>>> from fxflops.convention import Convention, DEFAULT
>>> mine = Convention("matmul+norms", counted=DEFAULT.counted | {"norm", "softmax"},
...                   per_element={"norm": 4})
>>> mine.counts("norm"), mine.counts("activation"), mine.constant("norm", 7)
(True, False, 4)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Categories whose work is multiply-accumulates (1 MAC = 2 FLOPs); MACs are reported for them.
MATMUL_CLASS = frozenset({"matmul", "conv", "attention", "recurrent"})

#: Every category the built-in rules use, with a one-line meaning (used by docs and the CLI).
#: ``bias`` is not a rule category of its own: bias adds are counted inside their node (a linear,
#: convolution or attention layer), and a convention that counts ``bias`` adds them there.
CATEGORIES: dict[str, str] = {
    "matmul": "linear layers, matmul, mm, bmm, einsum: 2 FLOPs per multiply-accumulate",
    "conv": "convolutions and transposed convolutions: 2 FLOPs per multiply-accumulate",
    "attention": "attention score and value matmuls, plus the projections of attention layers",
    "recurrent": "RNN, LSTM and GRU gate matmuls",
    "bias": "bias adds of linear, convolution and attention layers, counted inside their node",
    "norm": "batch, layer, group, instance and RMS norms",
    "activation": "ReLU family, GELU, SiLU, sigmoid, tanh, softplus, ...",
    "softmax": "softmax and log-softmax",
    "elementwise": "elementwise arithmetic (add, mul, div, ...)",
    "reduction": "sum, mean, max, ... over dimensions",
    "pooling": "max, average and adaptive pooling",
    "interpolation": "upsampling and interpolation",
    "zero": "views, reshapes, indexing, copies, casts, shape arithmetic: 0 FLOPs by definition",
    "custom": "rules registered by users without a category: always counted",
    "fft": "fast Fourier transforms (torch.fft): 5 N log2 N per complex transform of N points",
    "linalg": "dense linear algebra beyond products: triangular solves (n^2 per right-hand side)",
}

def add_category(name: str, meaning: str) -> None:
    """Declare a category of your own rules, so conventions and rules may name it.

    Categories are checked when a convention or a rule names one: a misspelt category
    (``"matmull"``) would otherwise count 0 without a word.
    """
    if not isinstance(name, str) or not name or not name.isidentifier():
        raise ValueError(f"a category name is a non-empty identifier, got {name!r}")
    CATEGORIES.setdefault(name, meaning)


def check_category(name: Any, what: str) -> None:
    """Raise ``ValueError`` naming the known categories if ``name`` is not one of them."""
    if name not in CATEGORIES:
        close = difflib.get_close_matches(str(name), CATEGORIES, n=1)
        raise ValueError(
            f"{what} names the unknown category {name!r}{f' (did you mean {close[0]!r}?)' if close else ''}; "
            f"known: {', '.join(CATEGORIES)}; declare one of your own with fxflops.convention.add_category(name, "
            "meaning)")


#: Categories whose built-in formulas are ``constant * elements``; ``Convention.per_element`` may
#: replace their constant (see ``docs/conventions.md`` for each default and what it multiplies).
PER_ELEMENT_CATEGORIES = frozenset(
    {"bias", "norm", "activation", "softmax", "elementwise", "reduction", "pooling", "interpolation"}
)

#: What the ``"full"`` convention counts: everything but the ``zero`` category.
FULL_CATEGORIES = MATMUL_CLASS | PER_ELEMENT_CATEGORIES | {"fft", "linalg"}


@dataclass(frozen=True)
class Convention:
    """Which categories count, and optional per-element constants for the non-matmul ones.

    Args:
        name: shown in reports (``convention 'full'``).
        counted: the categories whose FLOPs enter the total (any iterable of names; user rules
            may use categories of their own). Every other category is recorded as 0 "by
            convention". ``custom`` (rules registered without a category) always counts, and
            ``zero`` never costs anything: its rules return 0.
        per_element: ``{category: FLOPs}`` replacing the built-in per-element constant of a
            category in :data:`PER_ELEMENT_CATEGORIES` for every op in it, e.g.
            ``{"norm": 4, "softmax": 1}`` for fvcore's non-affine norm and ptflops' softmax.
            Built-in constants that vary by op (a norm with or without affine parameters, a
            weighted vs a nearest interpolation) all become that one number; what it multiplies
            (output elements, window elements read, neighbours) does not change. Integers >= 0.

    >>> Convention("mine", counted={"matmul", "conv", "softmax"}).counts("softmax")
    True
    """

    name: str
    counted: frozenset[str] = field(default_factory=frozenset)
    per_element: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if isinstance(self.counted, str) or not isinstance(self.counted, Iterable):
            raise TypeError(f"counted must be an iterable of category names, got {self.counted!r}")
        object.__setattr__(self, "counted", frozenset(self.counted))
        for category in sorted(self.counted, key=str):
            check_category(category, f"Convention {self.name!r}")
        constants = dict(self.per_element)
        for category, value in constants.items():
            if category not in PER_ELEMENT_CATEGORIES:
                raise ValueError(
                    f"per_element sets {category!r}, which has no per-element constant; expected one of "
                    f"{', '.join(sorted(PER_ELEMENT_CATEGORIES))}"
                )
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"per_element[{category!r}] must be an int >= 0, got {value!r}")
        object.__setattr__(self, "per_element", MappingProxyType(constants))

    def counts(self, category: str) -> bool:
        """True when FLOPs of ``category`` enter the total under this convention."""
        return category == "custom" or category in self.counted

    def constant(self, category: str, default: int) -> int:
        """The per-element constant of ``category``: this convention's override, else ``default``."""
        return self.per_element.get(category, default)

    def charge(self, category: str, per_element: int, elements: Any) -> Any:
        """FLOPs of ``elements`` at ``per_element`` each when ``category`` counts, else 0.

        For rules that fold work of another category into their node: a linear layer's bias add
        (``charge("bias", 1, numel(out))``), the softmax inside fused attention. Honours
        :attr:`per_element` overrides.
        """
        if not self.counts(category):
            return 0
        return self.constant(category, per_element) * elements

    def describe(self) -> str:
        """One line stating the unit and the convention, printed with every report."""
        counted = ", ".join(sorted(self.counted))
        text = f"FLOPs (1 multiply-accumulate = 2 FLOPs), convention '{self.name}': counts {counted}"
        if self.per_element:
            constants = ", ".join(f"{k}={v}" for k, v in sorted(self.per_element.items()))
            text += f"; per-element constants {constants}"
        return text


DEFAULT = Convention("default", MATMUL_CLASS)

#: Everything but views: norms, activations, softmax, elementwise, reductions, pooling,
#: interpolation and bias adds on top of the matmul-class work.
FULL = Convention("full", FULL_CATEGORIES)

CONVENTIONS: dict[str, Convention] = {"default": DEFAULT, "full": FULL}


def resolve_convention(convention: str | Convention) -> Convention:
    """The :class:`Convention` named by ``convention`` (or ``convention`` itself)."""
    if isinstance(convention, Convention):
        return convention
    try:
        return CONVENTIONS[convention]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown convention {convention!r}; expected one of {sorted(CONVENTIONS)} or a Convention"
        ) from None

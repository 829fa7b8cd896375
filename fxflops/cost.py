"""What a rule may return besides an int: a :class:`Cost`, the FLOPs of a fused node by kind.

A fused node (a linear layer with its bias add, attention with its softmax, a whole transformer
layer) does matmul-class work and other work at once. Its MACs are those of the matmul part only,
so they are not half its FLOPs once a convention also counts the rest. A rule says so by
returning ``Cost(matmul=..., extra=...)`` instead of an int; the counting step
(:func:`fxflops.node_count.count_node`) takes ``matmul + extra`` as the node's FLOPs and
``macs`` (default: ``matmul // 2``, 2 FLOPs per multiply-accumulate) as its MACs, and checks
every field as it checks an int.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Cost:
    """FLOPs of one node by kind.

    Attributes:
        matmul: FLOPs of its multiply-accumulates (2 per MAC).
        extra: FLOPs of the other work the convention counts (bias adds, softmax, norms...); the
            rule asks the convention (``ctx.convention.charge``) what that is.
        macs: its multiply-accumulates; ``None`` means ``matmul // 2``.
    """

    matmul: Any = 0
    extra: Any = 0
    macs: Any = None

    @property
    def multiply_accumulates(self) -> Any:
        """``macs``, or half the matmul FLOPs when the rule left it unset."""
        return self.macs if self.macs is not None else half(self.matmul)

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.matmul + other.matmul, self.extra + other.extra,
                    self.multiply_accumulates + other.multiply_accumulates)


def half(flops: Any) -> Any:
    """MACs from the FLOPs of matmul-class work (2 per MAC; exact: those FLOPs are even), also for a
    symbolic count."""
    if isinstance(flops, int):
        return flops // 2
    from fxflops.symbolic import half as symbolic_half

    return symbolic_half(flops)

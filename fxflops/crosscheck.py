"""A second opinion: fxflops next to torch's FlopCounterMode, per op family.

FlopCounterMode is run the way that makes it count everything it can: on fake tensors (no
memory, no weights), with the math SDPA kernel (its fused CPU kernels have no formula) and with
autograd on (in eval + ``no_grad`` the ``nn.MultiheadAttention`` fast path dispatches one fused op
it does not count). Its per-op counts are grouped into the families fxflops uses as categories.

Families differ by construction in one place: fxflops's rules for attention *layers*
(``nn.MultiheadAttention``, the ``nn.Transformer*`` layers) count their projections under
``attention``, while FlopCounterMode sees them as ``matmul`` (addmm/mm). Totals are comparable
everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fxflops.report import FlopReport
from fxflops.shapes import meta_clone, to_meta

#: FlopCounterMode's aten ops, by the fxflops category they belong to.
_TORCH_FAMILIES = {
    "mm": "matmul", "addmm": "matmul", "bmm": "matmul", "baddbmm": "matmul", "_scaled_mm": "matmul",
    "convolution": "conv", "_convolution": "conv", "convolution_backward": "conv",
}


def _torch_family(op: Any) -> str:
    name = getattr(op, "__name__", str(op)).split(".")[0]
    if "attention" in name:
        return "attention"
    return _TORCH_FAMILIES.get(name, name)


@dataclass
class Crosscheck:
    """fxflops's count and FlopCounterMode's for the same model and inputs.

    Attributes:
        report: the fxflops report.
        torch_total: FlopCounterMode's total.
        fxflops_families: category -> FLOPs (matmul-class categories only).
        torch_families: family -> FLOPs from FlopCounterMode's per-op counts.
    """

    report: FlopReport
    torch_total: int
    fxflops_families: dict[str, int] = field(default_factory=dict)
    torch_families: dict[str, int] = field(default_factory=dict)

    @property
    def fxflops_total(self) -> int:
        """fxflops's total FLOPs."""
        return self.report.total

    @property
    def difference(self) -> int:
        """fxflops minus FlopCounterMode."""
        return self.fxflops_total - self.torch_total

    @property
    def agrees(self) -> bool:
        """True when both totals are equal to the FLOP."""
        return self.difference == 0

    def differences(self) -> dict[str, int]:
        """Per family, fxflops minus FlopCounterMode (see the module docstring on attention)."""
        families = sorted(set(self.fxflops_families) | set(self.torch_families))
        return {f: self.fxflops_families.get(f, 0) - self.torch_families.get(f, 0) for f in families}

    def __str__(self) -> str:
        verdict = "agree" if self.agrees else f"differ by {self.difference:+,}"
        return f"fxflops {self.fxflops_total:,} vs FlopCounterMode {self.torch_total:,} FLOPs: {verdict}"


def torch_flop_count(
    model: nn.Module, inputs: Sequence[Any], kwargs: Mapping[str, Any] | None = None, method: str = "forward"
) -> tuple[int, dict[str, int]]:
    """FlopCounterMode's total and per-family counts, run on fake tensors of a meta clone."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    cache: dict[int, torch.Tensor] = {}
    clone = meta_clone(model, cache)
    meta_inputs = to_meta(tuple(inputs), cache)
    meta_kwargs = to_meta(dict(kwargs or {}), cache)
    counter = FlopCounterMode(display=False)
    with contextlib.ExitStack() as stack:
        stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
        stack.enter_context(torch.enable_grad())
        stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        stack.enter_context(counter)
        getattr(clone, method)(*meta_inputs, **meta_kwargs)
    families: dict[str, int] = {}
    for op, flops in counter.get_flop_counts().get("Global", {}).items():
        family = _torch_family(op)
        families[family] = families.get(family, 0) + int(flops)
    return int(counter.get_total_flops()), families


def crosscheck(
    model: nn.Module,
    inputs: torch.Tensor | Sequence[Any],
    kwargs: Mapping[str, Any] | None = None,
    *,
    method: str = "forward",
    **count_kwargs: Any,
) -> Crosscheck:
    """Count ``model`` with fxflops and with FlopCounterMode; compare totals and families.

    >>> check = fxflops.crosscheck(torchvision.models.resnet18(), torch.empty(1, 3, 224, 224))  # doctest: +SKIP
    >>> check.agrees, check.torch_total  # doctest: +SKIP
    (True, 3628146688)
    """
    from fxflops.api import count
    from fxflops.convention import MATMUL_CLASS

    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    report = count(model, tuple(inputs), kwargs=kwargs, method=method, **count_kwargs)
    torch_total, torch_families = torch_flop_count(model, tuple(inputs), kwargs, method)
    ours = {c: f for c, f in report.by_category().items() if c in MATMUL_CLASS}
    return Crosscheck(report=report, torch_total=torch_total, fxflops_families=ours, torch_families=torch_families)

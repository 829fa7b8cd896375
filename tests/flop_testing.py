"""Helpers shared by the test files: meta tensors, and counts by fxflops and by FlopCounterMode.

A plain module (not a conftest) so that test files can import it by name: pytest puts ``tests/``
on ``sys.path`` for ``tests/conftest.py``. ``tests/rules/conftest.py`` hands the counting helpers
to the rule tests as fixtures.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import fxflops


def meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` on the meta device: a shape and a dtype, no data."""
    return torch.empty(shape, dtype=dtype, device="meta")


def _on_meta(value: Any) -> Any:
    return value.to("meta") if isinstance(value, torch.Tensor) else value


def torch_reference_flops(fn: nn.Module | Callable[..., Any], *inputs: Any, **kwargs: Any) -> int:
    """FlopCounterMode's total for ``fn(*inputs, **kwargs)`` on meta tensors, math SDPA, grad on.

    A module with weights off the meta device is copied to it; the caller's module is not moved.
    Tuples of tensors among the inputs (an LSTM's ``(h0, c0)``) are moved too.
    """
    if isinstance(fn, nn.Module) and any(t.device.type != "meta" for t in [*fn.parameters(), *fn.buffers()]):
        fn = copy.deepcopy(fn).to("meta")
    inputs = tuple(tuple(map(_on_meta, i)) if isinstance(i, tuple) else _on_meta(i) for i in inputs)
    kwargs = {key: _on_meta(value) for key, value in kwargs.items()}
    counter = FlopCounterMode(display=False)
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        fn(*inputs, **kwargs)
    return counter.get_total_flops()


def fxflops_total(model: nn.Module, *inputs: Any, kwargs: Mapping[str, Any] | None = None) -> int:
    """``fxflops.count(model, inputs).total``, after checking that no node was left uncounted."""
    report = fxflops.count(model, inputs, kwargs=kwargs)
    assert [record.name for record in report.uncounted] == []
    return report.total


class Call(nn.Module):
    """A module whose forward calls ``fn(*constants, *inputs, **keywords)``: functional ops get a
    graph node of their own. The subclasses give forward a signature fxflops can trace."""

    def __init__(self, fn: Callable[..., Any], *constants: Any, **keywords: Any) -> None:
        super().__init__()
        self.fn = fn
        self.constants = constants
        self.keywords = keywords


class Call1(Call):
    def forward(self, a: Any) -> Any:
        return self.fn(*self.constants, a, **self.keywords)


class Call2(Call):
    def forward(self, a: Any, b: Any) -> Any:
        return self.fn(*self.constants, a, b, **self.keywords)


class Call3(Call):
    def forward(self, a: Any, b: Any, c: Any) -> Any:
        return self.fn(*self.constants, a, b, c, **self.keywords)


class Call4(Call):
    def forward(self, a: Any, b: Any, c: Any, d: Any) -> Any:
        return self.fn(*self.constants, a, b, c, d, **self.keywords)


_CALLS: dict[int, type[Call]] = {1: Call1, 2: Call2, 3: Call3, 4: Call4}


def make_call(fn: Callable[..., Any], n_inputs: int, *constants: Any, **keywords: Any) -> Call:
    """``Call`` taking ``n_inputs`` tensors: ``make_call(torch.einsum, 2, "ij,jk->ik")``."""
    return _CALLS[n_inputs](fn, *constants, **keywords)

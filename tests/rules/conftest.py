"""Fixtures for the built-in rule tests: count with fxflops, and with torch's FlopCounterMode.

Every rule test checks one case three ways: fxflops' total equals an integer worked out by hand
(the arithmetic is written in a comment above it), FlopCounterMode's total equals the same
integer, and fxflops left no node uncounted. The helpers live in ``tests/flop_testing.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flop_testing import Call, fxflops_total, make_call, torch_reference_flops


@pytest.fixture
def torch_flops() -> Callable[..., int]:
    """``torch_flops(module_or_fn, *inputs, **kwargs)``: FlopCounterMode's total (see above)."""
    return torch_reference_flops


@pytest.fixture
def count() -> Callable[..., int]:
    """``count(model, *inputs, kwargs=None)``: fxflops' total; fails if a node is uncounted."""
    return fxflops_total


@pytest.fixture
def call() -> Callable[..., Call]:
    """``call(fn, n_inputs, *constants, **keywords)``: wrap a functional op in a module."""
    return make_call

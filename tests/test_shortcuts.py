"""The speed shortcuts give what the slow path gives: same shapes, dtypes, strides, graphs.

Counting skips work where the answer is known from shapes alone (elementwise arithmetic, norms
and activations, parameter lookups while tracing, pytree walks). Each shortcut is checked here
against the code it stands in for: running the op on meta tensors, torch.fx's own tracer,
``tree_leaves``, ``inspect.signature``.
"""

from __future__ import annotations

import inspect
import operator
from collections import OrderedDict, namedtuple
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import fx, nn
from torch.fx.immutable_collections import immutable_dict, immutable_list
from torch.utils._pytree import tree_leaves

import fxflops
from fxflops.context import _signature
from fxflops.counter import _elementwise_output, _same_shape
from fxflops.registry import DEFAULT_REGISTRY
from fxflops.shapes import tensor_leaves
from fxflops.tracing import FlopTracer

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)

OPS = [operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.mul]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.bool]
dims = st.lists(st.sampled_from([1, 2, 3]), min_size=0, max_size=4)


def _operand(shape: list[int], dtype: torch.dtype, transposed: bool) -> torch.Tensor:
    tensor = torch.empty(shape, dtype=dtype, device="meta")
    if transposed and tensor.dim() >= 2:
        tensor = tensor.transpose(0, 1)
    return tensor


@st.composite
def elementwise_calls(draw: Any) -> tuple[Any, tuple[Any, ...]]:
    op = draw(st.sampled_from(OPS))
    left = _operand(draw(dims), draw(st.sampled_from(DTYPES)), draw(st.booleans()))
    kind = draw(st.sampled_from(["tensor", "int", "float", "bool"]))
    if kind == "tensor":
        right: Any = _operand(draw(dims), draw(st.sampled_from(DTYPES)), draw(st.booleans()))
    else:
        right = {"int": 3, "float": 0.5, "bool": True}[kind]
    args = (left, right) if draw(st.booleans()) else (right, left)
    return op, args


@SETTINGS
@given(call=elementwise_calls(), grad=st.booleans())
def test_elementwise_shortcut_matches_the_op(call: tuple[Any, tuple[Any, ...]], grad: bool) -> None:
    op, args = call
    if grad:
        args = tuple(a.detach().requires_grad_(True) if isinstance(a, torch.Tensor) and a.is_floating_point()
                     else a for a in args)
    try:
        expected = op(*args)
    except RuntimeError:
        expected = None
    fast = _elementwise_output(args, {})
    if fast is None:
        return  # the real op runs instead
    assert expected is not None, "the shortcut must not hide an error the op raises"
    assert fast.shape == expected.shape
    assert fast.dtype == expected.dtype
    assert fast.stride() == expected.stride()
    assert fast.requires_grad == expected.requires_grad


def test_elementwise_shortcut_takes_the_common_case_and_leaves_the_rest() -> None:
    x = torch.empty(8, 197, 768, device="meta")
    # the residual add of every transformer block, and a broadcast bias
    assert _elementwise_output((x, x), {}).shape == (8, 197, 768)
    assert _elementwise_output((x, torch.empty(768, device="meta")), {}).shape == (8, 197, 768)
    assert _elementwise_output((2.0, x), {}).shape == (8, 197, 768)
    # promotion, odd layouts and bad shapes run the real op
    assert _elementwise_output((x, x.half()), {}) is None
    assert _elementwise_output((x.transpose(0, 1), x.transpose(0, 1)), {}) is None
    assert _elementwise_output((x, torch.empty(5, device="meta")), {}) is None
    assert _elementwise_output((x, x), {"out": x}) is None


@pytest.mark.parametrize("permute", [False, True])
def test_same_shape_keeps_layout(permute: bool) -> None:
    x = torch.empty(2, 3, 4, 5, device="meta")
    if permute:
        x = x.permute(0, 2, 3, 1)
    expected = torch.relu(x)
    out = _same_shape(x)
    assert (out.shape, out.stride(), out.dtype) == (expected.shape, expected.stride(), expected.dtype)


Pair = namedtuple("Pair", "first second")


@pytest.mark.parametrize("value", [
    (1, torch.ones(2)),
    [torch.ones(1), [2.0, (torch.ones(3), None)], {"a": torch.ones(4)}],
    immutable_dict({"x": torch.ones(1), "y": immutable_list([torch.ones(2), 3])}),
    OrderedDict(b=torch.ones(1), a=torch.ones(2)),
    Pair(torch.ones(5), torch.Size([1, 2])),
    {"s": slice(0, 2), "d": torch.float16, "e": ...},
])
def test_tensor_leaves_match_tree_leaves(value: Any) -> None:
    expected = [leaf for leaf in tree_leaves(value) if isinstance(leaf, torch.Tensor)]
    found = tensor_leaves(value)
    assert len(found) == len(expected)
    assert all(a is b for a, b in zip(found, expected, strict=True))


_OUTSIDE = torch.ones(4)


class _Shared(nn.Module):
    """Parameters shared between modules, a parameter read in forward, a buffer passed as an
    argument, a plain tensor attribute, and a tensor from outside the model."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.b.weight = self.a.weight
        self.scale = nn.Parameter(torch.ones(4))
        self.register_buffer("mask", torch.zeros(4))
        self.free = torch.ones(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b(self.a(x)) * self.scale
        y = torch.add(y, self.mask)
        return torch.where(y > 0, y, self.free) + self.b.weight.sum() + _OUTSIDE


def _describe(graph: fx.Graph) -> list[tuple[str, str]]:
    return [(n.op, str(n.target)) for n in graph.nodes]


def test_tracer_index_builds_torch_fx_graph() -> None:
    class Plain(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, name: str) -> bool:
            return isinstance(m, nn.Linear) or super().is_leaf_module(m, name)

    ours = FlopTracer(DEFAULT_REGISTRY).trace(_Shared())
    theirs = Plain().trace(_Shared())
    assert _describe(ours) == _describe(theirs)
    targets = {target for op, target in _describe(ours) if op == "get_attr"}
    # the shared weight is reached by its first name, as torch.fx's scan finds it; a tensor from
    # outside the model becomes a constant
    assert targets == {"scale", "mask", "free", "a.weight", "_tensor_constant0"}


def test_counts_with_shared_weights_and_buffers() -> None:
    x = torch.empty(2, 4, device="meta")
    report = fxflops.count(_Shared(), x)
    # two nn.Linear(4, 4) on 2 rows: 2 * (2 * 2 * 4 * 4) = 128; the rest is elementwise (0 by default)
    assert report.total == 128
    # 16 shared weights + 2 * 4 biases + 4 scale = 28
    assert report.params == 28


class _Varargs(nn.Module):
    def forward(*args: Any) -> Any:
        return args


class _Plain(nn.Module):
    def forward(self, x: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
        return x * scale


@pytest.mark.parametrize("module", [_Plain(), _Varargs(), nn.Linear(2, 2), nn.MultiheadAttention(4, 2)])
def test_cached_signature_equals_inspect(module: nn.Module) -> None:
    assert _signature(module.forward) == inspect.signature(module.forward)
    assert _signature(module.forward) == inspect.signature(module.forward)  # from the cache


@pytest.mark.parametrize("kind,proj_size", [(nn.LSTM, 0), (nn.LSTM, 3), (nn.GRU, 0), (nn.RNN, 0)])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batched", [True, False])
def test_recurrent_shortcut_matches_running_it(kind: type[nn.RNNBase], proj_size: int, batch_first: bool,
                                               bidirectional: bool, batched: bool) -> None:
    from fxflops.counter import _fast_output

    options = {"proj_size": proj_size} if proj_size else {}
    with torch.device("meta"):
        module = kind(4, 5, num_layers=2, batch_first=batch_first, bidirectional=bidirectional, **options)
    x = torch.empty((2, 3, 4) if batched else (3, 4), device="meta", requires_grad=True)
    with torch.enable_grad():
        expected = module(x)
        fast = _fast_output(module, (x,), {})
    assert [(t.shape, t.dtype, t.requires_grad) for t in tree_leaves(fast)] == \
        [(t.shape, t.dtype, t.requires_grad) for t in tree_leaves(expected)]
    assert type(fast[1]) is type(expected[1])  # LSTM: a (h_n, c_n) tuple

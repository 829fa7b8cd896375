"""Rules of ``fxflops.rules.linear``: linear layers, matmul and friends, einsum, bilinear.

Each case: fxflops == hand arithmetic == FlopCounterMode (meta tensors, grad on), no node
uncounted. Where FlopCounterMode cannot count an op, the test says why and asserts its 0, so the
test notices the day torch learns to count it.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn


def meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, device="meta")


@pytest.fixture
def left_to_right():
    """torch.einsum's default order: with opt_einsum installed, torch would follow its path."""
    with torch.backends.opt_einsum.flags(enabled=False):
        yield


# -- nn.Linear, F.linear ----------------------------------------------------------------------


def test_linear_module_3d_input(count, torch_flops):
    model = nn.Linear(8, 5, device="meta")
    x = meta(2, 3, 8)
    # 2 * N * L * in * out = 2 * 2 * 3 * 8 * 5
    expected = 480
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_linear_module_without_bias(count, torch_flops):
    model = nn.Linear(6, 7, bias=False, device="meta")
    x = meta(4, 6)
    # 2 * N * in * out = 2 * 4 * 6 * 7
    expected = 336
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_linear_module_unbatched(count, torch_flops):
    model = nn.Linear(6, 7, device="meta")
    x = meta(6)
    # 2 * in * out = 2 * 6 * 7
    expected = 84
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_functional_linear_3d_with_bias(count, torch_flops, call):
    model = call(F.linear, 3)
    x, w, b = meta(3, 2, 8), meta(6, 8), meta(6)
    # 2 * N * L * in * out = 2 * 3 * 2 * 8 * 6
    expected = 576
    assert count(model, x, w, b) == expected
    assert torch_flops(model, x, w, b) == expected


def test_functional_linear_4d_without_bias(count, torch_flops, call):
    model = call(F.linear, 2)
    x, w = meta(2, 4, 3, 5), meta(7, 5)
    # 2 * (2 * 4 * 3) rows * in * out = 2 * 2 * 4 * 3 * 5 * 7
    expected = 1680
    assert count(model, x, w) == expected
    assert torch_flops(model, x, w) == expected


# -- matmul -----------------------------------------------------------------------------------

MATMUL_CASES = [
    # (n, k) @ (k, m): 2 * n * k * m = 2 * 3 * 4 * 5
    pytest.param((3, 4), (4, 5), 120, id="2d@2d"),
    # 1-D on the left: (k,) @ (k, m) -> (m,): 2 * k * m = 2 * 4 * 5
    pytest.param((4,), (4, 5), 40, id="1d@2d"),
    # 1-D on the left, batched right: (k,) @ (B, k, m) -> (B, m): 2 * B * k * m = 2 * 2 * 4 * 5
    pytest.param((4,), (2, 4, 5), 80, id="1d@3d"),
    # broadcast on the left operand: (n, k) @ (B, k, m) -> (B, n, m):
    # 2 * B * n * m * k = 2 * 2 * 3 * 5 * 4
    pytest.param((3, 4), (2, 4, 5), 240, id="broadcast-left"),
    # broadcast on the right operand: (B, n, k) @ (k, m) -> (B, n, m):
    # 2 * B * n * m * k = 2 * 2 * 3 * 6 * 4
    pytest.param((2, 3, 4), (4, 6), 288, id="broadcast-right"),
    # both sides broadcast: (2, 1, n, k) @ (5, k, m) -> (2, 5, n, m):
    # 2 * 2 * 5 * n * m * k = 2 * 2 * 5 * 3 * 6 * 4
    pytest.param((2, 1, 3, 4), (5, 4, 6), 1440, id="broadcast-both"),
    # equal batches: (B, n, k) @ (B, k, m): 2 * B * n * k * m = 2 * 3 * 2 * 4 * 7
    pytest.param((3, 2, 4), (3, 4, 7), 336, id="batched"),
]


@pytest.mark.parametrize(("a", "b", "expected"), MATMUL_CASES)
def test_torch_matmul(count, torch_flops, call, a, b, expected):
    model = call(torch.matmul, 2)
    assert count(model, meta(*a), meta(*b)) == expected
    assert torch_flops(model, meta(*a), meta(*b)) == expected


@pytest.mark.parametrize(
    "fn",
    [pytest.param(lambda a, b: a @ b, id="operator"), pytest.param(lambda a, b: a.matmul(b), id="method")],
)
def test_matmul_operator_and_method(count, torch_flops, call, fn):
    model = call(fn, 2)
    a, b = meta(2, 3, 4), meta(4, 6)
    # 2 * B * n * m * k = 2 * 2 * 3 * 6 * 4
    expected = 288
    assert count(model, a, b) == expected
    assert torch_flops(model, a, b) == expected


MATMUL_VECTOR_CASES = [
    # (n, k) @ (k,) -> (n,): 2 * n * k = 2 * 3 * 4
    pytest.param((3, 4), (4,), 24, id="2d@1d"),
    # (B, n, k) @ (k,) -> (B, n): 2 * B * n * k = 2 * 2 * 3 * 4
    pytest.param((2, 3, 4), (4,), 48, id="3d@1d"),
    # (k,) @ (k,) -> (): 2 * k = 2 * 4
    pytest.param((4,), (4,), 8, id="1d@1d"),
]


@pytest.mark.parametrize(("a", "b", "expected"), MATMUL_VECTOR_CASES)
def test_matmul_with_1d_right_operand(count, torch_flops, call, a, b, expected):
    model = call(torch.matmul, 2)
    assert count(model, meta(*a), meta(*b)) == expected
    # FlopCounterMode counts 0 here: torch.matmul runs these as aten.mv / aten.dot, for which
    # torch.utils.flop_counter has no formula (checked on meta and CPU tensors alike).
    assert torch_flops(model, meta(*a), meta(*b)) == 0


# -- mm, bmm, addmm, baddbmm, addbmm, mv, dot, inner ------------------------------------------


def test_mm(count, torch_flops, call):
    model = call(torch.mm, 2)
    a, b = meta(3, 4), meta(4, 5)
    # 2 * n * k * m = 2 * 3 * 4 * 5
    expected = 120
    assert count(model, a, b) == expected
    assert torch_flops(model, a, b) == expected


def test_bmm(count, torch_flops, call):
    model = call(torch.bmm, 2)
    a, b = meta(2, 3, 4), meta(2, 4, 5)
    # 2 * B * n * k * m = 2 * 2 * 3 * 4 * 5
    expected = 240
    assert count(model, a, b) == expected
    assert torch_flops(model, a, b) == expected


def test_addmm_with_broadcast_bias_and_scaling(count, torch_flops, call):
    model = call(torch.addmm, 3, beta=0.5, alpha=2.0)
    c, a, b = meta(5), meta(6, 4), meta(4, 5)
    # the product only: 2 * n * k * m = 2 * 6 * 4 * 5
    expected = 240
    assert count(model, c, a, b) == expected
    assert torch_flops(model, c, a, b) == expected


def test_addmm_method(count, torch_flops, call):
    model = call(lambda c, a, b: c.addmm(a, b), 3)
    c, a, b = meta(3, 7), meta(3, 2), meta(2, 7)
    # 2 * n * k * m = 2 * 3 * 2 * 7
    expected = 84
    assert count(model, c, a, b) == expected
    assert torch_flops(model, c, a, b) == expected


@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(torch.baddbmm, id="positional"),
        pytest.param(lambda c, a, b: torch.baddbmm(c, batch1=a, batch2=b, beta=0.0), id="keyword"),
    ],
)
def test_baddbmm(count, torch_flops, call, fn):
    model = call(fn, 3)
    c, a, b = meta(2, 3, 5), meta(2, 3, 4), meta(2, 4, 5)
    # 2 * B * n * k * m = 2 * 2 * 3 * 4 * 5
    expected = 240
    assert count(model, c, a, b) == expected
    assert torch_flops(model, c, a, b) == expected


def test_addbmm(count, torch_flops, call):
    model = call(torch.addbmm, 3)
    c, a, b = meta(3, 6), meta(2, 3, 4), meta(2, 4, 6)
    # sum over B of (n, k) @ (k, m): 2 * B * n * k * m = 2 * 2 * 3 * 4 * 6
    expected = 288
    assert count(model, c, a, b) == expected
    # FlopCounterMode has no formula for aten.addbmm (and it does not decompose on meta or CPU).
    assert torch_flops(model, c, a, b) == 0


def test_mv(count, torch_flops, call):
    model = call(torch.mv, 2)
    a, b = meta(3, 4), meta(4)
    # 2 * n * k = 2 * 3 * 4
    expected = 24
    assert count(model, a, b) == expected
    # FlopCounterMode has no formula for aten.mv.
    assert torch_flops(model, a, b) == 0


def test_dot(count, torch_flops, call):
    model = call(torch.dot, 2)
    a, b = meta(9), meta(9)
    # 2 * k = 2 * 9
    expected = 18
    assert count(model, a, b) == expected
    # FlopCounterMode has no formula for aten.dot.
    assert torch_flops(model, a, b) == 0


def test_inner_2d(count, torch_flops, call):
    model = call(torch.inner, 2)
    a, b = meta(3, 4), meta(5, 4)
    # (n, k) x (m, k) -> (n, m): 2 * n * m * k = 2 * 3 * 5 * 4
    expected = 120
    assert count(model, a, b) == expected
    assert torch_flops(model, a, b) == expected


# -- einsum -----------------------------------------------------------------------------------

EINSUM_CASES = [
    # batched matmul: 2 * b * i * j * k = 2 * 2 * 3 * 4 * 5
    pytest.param("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], 240, id="bmm"),
    # ellipsis, broadcast (2, 3) x (3,) batch dims: 2 * 2 * 3 * i * j * k = 2 * 2 * 3 * 4 * 5 * 6
    pytest.param("...ij,...jk->...ik", [(2, 3, 4, 5), (3, 5, 6)], 1440, id="ellipsis-broadcast"),
    # implicit output ("IK"), upper-case labels: 2 * I * j * K = 2 * 3 * 4 * 5
    pytest.param("Ij,jK", [(3, 4), (4, 5)], 120, id="implicit-uppercase"),
    # i and k are summed out of their operands first (free), then j: 2 * j = 2 * 4
    pytest.param("ij,jk->", [(3, 4), (4, 5)], 8, id="to-scalar"),
    # x is summed out of the first operand first (free): 2 * i * j * k = 2 * 3 * 4 * 5
    pytest.param("ijx,jk->ik", [(3, 4, 7), (4, 5)], 120, id="sum-one-side-first"),
    # row-wise dot products: 2 * b * i = 2 * 6 * 5
    pytest.param("bi,bi->b", [(6, 5), (6, 5)], 60, id="rowwise-dot"),
    # three operands, left to right: (ij,jk) 2 * i * j * k + (ik,kl) 2 * i * k * l
    # = 2 * 2 * 3 * 4 + 2 * 2 * 4 * 5
    pytest.param("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)], 128, id="chain-3"),
    # (bij,bjk) + (bik,bkl): 2 * b * i * j * k + 2 * b * i * k * l
    # = 2 * 2 * 3 * 4 * 5 + 2 * 2 * 3 * 5 * 6
    pytest.param("bij,bjk,bkl->bil", [(2, 3, 4), (2, 4, 5), (2, 5, 6)], 600, id="batched-chain-3"),
    # (ij,kl) sums nothing: a multiply (free); then j and k: 2 * i * j * k * l = 2 * 2 * 3 * 4 * 5
    pytest.param("ij,kl,jk->il", [(2, 3), (4, 5), (3, 4)], 240, id="outer-first-3"),
    # i is still needed by il: (ij,ik) is a multiply (free); then i: 2 * i * j * k * l = 2 * 2 * 3 * 4 * 5
    pytest.param("ij,ik,il->jkl", [(2, 3), (2, 4), (2, 5)], 240, id="shared-index-3"),
]


@pytest.mark.parametrize(("equation", "shapes", "expected"), EINSUM_CASES)
def test_einsum(count, torch_flops, call, left_to_right, equation, shapes, expected):
    model = call(torch.einsum, len(shapes), equation)
    operands = [meta(*shape) for shape in shapes]
    assert count(model, *operands) == expected
    assert torch_flops(model, *operands) == expected


def test_einsum_products_without_sums_are_free(count, torch_flops, call):
    # an outer product and a Hadamard product sum no index: torch runs them as a multiply, which
    # the default convention (and FlopCounterMode) does not count
    outer = call(torch.einsum, 2, "i,j->ij")
    hadamard = call(torch.einsum, 2, "bi,bi->bi")
    assert count(outer, meta(3), meta(4)) == 0 == torch_flops(outer, meta(3), meta(4))
    assert count(hadamard, meta(6, 5), meta(6, 5)) == 0 == torch_flops(hadamard, meta(6, 5), meta(6, 5))


def test_einsum_operands_as_a_list(count, torch_flops, call):
    model = call(lambda a, b: torch.einsum("ij,jk->ik", [a, b]), 2)
    a, b = meta(3, 4), meta(4, 6)
    # 2 * i * j * k = 2 * 3 * 4 * 6
    expected = 144
    assert count(model, a, b) == expected
    assert torch_flops(model, a, b) == expected


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        # opt_einsum's "auto" path contracts (ij,jk) then (ik,kl): 2 * i * j * k + 2 * i * k * l
        # = 2 * 2 * 3 * 4 + 2 * 2 * 4 * 5
        pytest.param({"enabled": True, "strategy": "auto"}, 128, id="auto"),
        # "greedy" contracts (kl,jk) then (ij,jl): 2 * j * k * l + 2 * i * j * l
        # = 2 * 3 * 4 * 5 + 2 * 2 * 3 * 5
        pytest.param({"enabled": True, "strategy": "greedy"}, 180, id="greedy"),
        # disabled: left to right, (ij,kl) a free multiply, then 2 * i * j * k * l = 2 * 2 * 3 * 4 * 5
        pytest.param({"enabled": False}, 240, id="disabled"),
    ],
)
def test_einsum_follows_the_opt_einsum_path(count, torch_flops, call, flags, expected):
    pytest.importorskip("opt_einsum")  # torch.einsum uses opt_einsum's path only when it is installed
    model = call(torch.einsum, 3, "ij,kl,jk->il")
    operands = meta(2, 3), meta(4, 5), meta(3, 4)
    with torch.backends.opt_einsum.flags(**flags):
        assert count(model, *operands) == expected
        assert torch_flops(model, *operands) == expected


# -- bilinear ---------------------------------------------------------------------------------


def test_bilinear(count, torch_flops, call):
    model = nn.Bilinear(3, 4, 5, device="meta")
    x1, x2 = meta(2, 6, 3), meta(2, 6, 4)
    # torch's _trilinear, per output feature o: (x1 A_o) then (. x2):
    # 2 * N * out * (in1 * in2 + in2) = 2 * 2 * 6 * 5 * (3 * 4 + 4)
    expected = 1920
    assert count(model, x1, x2) == expected
    # FlopCounterMode counts F.bilinear as 0, on meta and CPU tensors alike: aten._trilinear has
    # no formula and its inner bmm calls never reach the mode. The reference is the same
    # contraction, in the same order, spelled as an einsum over the N = 2 * 6 rows.
    assert torch_flops(model, x1, x2) == 0
    same_math = call(torch.einsum, 3, "ni,oij,nj->no")
    with torch.backends.opt_einsum.flags(enabled=False):
        assert torch_flops(same_math, meta(12, 3), model.weight, meta(12, 4)) == expected

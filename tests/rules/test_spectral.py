"""FFT rules (rules/spectral.py): 5 N log2 N per complex transform of N points; triangular solves
(rules/linalg.py): n^2 per right-hand side. Both under "full" only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fxflops


class _Call(nn.Module):
    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


def _full(function, *shape: int, dtype: torch.dtype = torch.float32, trace: str = "run") -> int:
    report = fxflops.count(_Call(function), torch.empty(*shape, dtype=dtype, device="meta"), convention="full",
                           trace=trace, strict=True)
    return report.by_category().get("fft", 0)


@pytest.mark.parametrize(("function", "shape", "expected"), [
    # 4 transforms of 64 points: 4 * 5 * 64 * log2(64) = 4 * 1,920 = 7,680
    (torch.fft.fft, (4, 64), 7_680),
    # real input: half, 3,840
    (torch.fft.rfft, (4, 64), 3_840),
    # along dim 0: 64 transforms of 4 points, 64 * 5 * 4 * 2 = 2,560
    (lambda x: torch.fft.fft(x, dim=0), (4, 64), 2_560),
    # zero-padded to n = 128: 4 * 5 * 128 * 7 = 17,920
    (lambda x: torch.fft.fft(x, n=128), (4, 64), 17_920),
    # 2-D over the last two dims of (2, 8, 16): 2 transforms of 128 points, 2 * 5 * 128 * 7 = 8,960
    (torch.fft.fft2, (2, 8, 16), 8_960),
    # n-D over every dim of (8, 16): one transform of 128 points, 5 * 128 * 7 = 4,480
    (torch.fft.fftn, (8, 16), 4_480),
])
def test_fft_costs(function, shape: tuple[int, ...], expected: int) -> None:
    assert _full(function, *shape) == expected


def test_ffts_cost_nothing_under_the_default_convention_as_in_flop_counter_mode() -> None:
    report = fxflops.count(_Call(torch.fft.fft), torch.empty(4, 64, device="meta"), strict=True)
    assert report.total == 0


def test_export_path_counts_the_aten_primitives_the_same() -> None:
    # torch.export records aten._fft_r2c / _fft_c2c: the same 3,840 and 7,680
    assert _full(torch.fft.rfft, 4, 64, trace="export") == 3_840
    assert _full(torch.fft.fft, 4, 64, dtype=torch.complex64, trace="export") == 7_680


class _Solve(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve_triangular(a, b, upper=False)


@pytest.mark.parametrize("trace", ["run", "export"])
def test_triangular_solve_is_n_squared_per_right_hand_side(trace: str) -> None:
    a, b = torch.empty(2, 8, 8, device="meta"), torch.empty(2, 8, 3, device="meta")
    # 2 batches * 3 right-hand sides * 8^2 = 384 under full; 0 under default (as FlopCounterMode)
    assert fxflops.count(_Solve(), (a, b), convention="full", trace=trace, strict=True).total == 384
    assert fxflops.count(_Solve(), (a, b), trace=trace, strict=True).total == 0


class _Scatter(nn.Module):
    def forward(self, x: torch.Tensor, index: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        summed = x.scatter_reduce(0, index, src, reduce="sum")
        added = torch.scatter_add(x, 0, index, src)
        return summed + added.index_add(0, index[:, 0], src)


@pytest.mark.parametrize("trace", ["symbolic", "run", "export"])
def test_scatter_reductions_cost_one_per_source_element(trace: str) -> None:
    x, index, src = torch.empty(5, 4), torch.zeros(3, 4, dtype=torch.long), torch.empty(3, 4)
    report = fxflops.count(_Scatter(), (x, index, src), convention="full", trace=trace, strict=True)
    # scatter_reduce, scatter_add and index_add each reduce the 12 source elements: 36; the add 20
    assert report.by_category()["reduction"] == 3 * 12
    assert report.total == 3 * 12 + 20

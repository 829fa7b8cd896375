"""Rules of ``fxflops.rules.conv``: convolutions and transposed convolutions, module and functional.

Each case: fxflops == hand arithmetic == FlopCounterMode (meta tensors, grad on), no node
uncounted. A convolution costs ``2 * N * C_out * (C_in / groups) * prod(kernel) *
prod(out_spatial)``; a transposed one ``2 * N * C_in * (C_out / groups) * prod(kernel) *
prod(in_spatial)``. Biases are not counted.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxflops


def meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, device="meta")


# -- nn.ConvNd --------------------------------------------------------------------------------


def test_conv2d_groups_and_bias(count, torch_flops):
    model = nn.Conv2d(4, 8, 3, padding=1, groups=2, device="meta")
    x = meta(2, 4, 16, 16)
    # 2 * N * Cout * (Cin/g) * k*k * Hout*Wout = 2 * 2 * 8 * 2 * 3*3 * 16*16
    expected = 147456
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_depthwise_conv2d_stride_2(count, torch_flops):
    model = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, device="meta")
    x = meta(2, 8, 16, 16)
    # 2 * N * Cout * (Cin/g) * k*k * Hout*Wout = 2 * 2 * 8 * 1 * 3*3 * 8*8
    expected = 18432
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_conv2d_rectangular_kernel_and_stride(count, torch_flops, padding_mode):
    model = nn.Conv2d(3, 4, (3, 5), stride=(2, 1), padding=(1, 2), bias=False, padding_mode=padding_mode,
                      device="meta")
    x = meta(1, 3, 10, 12)
    # Hout = (10 + 2 - 3) // 2 + 1 = 5, Wout = 12 + 4 - 5 + 1 = 12
    # 2 * N * Cout * Cin * kh*kw * Hout*Wout = 2 * 1 * 4 * 3 * 3*5 * 5*12
    expected = 21600
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_conv2d_unbatched(count, torch_flops):
    model = nn.Conv2d(4, 8, 3, padding=1, groups=2, device="meta")
    x = meta(4, 16, 16)
    # 2 * Cout * (Cin/g) * k*k * Hout*Wout = 2 * 8 * 2 * 3*3 * 16*16
    expected = 73728
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_conv1d_stride_and_dilation(count, torch_flops):
    model = nn.Conv1d(3, 6, 5, stride=2, dilation=2, device="meta")
    x = meta(2, 3, 32)
    # Lout = (32 - 2 * (5 - 1) - 1) // 2 + 1 = 12
    # 2 * N * Cout * Cin * k * Lout = 2 * 2 * 6 * 3 * 5 * 12
    expected = 4320
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_conv3d_same_padding(count, torch_flops):
    model = nn.Conv3d(2, 4, 3, padding="same", device="meta")
    x = meta(1, 2, 6, 6, 6)
    # 2 * N * Cout * Cin * k^3 * D*H*W = 2 * 1 * 4 * 2 * 3*3*3 * 6*6*6
    expected = 93312
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


# -- nn.ConvTransposeNd -----------------------------------------------------------------------


def test_conv_transpose2d_stride_2_groups(count, torch_flops):
    model = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, device="meta")
    x = meta(2, 4, 8, 8)
    # output is (2, 6, 16, 16), but the work follows the input:
    # 2 * N * Cin * (Cout/g) * k*k * Hin*Win = 2 * 2 * 4 * 3 * 3*3 * 8*8
    expected = 27648
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_conv_transpose1d(count, torch_flops):
    model = nn.ConvTranspose1d(4, 6, 4, stride=2, device="meta")
    x = meta(2, 4, 8)
    # 2 * N * Cin * Cout * k * Lin = 2 * 2 * 4 * 6 * 4 * 8
    expected = 3072
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_conv_transpose3d(count, torch_flops):
    model = nn.ConvTranspose3d(2, 4, 2, stride=2, device="meta")
    x = meta(1, 2, 3, 3, 3)
    # 2 * N * Cin * Cout * k^3 * D*H*W (input) = 2 * 1 * 2 * 4 * 2*2*2 * 3*3*3
    expected = 3456
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


def test_conv_transpose2d_unbatched(count, torch_flops):
    model = nn.ConvTranspose2d(4, 5, 3, stride=2, device="meta")
    x = meta(4, 7, 7)
    # 2 * Cin * Cout * k*k * Hin*Win = 2 * 4 * 5 * 3*3 * 7*7
    expected = 17640
    assert count(model, x) == expected
    assert torch_flops(model, x) == expected


# -- functional forms -------------------------------------------------------------------------


def test_functional_conv2d_positional_groups(count, torch_flops, call):
    # F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    model = call(lambda x, w: F.conv2d(x, w, None, 1, 1, 1, 3), 2)
    x, w = meta(1, 6, 10, 10), meta(9, 2, 3, 3)
    # 2 * N * Cout * (Cin/g) * k*k * Hout*Wout = 2 * 1 * 9 * 2 * 3*3 * 10*10
    expected = 32400
    assert count(model, x, w) == expected
    assert torch_flops(model, x, w) == expected


def test_functional_conv2d_keywords(count, torch_flops, call):
    model = call(lambda x, w: F.conv2d(x, w, stride=2, padding=1, dilation=2, groups=4), 2)
    x, w = meta(2, 4, 16, 16), meta(8, 1, 3, 3)
    # Hout = Wout = (16 + 2 - 2 * (3 - 1) - 1) // 2 + 1 = 7
    # 2 * N * Cout * (Cin/g) * k*k * Hout*Wout = 2 * 2 * 8 * 1 * 3*3 * 7*7
    expected = 14112
    assert count(model, x, w) == expected
    assert torch_flops(model, x, w) == expected


def test_functional_conv1d_with_bias(count, torch_flops, call):
    model = call(F.conv1d, 3)
    x, w, b = meta(2, 3, 20), meta(5, 3, 3), meta(5)
    # 2 * N * Cout * Cin * k * Lout = 2 * 2 * 5 * 3 * 3 * 18
    expected = 3240
    assert count(model, x, w, b) == expected
    assert torch_flops(model, x, w, b) == expected


def test_functional_conv3d_stride(count, torch_flops, call):
    model = call(F.conv3d, 2, stride=2)
    x, w = meta(1, 2, 4, 4, 4), meta(3, 2, 2, 2, 2)
    # 2 * N * Cout * Cin * k^3 * D*H*W (output) = 2 * 1 * 3 * 2 * 2*2*2 * 2*2*2
    expected = 768
    assert count(model, x, w) == expected
    assert torch_flops(model, x, w) == expected


def test_functional_conv_transpose2d_positional(count, torch_flops, call):
    # F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)
    model = call(lambda x, w: F.conv_transpose2d(x, w, None, 2, 1, 1, 2, 1), 2)
    x, w = meta(2, 4, 8, 8), meta(4, 3, 3, 3)
    # 2 * N * Cin * (Cout/g) * k*k * Hin*Win = 2 * 2 * 4 * 3 * 3*3 * 8*8
    expected = 27648
    assert count(model, x, w) == expected
    assert torch_flops(model, x, w) == expected


def test_functional_conv_transpose1d_keywords(count, torch_flops, call):
    model = call(lambda x, w: F.conv_transpose1d(x, w, stride=3, groups=2), 2)
    x, w = meta(2, 4, 8), meta(4, 3, 3)
    # 2 * N * Cin * (Cout/g) * k * Lin = 2 * 2 * 4 * 3 * 3 * 8
    expected = 1152
    assert count(model, x, w) == expected
    assert torch_flops(model, x, w) == expected


def test_functional_conv_transpose3d(count, torch_flops, call):
    model = call(F.conv_transpose3d, 2, stride=2)
    x, w = meta(1, 2, 3, 2, 2), meta(2, 5, 2, 2, 2)
    # 2 * N * Cin * Cout * k^3 * D*H*W (input) = 2 * 1 * 2 * 5 * 2*2*2 * 3*2*2
    expected = 1920
    assert count(model, x, w) == expected
    assert torch_flops(model, x, w) == expected


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "args", "expected"),
    [
        # 2 * N * Cout * Cin * k*k * Hout*Wout = 2 * 2 * 4 * 3 * 3*3 * 6*6
        pytest.param((2, 3, 8, 8), (4, 3, 3, 3), ([1, 1], [0, 0], [1, 1], False, [0, 0], 1), 15552,
                     id="conv"),
        # 2 * N * Cin * (Cout/g) * k*k * Hin*Win = 2 * 2 * 4 * 3 * 3*3 * 8*8
        pytest.param((2, 4, 8, 8), (4, 3, 3, 3), ([2, 2], [1, 1], [1, 1], True, [1, 1], 2), 27648,
                     id="transposed"),
    ],
)
def test_torch_convolution(count, torch_flops, call, x_shape, w_shape, args, expected):
    # torch.convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    model = call(lambda x, w: torch.convolution(x, w, None, *args), 2)
    x, w = meta(*x_shape), meta(*w_shape)
    assert count(model, x, w) == expected
    assert torch_flops(model, x, w) == expected


class TransposingHead(nn.Conv1d):
    """Parakeet's CTC head: an nn.Conv1d whose own forward transposes (batch, time, channels)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


@pytest.mark.parametrize("trace", ["symbolic", "run", "export"])
def test_a_subclass_with_its_own_forward_is_followed_not_given_its_base_rule(trace: str) -> None:
    report = fxflops.count(TransposingHead(8, 4, kernel_size=1), meta(1, 10, 8), trace=trace, strict=True)
    # the convolution it runs: 10 positions, 8 -> 4 channels, kernel 1: 2 * 10 * 8 * 4 = 640
    # (the nn.Conv1d rule read the untransposed (1, 10, 8) input as 10 channels)
    assert report.total == 640

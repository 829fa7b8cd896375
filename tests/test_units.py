"""fxflops.units: formatting FLOP counts and parsing FLOP budgets (valid/invalid tables, round trips)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fxflops.errors import FxFlopsError
from fxflops.units import FlopValueError, format_count, format_flops, parse_flops


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 FLOPs"),
        (512, "512 FLOPs"),
        (999, "999 FLOPs"),
        # 1000 = 1 * 10^3
        (1000, "1.00 KFLOPs"),
        # 64 * 1000 + 500 = 64.5 K
        (64_500, "64.50 KFLOPs"),
        # 999,994 / 10^3 = 999.994 -> 999.99
        (999_994, "999.99 KFLOPs"),
        # 999,995 / 10^3 = 999.995 rounds half up to 1000.00 K, shown as the next prefix
        (999_995, "1.00 MFLOPs"),
        # OpenCLIP ViT-B-16 at 224 px: 41,086,447,616 / 10^9 = 41.086... -> 41.09
        (41_086_447_616, "41.09 GFLOPs"),
        # ViT-B-32 image tower: 8,817,623,040 / 10^9 = 8.8176... -> 8.82
        (8_817_623_040, "8.82 GFLOPs"),
        # 9,100,247,040 / 10^9 = 9.1002... -> 9.10 (trailing zero kept: two decimals always)
        (9_100_247_040, "9.10 GFLOPs"),
        # 1.5 * 10^12
        (1_500_000_000_000, "1.50 TFLOPs"),
        # 2 * 10^15
        (2 * 10**15, "2.00 PFLOPs"),
        # beyond P the prefix stays P: 10^18 / 10^15 = 1000
        (10**18, "1000.00 PFLOPs"),
        # a difference of counts: -(2 * 10^6)
        (-2_000_000, "-2.00 MFLOPs"),
    ],
)
def test_format_flops(n: int, expected: str) -> None:
    assert format_flops(n) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 FLOPs"),
        (64, "64 FLOPs"),
        # 40 * 10^9: no fraction, no trailing zeros
        (40_000_000_000, "40 GFLOPs"),
        # 41,086,447,616 = 41 * 10^9 + 086,447,616
        (41_086_447_616, "41.086447616 GFLOPs"),
        # 1,500 = 1.5 * 10^3
        (1_500, "1.5 KFLOPs"),
        # 1,000,001 = 1.000001 * 10^6
        (1_000_001, "1.000001 MFLOPs"),
    ],
)
def test_format_flops_exact(n: int, expected: str) -> None:
    assert format_flops(n, exact=True) == expected


def test_format_count() -> None:
    assert format_count(41_086_447_616) == "41,086,447,616"


@pytest.mark.parametrize("bad", [1.5, "64", True, None])
def test_format_flops_rejects_non_int(bad: object) -> None:
    with pytest.raises(TypeError, match="format_flops expects an int"):
        format_flops(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # 40 * 10^9
        ("40 GFLOPs", 40_000_000_000),
        ("40GFLOPs", 40_000_000_000),
        ("40 gflops", 40_000_000_000),
        ("40 GFLOPS", 40_000_000_000),
        ("40 GFLOP", 40_000_000_000),
        ("40G", 40_000_000_000),
        ("  40 G  ", 40_000_000_000),
        # 200 * 10^3
        ("200 KFLOPs", 200_000),
        ("200k", 200_000),
        # 1.5 * 10^9
        ("1.5e9", 1_500_000_000),
        ("1.5E9 FLOPs", 1_500_000_000),
        # 1.5 * 10^3 * 10^6 (exponent and prefix multiply)
        ("1.5e3 M", 1_500_000_000),
        # 0.5 * 10^3
        (".5K", 500),
        # case-insensitive: m is mega (10^6), never milli
        ("3 mflops", 3_000_000),
        # 2 * 10^12, 7 * 10^15
        ("2 TFLOPs", 2_000_000_000_000),
        ("7P", 7_000_000_000_000_000),
        ("512 FLOPs", 512),
        ("512", 512),
        ("0", 0),
        (64, 64),
        (0, 0),
        # an integral float: 1.5 * 10^9
        (1.5e9, 1_500_000_000),
        # 41.09 * 10^9: the rounded display form parses back to a whole number
        ("41.09 GFLOPs", 41_090_000_000),
    ],
)
def test_parse_flops(value: str | int | float, expected: int) -> None:
    result = parse_flops(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # 40 MACs * 2 FLOPs/MAC = 80 FLOPs, same prefix
        (
            "40 GMACs",
            r'"40 GMACs": budgets are in FLOPs \(fxflops counts 1 MAC = 2 FLOPs\); write "80 GFLOPs"',
        ),
        # 1.5 * 2 = 3
        ("1.5 kmac", r'write "3 KFLOPs"'),
        # 0.25 * 2 = 0.5
        ("0.25 TMACs", r'write "0.5 TFLOPs"'),
        ("100 MACs", r'write "200 FLOPs"'),
        ("40 GiFLOPs", "binary prefixes"),
        ("40 Gi", "binary prefixes"),
        ("1 KiB", "binary prefixes"),
        ("40 GB", "expected a number with an optional SI prefix"),
        ("40 G FLOPs extra", "expected a number"),
        # re.fullmatch: trailing words are not ignored (pytest-memray's re.match accepted "2KB extra")
        ("40 GFLOPs!", "expected a number"),
        ("40 GFLOPs/s", "expected a number"),
        ("", "expected a number"),
        ("G", "expected a number"),
        ("4O G", "expected a number"),
        ("40 E", "expected a number"),
        ("nan", "expected a number"),
        ("inf", "expected a number"),
        # Arabic-Indic digit four: only ASCII digits are numbers here
        ("\u0664", "expected a number"),
        ("-5 KFLOPs", "must not be negative"),
        (-1, "must not be negative"),
        ("1.5 FLOPs", "not a whole number"),
        # 0.0001 * 10^3 = 0.1 FLOPs
        ("0.0001K", "not a whole number"),
        (1.5, "not a whole number"),
        (float("inf"), "not a whole number"),
        (float("nan"), "not a whole number"),
        ("1e999999", "too large"),
        (True, "invalid FLOP count"),
        (None, "invalid FLOP count None of type NoneType"),
        ([40], "invalid FLOP count"),
    ],
)
def test_parse_flops_rejects(value: object, message: str) -> None:
    with pytest.raises(FlopValueError, match=message):
        parse_flops(value)  # type: ignore[arg-type]


def test_flop_value_error_is_a_value_error_and_an_fxflops_error() -> None:
    with pytest.raises(ValueError):
        parse_flops("40 GMACs")
    with pytest.raises(FxFlopsError):
        parse_flops("40 GMACs")


@given(st.integers(min_value=0, max_value=10**24))
def test_exact_format_round_trips(n: int) -> None:
    assert parse_flops(format_flops(n, exact=True)) == n


@given(st.integers(min_value=0, max_value=10**24))
def test_rounded_format_round_trips_within_display_precision(n: int) -> None:
    text = format_flops(n)
    back = parse_flops(text)
    if n < 1000:
        assert back == n
    else:
        # Two decimals of the prefix unit: off by at most half a hundredth of that unit, which is
        # at most 0.5% of n because the displayed number is >= 1.
        unit = 1000 ** ("KMGTP".index(text.split()[1][0]) + 1)
        assert abs(back - n) * 200 <= unit
        assert abs(back - n) * 200 <= n
        # The display is a fixed point of the round trip.
        assert format_flops(back) == text

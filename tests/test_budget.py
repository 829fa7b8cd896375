"""fxflops.assert_flops and the budget failure text shared with the pytest plugin."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import fxflops
from fxflops.budget import (
    assert_flops,
    budget_exceeded_message,
    format_change,
    top_modules_lines,
    uncounted_summary,
)
from fxflops.errors import FlopBudgetError, FxFlopsError
from fxflops.units import FlopValueError

# Rows of a meta-device input: only shapes are used, so ten million rows cost nothing.
VIT_B16_ROWS = 10_030_871


def vit_b16_sized() -> tuple[nn.Module, torch.Tensor]:
    """A linear layer whose count equals OpenCLIP ViT-B-16's published 41,086,447,616 FLOPs."""
    return nn.Linear(1024, 2), torch.empty(VIT_B16_ROWS, 1024, device="meta")


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def test_assert_flops_at_budget_returns_report() -> None:
    report = assert_flops(nn.Linear(8, 4), torch.randn(1, 8), max="64 FLOPs")
    # 2 FLOPs/MAC * 1 row * 8 in * 4 out = 64: a count equal to the budget passes
    assert report.total == 64


def test_assert_flops_is_exported_lazily_from_the_package() -> None:
    assert fxflops.assert_flops is assert_flops
    assert fxflops.FlopBudgetError is FlopBudgetError


def test_assert_flops_over_budget_message() -> None:
    model, x = vit_b16_sized()
    with pytest.raises(FlopBudgetError) as excinfo:
        assert_flops(model, x, max="40 GFLOPs")
    # 2 * 10,030,871 rows * 1024 in * 2 out = 41,086,447,616; (41,086,447,616 - 40e9) / 40e9 = +2.716%
    assert str(excinfo.value).splitlines()[0] == (
        "FLOP budget exceeded: measured 41.09 GFLOPs (41,086,447,616), budget 40 GFLOPs (+2.7%)"
    )
    assert isinstance(excinfo.value, AssertionError)
    assert isinstance(excinfo.value, FxFlopsError)


def test_assert_flops_lists_top_modules() -> None:
    with pytest.raises(FlopBudgetError) as excinfo:
        assert_flops(TwoLayers(), torch.randn(1, 8), max=300)
    # encoder.0: 2*8*16 = 256, encoder.2: 2*16*4 = 128, head: 2*4*2 = 16; total 400
    # (400 - 300) / 300 = +33.3%
    assert str(excinfo.value) == "\n".join(
        [
            "FLOP budget exceeded: measured 400 FLOPs (400), budget 300 FLOPs (+33.3%)",
            "",
            "top modules (depth 2, FLOPs of each row's own ops):",
            "  module         FLOPs   share",
            "  encoder.0  256 FLOPs   64.0%",
            "  encoder.2  128 FLOPs   32.0%",
            "  head        16 FLOPs    4.0%",
        ]
    )


def test_assert_flops_passes_count_keywords() -> None:
    # kwargs= reaches the model: forward(input) of nn.Linear called with input=...; 2*8*4 = 64
    report = assert_flops(nn.Linear(8, 4), (), kwargs={"input": torch.randn(1, 8)}, max=64)
    assert report.total == 64


def test_assert_flops_rejects_bad_budget_before_tracing() -> None:
    class Untraceable(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise AssertionError("must not be traced")

    with pytest.raises(FlopValueError, match='write "80 GFLOPs"'):
        assert_flops(Untraceable(), torch.randn(1, 8), max="40 GMACs")


def test_top_modules_rows_add_up_and_truncate() -> None:
    modules = {"": 1000, "a": 600, "a.x": 500, "a.y": 50, "b": 300, "c": 40, "d": 10}
    lines = top_modules_lines(modules, total=1000, limit=3)
    # own FLOPs: a.x 500, b 300, a.y 50, a itself 600-500-50 = 50, root 1000-600-300-40-10 = 50,
    # c 40, d 10. Ties sort by name: "" (root) < "a" < "a.y".
    assert lines == [
        "  module      FLOPs   share",
        "  a.x     500 FLOPs   50.0%",
        "  b       300 FLOPs   30.0%",
        "  (root)   50 FLOPs    5.0%",
        # remaining: a 50 + a.y 50 + c 40 + d 10 = 150
        "  ...and 4 more (150 FLOPs, 15.0%)",
    ]


def test_top_modules_without_root_entry() -> None:
    # an ancestor missing from the mapping: "a.x" has no listed parent, counts as its own row
    assert top_modules_lines({"a.x": 5}, total=5) == [
        "  module    FLOPs   share",
        "  a.x     5 FLOPs  100.0%",
    ]


def test_uncounted_summary() -> None:
    records = [
        SimpleNamespace(target="aten.erfinv"),
        SimpleNamespace(target="aten.erfinv"),
        SimpleNamespace(target="my_op"),
    ]
    assert uncounted_summary(records) == "aten.erfinv x2, my_op"
    assert uncounted_summary([]) is None


def test_budget_message_mentions_uncounted_ops() -> None:
    text = budget_exceeded_message(10, 5, uncounted="aten.erfinv x2")
    # (10 - 5) / 5 = +100%
    assert text == (
        "FLOP budget exceeded: measured 10 FLOPs (10), budget 5 FLOPs (+100.0%)\n"
        "ops without a rule (counted as 0 FLOPs): aten.erfinv x2"
    )


@pytest.mark.parametrize(
    ("new", "old", "expected"),
    [
        # (9,100,247,040 - 8,817,623,040) / 8,817,623,040 = +3.205%
        (9_100_247_040, 8_817_623_040, "+3.2%"),
        (48, 64, "-25.0%"),
        (64, 64, "+0.0%"),
        (0, 0, "+0.0%"),
        (1, 0, "+inf%"),
    ],
)
def test_format_change(new: int, old: int, expected: str) -> None:
    assert format_change(new, old) == expected

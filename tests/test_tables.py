"""report.table() and the CLI print one module table: graph order, class names, numbers right-aligned."""

from __future__ import annotations

import pytest
from flop_testing import meta

import fxflops

torchvision = pytest.importorskip("torchvision")


def _resnet18() -> fxflops.FlopReport:
    return fxflops.count(torchvision.models.resnet18(), meta(1, 3, 224, 224))


def test_module_table_is_in_graph_order_with_container_types() -> None:
    lines = _resnet18().table(depth=1).splitlines()
    names = [line.split()[0] for line in lines[2:]]
    # the order the forward reaches them, not alphabetical (avgpool would come second)
    assert names == ["(total)", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool",
                     "fc"]
    layer1 = next(line for line in lines if line.split()[0] == "layer1")
    # layer1: 2 BasicBlocks of two 64->64 3x3 convs at 56x56: 4 * 2 * 56*56 * 64*64*9 = 924,844,032
    assert "Sequential" in layer1 and "924,844,032" in layer1
    # numbers are right-aligned: the exact column ends at the same place on every row
    exact_ends = {len(line.rstrip().rsplit(" ", 1)[0].rstrip()) for line in lines[2:]}
    assert len(exact_ends) == 1


def test_report_table_and_cli_print_the_same_module_rows(capsys: pytest.CaptureFixture[str]) -> None:
    from fxflops.cli import main

    table = _resnet18().table(depth=1)
    assert main(["count", "torchvision:resnet18", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    rows = table.splitlines()[2:]
    cli_rows = [line.strip() for line in out.splitlines()]
    for row in rows[1:]:  # the total row is labelled alike but the CLI names the spec above it
        assert row.strip() in cli_rows


def test_repr_is_short() -> None:
    report = _resnet18()
    # 3,628,146,688 FLOPs (torch's own resnet18 anchor)
    assert repr(report).startswith("FlopReport(model='ResNet', total=3,628,146,688 FLOPs, nodes=")
    assert len(repr(report)) < 200

"""The HTML report (``report.to_html``, ``fxflops count --html``) and the notebook view.

The page is loaded in a real headless browser (Debian's chromium; ``.ci/run`` installs it): it
must load with no console message, draw the module icicle, and zoom into a module when that
module is clicked (the page's ``#selftest`` mode clicks the largest child and writes what it
then shows into the DOM, which ``--dump-dom`` prints).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

import fxflops
from fxflops.cli import main


class _Tower(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class _TwoTowers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.big = _Tower(64)
        self.small = _Tower(8)
        self.proj = nn.Linear(64, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.small(self.proj(self.big(x)))


# One row: big.fc 2*64*64 = 8,192; proj 2*64*8 = 1,024; small.fc 2*8*8 = 128; total 9,344
TOTAL = 8_192 + 1_024 + 128


def _report() -> fxflops.FlopReport:
    return fxflops.count(_TwoTowers(), torch.empty(1, 64, device="meta"))


def test_page_is_self_contained_and_holds_exact_counts() -> None:
    page = _report().to_html(title="two towers")
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # nothing fetched from a network
    data = json.loads(page.split("<script type=application/json id=data>", 1)[1].split("</script>", 1)[0])
    assert data["flops"] == str(TOTAL)
    assert [(c["path"], c["flops"]) for c in data["children"]] == [("big", "8192"), ("proj", "1024"),
                                                                    ("small", "128")]
    assert "9,344 FLOPs" in page and "torch.nn.Linear" in page


def test_notebook_view_is_a_collapsible_tree() -> None:
    view = _report()._repr_html_()
    assert view.count("<details") == 1 + 2  # the model, and the two towers with a child each
    assert "8,192, 87.7%" in view  # big: 8,192 / 9,344


def test_cli_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torchvision")
    out = tmp_path / "report.html"
    assert main(["count", "torchvision:resnet18", "--html", str(out)]) == 0
    capsys.readouterr()
    assert "<title>fxflops: torchvision:resnet18</title>" in out.read_text()
    assert main(["count", "torchvision:resnet18", "--html", str(tmp_path / "missing" / "r.html")]) == 2
    assert capsys.readouterr().err.startswith("fxflops: error: --html ")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium)")
    return found


def test_page_loads_in_a_browser_and_zooms_on_click(tmp_path: Path) -> None:
    browser = _chromium()
    path = tmp_path / "report.html"
    _report().to_html(path)
    done = subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
         f"{path.as_uri()}#selftest"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line] == []
    dom = done.stdout
    # the icicle: one cell per module (model, 3 children, 2 tower Linears) before the click
    assert dom.count('class="cell"') >= 2
    # clicking "big" zoomed into it: the page now shows big (8,192 FLOPs) and its one child
    assert '<pre id="selftest">selftest: zoomed into big: 8,192 FLOPs (2 cells)</pre>' in dom

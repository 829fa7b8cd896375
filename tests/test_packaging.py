"""Packaging: rules/ ships as fxflops.rules and never as a top-level ``rules`` package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("fxflops-*.whl")
    return built


def test_wheel_ships_rules_inside_fxflops(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    rule_modules = sorted(n for n in names if n.startswith("fxflops/rules/") and n.endswith(".py"))
    assert rule_modules == [
        "fxflops/rules/__init__.py",
        "fxflops/rules/aten.py",
        "fxflops/rules/aten_twins.py",
        "fxflops/rules/attention.py",
        "fxflops/rules/by_convention.py",
        "fxflops/rules/conv.py",
        "fxflops/rules/linalg.py",
        "fxflops/rules/linear.py",
        "fxflops/rules/moe.py",
        "fxflops/rules/recurrent.py",
        "fxflops/rules/spectral.py",
        "fxflops/rules/third_party.py",
        "fxflops/rules/zero.py",
    ]
    assert not [n for n in names if n.startswith("rules/")]
    assert "fxflops/py.typed" in names


def test_wheel_declares_the_pytest_plugin_and_the_cli(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith("entry_points.txt")]
    text = archive.read(entry_points).decode()
    assert "[pytest11]\nfxflops = fxflops.pytest_plugin" in text
    assert "fxflops = fxflops.cli:main" in text


def test_rules_is_not_a_top_level_package(tmp_path: Path) -> None:
    # Outside the repository, only the installed package is visible.
    code = "import importlib.util, fxflops.rules; print(importlib.util.find_spec('rules'), fxflops.rules.__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["None", "fxflops.rules"]

"""The README's quick start, verbatim, in a fresh venv made by the machine's own ``python3 -m venv``.

Its old pip (23.2.1 here) is what many users have: it did not normalize extra names, so an extra
called ``open_clip`` installed nothing. This installs torch into a new environment (minutes, GBs),
so it runs only where ``FXFLOPS_FRESH_INSTALL=1`` is set, as ``.ci/run`` does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(os.environ.get("FXFLOPS_FRESH_INSTALL") != "1",
                                reason="installs torch into a fresh venv: set FXFLOPS_FRESH_INSTALL=1 (.ci/run does)")


def _quick_start_command() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    return re.search(r"```bash\n(.*?)\n```", section, re.DOTALL).group(1).strip()


def test_quick_start_command_is_the_one_tested() -> None:
    assert _quick_start_command() == 'pip install -e ".[openclip]" && fxflops count open_clip:ViT-B-16'


def test_readme_quick_start_in_a_fresh_venv(tmp_path: Path) -> None:
    python3 = shutil.which("python3")
    assert python3 is not None
    checkout = tmp_path / "fxflops"
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__",
                                                                  ".pytest_cache", ".hypothesis", ".ruff_cache"))
    venv = tmp_path / "venv"
    subprocess.run([python3, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PYTEST"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    install, count = _quick_start_command().split(" && ")
    installed = subprocess.run(install, shell=True, cwd=checkout, env=env, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    assert "does not provide the extra" not in installed.stdout + installed.stderr
    counted = subprocess.run(count, shell=True, cwd=checkout, env=env, capture_output=True, text=True)
    assert counted.returncode == 0, counted.stderr
    # OpenCLIP's published figure: image 35,126,906,880 + text 5,959,540,736
    assert "41,086,447,616 FLOPs" in counted.stdout
    assert counted.stderr == ""  # nothing from torch or open_clip reaches a newcomer's first screen

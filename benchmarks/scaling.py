"""How fxflops's cost grows with batch size (ViT-B-16, 1..256) and with model size.

Each model is probed in a fresh subprocess (``benchmarks.probe``) so its peak RSS and timings
are not disturbed by the runner or by earlier models. ``--quick`` probes in the runner's own
process instead, to save the interpreter start-ups; the VmHWM reset before each count still
isolates that count's peak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.results import ProbeRow

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
QUICK_BATCHES = (1, 256)
#: From ViT-B-16 (150 M parameters) to EVA02-E-14 (4.7 B), the largest in open_clip v3.3.0.
MODELS = ("ViT-B-16", "ViT-L-14", "ViT-bigG-14", "EVA02-E-14")
QUICK_MODELS = ("ViT-bigG-14", "EVA02-E-14")


def probe(
    repo: Path, model: str, batches: Sequence[int], runs: int, in_process: bool, timeout: float = 1800
) -> list[ProbeRow]:
    """Count ``model`` at each batch size, in a fresh subprocess unless ``in_process``."""
    if in_process:
        from benchmarks import probe as probe_module

        return probe_module.probe(model, list(batches), runs)
    command = [
        sys.executable,
        "-m",
        "benchmarks.probe",
        model,
        "--batches",
        ",".join(map(str, batches)),
        "--runs",
        str(runs),
    ]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    try:
        done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return [ProbeRow(model=model, batch=b, error=f"timed out after {timeout:.0f} s") for b in batches]
    lines = done.stdout.strip().splitlines()
    try:
        return [ProbeRow(**raw) for raw in json.loads(lines[-1])]
    except (IndexError, ValueError, TypeError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [
            ProbeRow(model=model, batch=b, error=f"probe failed (exit {done.returncode}): {tail[:200]}")
            for b in batches
        ]


def _show(row: ProbeRow) -> str:
    if row.error:
        return f"ERROR {row.error}"
    return (
        f"first {row.first_seconds:.2f} s, median {row.median:.2f} s, "
        f"peak RSS +{row.peak_rss_increase_mib:.1f} MiB"
    )


def batch_scaling(
    repo: Path, batches: Sequence[int], runs: int, in_process: bool, log: Callable[[str], None] = print
) -> list[ProbeRow]:
    """ViT-B-16 (whole CLIP) at each batch size, all in one process."""
    rows = probe(repo, "ViT-B-16", batches, runs, in_process)
    for row in rows:
        log(f"  ViT-B-16 batch {row.batch}: {_show(row)}")
    return rows


def model_scaling(
    repo: Path, names: Sequence[int | str], runs: int, in_process: bool, log: Callable[[str], None] = print
) -> list[ProbeRow]:
    """Each model at batch 1, one process per model."""
    rows = []
    for name in names:
        row = probe(repo, str(name), (1,), runs, in_process)[0]
        log(f"  {name}: {_show(row)}")
        rows.append(row)
    return rows

"""The whole OpenCLIP zoo, end to end: every model that builds offline, built and counted.

If ``benchmarks/zoo_open_clip.py`` (the zoo benchmark another engineer owns) is present, it is run
as is in a subprocess and timed from the outside. Otherwise this module's own ``main`` runs in a
subprocess: :func:`fxflops.zoo.open_clip_row` (build on the meta device, count image tower, text
tower and whole model) for every name in ``open_clip.list_models()``, spread over ``--jobs``
spawned worker processes, skipping models that fail to build or count and saying why.
Wall time includes interpreter start-up and imports: that is what "end to end" costs a user.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.results import ZooResult

HERE = Path(__file__).resolve().parent
OTHER_BENCHMARK = HERE / "zoo_open_clip.py"


def _row(name: str) -> tuple[str, float, str | None]:
    """One model, in a worker: seconds to build and count it, or the reason it failed."""
    import warnings

    warnings.simplefilter("ignore")
    from benchmarks.models import quiet
    from fxflops.zoo import open_clip_row

    start = time.perf_counter()
    try:
        with quiet():
            open_clip_row(name)
    except Exception as e:
        lines = str(e).strip().splitlines()
        return name, time.perf_counter() - start, f"{type(e).__name__}: {lines[0] if lines else ''}"[:200]
    return name, time.perf_counter() - start, None


def _init_worker() -> None:
    import torch

    # Each worker is single-threaded Python tracing; intra-op threads would fight the other worker.
    torch.set_num_threads(1)


def time_zoo(jobs: int, names: list[str] | None = None) -> dict[str, object]:
    """Count the zoo with ``jobs`` worker processes; return a JSON-able summary."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import open_clip

    names = names or list(open_clip.list_models())
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # forking after importing torch is unsafe
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker) as pool:
        results = list(pool.map(_row, names))
    seconds = time.perf_counter() - start
    failures = [f"{name}: {error}" for name, _, error in results if error]
    slowest = sorted(((name, s) for name, s, error in results if not error), key=lambda x: -x[1])[:10]
    return {
        "models": len(names),
        "rows": len(names) - len(failures),
        "failures": failures,
        "slowest": slowest,
        "pool_seconds": seconds,
    }


def run(repo: Path, jobs: int, log: Callable[[str], None] = print, timeout: float = 3600) -> ZooResult:
    """Time the zoo end to end in a subprocess (interpreter start-up and imports included)."""
    # "Offline" zoo: Hugging Face text towers fetch their config from the Hub even without weights;
    # offline mode makes them fail at once instead of retrying for ~20 s each.
    env = dict(os.environ, PYTHONWARNINGS="ignore", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if OTHER_BENCHMARK.exists():
        command = [sys.executable, str(OTHER_BENCHMARK), "--jobs", str(jobs)]
        how = (
            f"`python benchmarks/zoo_open_clip.py --jobs {jobs}` (the zoo benchmark: `fxflops zoo open_clip` "
            "in a fresh process, checked against OpenCLIP's published table), timed from outside"
        )
    else:
        command = [sys.executable, "-m", "benchmarks.zoo_timing", "--jobs", str(jobs)]
        how = (
            f"`fxflops.zoo.open_clip_row` over `open_clip.list_models()` in {jobs} spawned worker "
            f"processes (benchmarks/zoo_open_clip.py not present)"
        )
    log(f"  zoo: {' '.join(command[1:])}")
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return ZooResult(how=how, jobs=jobs, error=f"timed out after {timeout:.0f} s")
    seconds = time.perf_counter() - start
    result = ZooResult(how=how, seconds=seconds, jobs=jobs)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        result.error = f"exit code {done.returncode}: {tail[0][:200]}"
    if OTHER_BENCHMARK.exists():
        _parse_other(done.stdout, done.stderr, result)
        # Its exit status 1 is its own FAIL verdict (too slow, or a mismatch), not a crash.
        if done.returncode == 1 and result.rows:
            result.error = None
        return result
    summary = _last_json(done.stdout)
    if summary:
        result.models = int(summary.get("models", 0))
        result.rows = int(summary.get("rows", 0))
        result.failures = list(summary.get("failures", []))
        result.slowest = [tuple(x) for x in summary.get("slowest", [])]
    return result


def _parse_other(stdout: str, stderr: str, result: ZooResult) -> None:
    """Read ``zoo_open_clip.py``'s report: rows produced, its verdict, and the models it skipped."""
    import open_clip

    result.models = len(open_clip.list_models())
    for line in stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "models profiled":
            result.rows = int(value.split()[0])
        elif key.strip() in ("published rows", "wall time"):
            result.notes.append(f"zoo_open_clip.py: {line.strip()}")
        elif line.strip() in ("PASS", "FAIL"):
            result.notes.append(f"zoo_open_clip.py verdict: {line.strip()}")
        elif "mismatch" in line or (line.startswith("  ") and "got" in line):
            result.notes.append(f"zoo_open_clip.py: {line.strip()}")
    # The fxflops CLI names each model it skips on stderr: "fxflops: skipped NAME: cannot build: ...".
    result.failures = [
        line.split("skipped", 1)[1].strip()
        for line in stderr.splitlines()
        if "skipped" in line and "cannot" in line
    ]


def _last_json(stdout: str) -> dict[str, object] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Count the whole OpenCLIP zoo; print a JSON summary.")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("names", nargs="*", help="model names (default: all)")
    args = parser.parse_args(argv)
    print(json.dumps(time_zoo(args.jobs, args.names or None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

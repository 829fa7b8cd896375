"""Count one OpenCLIP model with fxflops in a fresh process and print the measurements as JSON.

Run by the scaling benchmark as ``python -m benchmarks.probe MODEL --batches 1,256 --runs 5`` so
that each model's time and memory are measured in a clean interpreter: nothing the runner (or a
previous model) allocated is in the way. The library is imported and warmed up on a one-layer
model first (and open_clip imported), so neither the first count of MODEL nor its build measures
``import torch`` or ``import open_clip``.

For each batch size, smallest first: the model's first count (timed, and its peak RSS rise:
VmHWM, reset just before, minus VmRSS before); then ``--runs - 1`` rounds over all batch sizes,
whose per-batch median is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict

from benchmarks.results import ProbeRow
from benchmarks.timing import current_rss_mib, measure


def _warm_up() -> None:
    """Import what counting and building need, so that the timings measure neither."""
    import open_clip  # noqa: F401  (pulls in timm and transformers: seconds, once per process)
    import torch

    import fxflops

    fxflops.count(torch.nn.Linear(2, 2), torch.empty(1, 2, device="meta"))


def probe(name: str, batches: list[int], runs: int) -> list[ProbeRow]:
    """Build ``name`` on the meta device and count it at each batch size."""
    import fxflops
    from benchmarks.models import quiet
    from fxflops.zoo import OpenClipInputs, build_open_clip, open_clip_inputs

    _warm_up()
    start = time.perf_counter()
    with quiet():
        model = build_open_clip(name)
    build_seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    rows = []
    counts: list[Callable[[], int]] = []
    # Pass 1, smallest batch first: each batch size's first count, with its peak RSS.
    for batch in batches:
        row = ProbeRow(model=name, batch=batch, params=params, build_seconds=build_seconds)
        rows.append(row)
        inputs = open_clip_inputs(model, batch)

        def count(inputs: OpenClipInputs = inputs) -> int:
            return fxflops.count(model, (inputs.image, inputs.text)).total

        counts.append(count)
        try:
            row.rss_before_mib = current_rss_mib()
            row.load = os.getloadavg()[0]
            cpu = time.process_time()
            first = measure(count)
            row.first_cpu_seconds = time.process_time() - cpu
            row.flops, row.first_seconds = first.result, first.seconds
            row.peak_rss_increase_mib = first.peak_rss_increase_mib
        except Exception as e:
            traceback.print_exc()
            row.error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    # Later passes go round the batch sizes, so a change in the machine's load during the probe
    # (other processes come and go) falls on every batch size alike instead of on a few.
    for _ in range(runs - 1):
        for row, count in zip(rows, counts, strict=True):
            if row.error is None:
                start = time.perf_counter()
                count()
                row.runs.append(time.perf_counter() - start)
    for row in rows:
        row.median = statistics.median(row.runs) if row.runs else row.first_seconds
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an OpenCLIP model name")
    parser.add_argument("--batches", default="1", help="comma-separated batch sizes")
    parser.add_argument("--runs", type=int, default=3, help="counts per batch size, the first included")
    args = parser.parse_args(argv)
    rows = probe(args.model, [int(b) for b in args.batches.split(",")], max(1, args.runs))
    # The last line of stdout is the result; anything the model printed comes before it.
    print(json.dumps([asdict(r) for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time to count: fxflops on the meta-device model versus each peer executing the real model.

Everything runs in this one process, tool after tool, on OpenCLIP ViT-B-16 (whole model), so the
tools share the machine state; each tool gets one untimed warm-up call (lazy imports, first-call
caches) before its first batch size, then the median of several timed calls per batch size.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping, Sequence

from benchmarks import models
from benchmarks.accuracy import one_line
from benchmarks.peers import Peer, to_flops
from benchmarks.results import SpeedRow
from benchmarks.timing import repeat

FXFLOPS = "fxflops"


def _fxflops_row(batch: int, runs: int, warmup: int) -> SpeedRow:
    import fxflops
    from fxflops.zoo import open_clip_inputs

    model = models.open_clip_meta()
    inputs = open_clip_inputs(model, batch)
    timing = repeat(lambda: fxflops.count(model, (inputs.image, inputs.text)).total, runs, warmup)
    return SpeedRow(
        tool=FXFLOPS,
        label="fxflops (meta device)",
        batch=batch,
        runs=list(timing.runs),
        median=timing.median,
        peak_rss_increase_mib=timing.peak_rss_increase_mib,
        flops=float(timing.result),
    )


def _peer_row(peer: Peer, batch: int, runs: int, warmup: int) -> SpeedRow:
    model = models.open_clip_real()
    inputs = models.open_clip_real_inputs(model, batch)
    try:
        timing = repeat(lambda: peer.run(model, inputs), runs, warmup)
    except Exception as e:
        return SpeedRow(tool=peer.key, label=peer.label, batch=batch, error=one_line(e))
    finally:
        gc.collect()
    value, unit = timing.result
    return SpeedRow(
        tool=peer.key,
        label=peer.label,
        batch=batch,
        runs=list(timing.runs),
        median=timing.median,
        peak_rss_increase_mib=timing.peak_rss_increase_mib,
        flops=to_flops(value, unit),
    )


def run(
    peers: Sequence[Peer],
    batches: Sequence[int],
    fxflops_runs: int,
    peer_runs: Mapping[int, int],
    log: Callable[[str], None] = print,
    warmup: int = 1,
) -> list[SpeedRow]:
    """Time fxflops and every runnable peer at each batch size.

    ``peer_runs[batch]`` timed calls per peer (fewer at large batches, where one call takes tens of
    seconds); fxflops always gets ``fxflops_runs``. ``warmup`` untimed calls per tool precede its
    first batch size.
    """
    rows: list[SpeedRow] = []
    timed = [p for p in peers if p.timed and p.blocked() is None]
    for peer in peers:
        if peer not in timed:
            log(f"  speed: skip {peer.label}: {peer.blocked() or 'not timed'}")
    for index, batch in enumerate(batches):
        warm = warmup if index == 0 else 0
        row = _fxflops_row(batch, fxflops_runs, warm)
        rows.append(row)
        log(f"  batch {batch}: fxflops {row.median:.3f} s (runs {', '.join(f'{r:.3f}' for r in row.runs)})")
        for peer in timed:
            row = _peer_row(peer, batch, peer_runs.get(batch, 1), warm)
            rows.append(row)
            shown = f"{row.median:.3f} s" if row.error is None else row.error
            log(f"  batch {batch}: {peer.label}: {shown}")
    return rows


def ratio(rows: Sequence[SpeedRow], tool: str, batch: int) -> float | None:
    """How many times longer ``tool`` took than fxflops at ``batch`` (None if either is missing)."""
    ours = next((r for r in rows if r.tool == FXFLOPS and r.batch == batch and r.median), None)
    theirs = next((r for r in rows if r.tool == tool and r.batch == batch and r.median), None)
    if ours is None or theirs is None:
        return None
    return theirs.median / ours.median

"""Time to count: fxflops on the meta-device model versus each peer executing the real model.

Everything runs in this one process on OpenCLIP ViT-B-16 (whole model). Each tool gets one
untimed warm-up call (lazy imports, first-call caches) before the first batch size. The timed
calls then go round the tools, one call per tool per round, so that load from other processes
that comes and goes during the section falls on every tool alike rather than on whichever tool
happened to be running. Tables report medians; the speed target uses the ratio of the fastest
calls (the least disturbed by other processes, as ``timeit`` advises).
"""

from __future__ import annotations

import gc
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks import models
from benchmarks.accuracy import one_line
from benchmarks.peers import Peer, to_flops
from benchmarks.results import SpeedRow
from benchmarks.timing import measure

FXFLOPS = "fxflops"


@dataclass
class _Tool:
    """One tool at one batch size: what to call, how often, and what came out."""

    row: SpeedRow
    call: Callable[[], Any]
    runs: int
    convert: Callable[[Any], float]
    seconds: list[float] = field(default_factory=list)


def _fxflops_tool(batch: int, runs: int) -> _Tool:
    import fxflops
    from fxflops.zoo import open_clip_inputs

    model = models.open_clip_meta()
    inputs = open_clip_inputs(model, batch)
    return _Tool(SpeedRow(tool=FXFLOPS, label="fxflops (meta device)", batch=batch),
                 lambda: fxflops.count(model, (inputs.image, inputs.text)).total, runs, float)


def _peer_tool(peer: Peer, batch: int, runs: int) -> _Tool:
    model = models.open_clip_real()
    inputs = models.open_clip_real_inputs(model, batch)
    return _Tool(SpeedRow(tool=peer.key, label=peer.label, batch=batch),
                 lambda: peer.run(model, inputs), runs, lambda result: to_flops(*result))


def _time_round_robin(tools: list[_Tool], warmup: int) -> None:
    """Warm up each tool, then time one call per tool per round until each has its runs."""
    for tool in tools:
        try:
            for _ in range(warmup):
                tool.call()
        except Exception as e:
            tool.row.error = one_line(e)
    for index in range(max(t.runs for t in tools)):
        for tool in tools:
            if tool.row.error is not None or index >= tool.runs:
                continue
            try:
                measured = measure(tool.call)
            except Exception as e:
                tool.row.error = one_line(e)
                continue
            tool.seconds.append(measured.seconds)
            if index == 0:
                tool.row.peak_rss_increase_mib = measured.peak_rss_increase_mib
                tool.row.flops = tool.convert(measured.result)
            gc.collect()  # the peers' activations of this call must not linger into the next tool's
    for tool in tools:
        tool.row.runs = list(tool.seconds)
        tool.row.median = statistics.median(tool.seconds) if tool.seconds else None


def run(peers: Sequence[Peer], batches: Sequence[int], fxflops_runs: int, peer_runs: Mapping[int, int],
        log: Callable[[str], None] = print, warmup: int = 1) -> list[SpeedRow]:
    """Time fxflops and every runnable peer at each batch size, round-robin.

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
        tools = [_fxflops_tool(batch, fxflops_runs)]
        tools += [_peer_tool(peer, batch, peer_runs.get(batch, 1)) for peer in timed]
        load = os.getloadavg()[0]
        _time_round_robin(tools, warmup if index == 0 else 0)
        log(f"  batch {batch} (load {load:.2f} -> {os.getloadavg()[0]:.2f}):")
        for tool in tools:
            row = tool.row
            shown = row.error or (f"median {row.median:.3f} s, fastest {min(row.runs):.3f} s "
                                  f"(runs {', '.join(f'{r:.3f}' for r in row.runs)})")
            log(f"    {row.label}: {shown}")
            rows.append(row)
    return rows


def ratio(rows: Sequence[SpeedRow], tool: str, batch: int, fastest: bool = False) -> float | None:
    """How many times longer ``tool`` took than fxflops at ``batch``: medians, or fastest calls."""
    ours = next((r for r in rows if r.tool == FXFLOPS and r.batch == batch and r.runs), None)
    theirs = next((r for r in rows if r.tool == tool and r.batch == batch and r.runs), None)
    if ours is None or theirs is None:
        return None
    if fastest:
        return min(theirs.runs) / min(ours.runs)
    return (theirs.median or 0) / (ours.median or 1)

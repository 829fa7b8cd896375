"""The time-to-count versus batch size plot (log-log), one line per tool.

matplotlib is imported lazily: without it the plot is skipped with a message and everything else
in the run still happens.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.results import Results
from benchmarks.speed import FXFLOPS


def write(results: Results, path: Path) -> str:
    """Draw the plot to ``path``; return a one-line message saying what happened."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a server
        import matplotlib.pyplot as plt
    except ImportError:
        return f"plot skipped: matplotlib is not installed (pip install matplotlib) — {path.name} not written"
    series: dict[str, tuple[str, dict[int, float]]] = {}
    for row in results.speed:
        if row.median:
            series.setdefault(row.tool, (row.label, {}))[1][row.batch] = row.median
    # fxflops's own batch sweep (1..256) is a separate measurement (another process), so its own line.
    sweep = {r.batch: r.median for r in results.batch_scaling if r.median and not r.error}
    if sweep:
        series["sweep"] = ("fxflops, batch sweep 1..256 (own process)", sweep)
    if not any(points for _label, points in series.values()):
        return "plot skipped: no timings in this run"
    figure, axes = plt.subplots(figsize=(12, 5.5), dpi=120)
    for tool, (label, points) in series.items():
        batches = sorted(points)
        style: dict[str, object] = {"linewidth": 1.5}
        if tool == FXFLOPS:
            style = {"linewidth": 3, "color": "black", "zorder": 5}
        elif tool == "sweep":
            style = {"linewidth": 2, "color": "black", "linestyle": "--", "zorder": 4, "markersize": 3}
        axes.plot(batches, [points[b] for b in batches], marker="o", label=label, **style)
    axes.set_xscale("log", base=2)
    ticks = sorted({b for _label, points in series.values() for b in points})
    axes.set_xticks(ticks, [str(b) for b in ticks])
    axes.set_yscale("log")
    axes.set_xlabel("batch size")
    axes.set_ylabel("seconds to produce the count (median)")
    axes.set_title("Time to count OpenCLIP ViT-B-16 (image + text), CPU")
    axes.grid(True, which="both", alpha=0.3)
    # Outside the axes: inside, it would hide the peers' lines.
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return f"plot written: {path}"

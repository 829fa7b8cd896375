"""Render a run's results as ``RESULTS.md``."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.accuracy import reference_checks
from benchmarks.peers import MACS, PEERS
from benchmarks.results import ProbeRow, Results, SpeedRow
from benchmarks.speed import FXFLOPS, ratio

PEER_BY_KEY = {p.key: p for p in PEERS}


def flops_text(value: float | None) -> str:
    """A FLOP count with a unit prefix and two decimals: ``41.09 G``."""
    if value is None:
        return "-"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}"
    return f"{value:.0f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else (f"{value:.3f}" if value < 10 else f"{value:.1f}")


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return [*out, ""]


# -- sections ---------------------------------------------------------------------------------------


def _machine(results: Results) -> list[str]:
    m = results.machine
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if v)
    missing = ", ".join(k for k, v in m.get("versions", {}).items() if not v)
    load_after = m.get("load_after")
    lines = [
        "## Machine and software",
        "",
        f"- Command: `{m.get('command')}` (started {m.get('started')}, wall time "
        f"{_seconds(results.wall_seconds)} s{', --quick subset' if results.quick else ''})",
        f"- CPU: {m.get('cpu_model')}; `nproc` = {m.get('nproc')}; torch intra-op threads "
        f"{m.get('torch_threads')}; memory {m.get('memory_gib', 0):.1f} GiB; no GPU",
        f"- Python {m.get('python')} on {m.get('platform')}",
        f"- Versions: {versions}",
    ]
    if missing:
        lines.append(f"- Not installed: {missing}")
    commit = m.get("git_commit")
    if commit:
        lines.append(
            f"- fxflops at commit {commit}{' plus uncommitted changes' if m.get('git_dirty') else ''}"
        )
    before = m.get("load_before") or (0, 0, 0)
    after_text = f", after {load_after[0]:.2f}" if load_after else ""
    lines.append(
        f"- Load average (1 min) before the run {before[0]:.2f}{after_text} on {m.get('nproc')} cores: "
        "other engineers' test runs share this machine, so absolute times are noisy; ratios measured "
        "back to back in one process are the more robust figures."
    )
    for skipped in results.skipped_peers:
        lines.append(f"- Skipped: {skipped}")
    return [*lines, ""]


def _targets(results: Results) -> list[str]:
    lines = ["## Targets", "", "```"]
    lines += [t.line() for t in results.targets]
    return [*lines, "```", ""]


def _accuracy(results: Results) -> list[str]:
    if not results.accuracy:
        return []
    lines = [
        "## Accuracy",
        "",
        "Batch 1 everywhere. **Reference** is fxflops's count of the meta-device model; the *checks* column "
        "says how it is established independently (hand arithmetic in `benchmarks/reference.py`, and "
        "FlopCounterMode run with autograd on, the MHA fast path off and the math SDPA kernel, which makes "
        "every matmul visible to it). Peers run the real model on CPU with random weights.",
        "",
    ]
    rows = []
    for case in results.accuracy:
        checks = reference_checks(case)
        check_text = "; ".join(f"{'=' if ok else '≠'} {name}" for name, ok in checks) or "-"
        if case.fxflops_error:
            reference = f"error: {case.fxflops_error}"
        else:
            reference = f"{case.reference:,}"
        trace = (
            "torch.export fallback: " + ", ".join(f"`{k or '<root>'}`" for k in case.fallbacks)
            if case.fallbacks
            else "torch.fx"
        )
        rows.append(
            [
                case.label,
                reference,
                flops_text(case.reference),
                case.how,
                check_text,
                _seconds(case.fxflops_seconds),
                trace,
            ]
        )
    lines += _table(
        ["workload", "reference FLOPs (fxflops)", "", "how established", "checks", "fxflops s", "traced by"],
        rows,
        "lrrllrl",
    )

    peer_keys = [k for k in PEER_BY_KEY if any(k in c.peers for c in results.accuracy)]
    lines += [
        "Each tool's count in FLOPs (MACs x 2 where the tool reports MACs), and as a share of the "
        "reference. `-` = the tool raised (errors below).",
        "",
    ]
    header = ["tool", "reports", "x2?"] + [c.short for c in results.accuracy]
    rows = [["**fxflops**", "FLOPs", "no"] + [f"**{flops_text(c.reference)}**" for c in results.accuracy]]
    errors: dict[str, str] = {}
    for key in peer_keys:
        peer = PEER_BY_KEY[key]
        row = [peer.label, peer.unit, "yes" if peer.unit == MACS else "no"]
        for case in results.accuracy:
            cell = case.peers.get(key)
            if cell is None:
                row.append("")
            elif cell.error:
                errors.setdefault(f"{peer.label}: {cell.error}", case.label)
                row.append("-")
            elif case.reference:
                row.append(f"{flops_text(cell.flops)} ({100 * (cell.flops or 0) / case.reference:.1f}%)")
            else:
                row.append(flops_text(cell.flops))
        rows.append(row)
    lines += _table(header, rows, "lll" + "r" * len(results.accuracy))
    if errors:
        lines += ["Errors (first workload where each occurred):", ""]
        lines += [f"- {message} (e.g. {where})" for message, where in errors.items()]
        lines.append("")
    lines += ["<details><summary>Raw numbers as each tool reports them</summary>", ""]
    raw_rows = []
    for case in results.accuracy:
        for key in peer_keys:
            cell = case.peers.get(key)
            if cell is not None and cell.error is None:
                raw_rows.append(
                    [
                        case.label,
                        PEER_BY_KEY[key].label,
                        f"{cell.value:,.0f}",
                        cell.unit or "",
                        f"{cell.flops:,.0f}",
                        _seconds(cell.seconds),
                    ]
                )
    lines += _table(["workload", "tool", "reported", "unit", "FLOPs", "s"], raw_rows, "llrlrr")
    return [*lines, "</details>", ""]


def _speed(results: Results) -> list[str]:
    if not results.speed:
        return []
    batches = sorted({r.batch for r in results.speed})
    tools: list[SpeedRow] = []
    for row in results.speed:
        if all(t.tool != row.tool for t in tools):
            tools.append(row)
    lines = [
        "## Speed: time to count OpenCLIP ViT-B-16 (whole model)",
        "",
        "Median wall seconds over the runs shown, all tools in one process; fxflops counts the meta-device "
        "model, each peer runs the real CPU model (that is how it produces its number). Timed calls go "
        "round the tools, one call per tool per round, so that load from other processes falls on all of "
        "them alike. `(N x)` = the tool's median over fxflops's median at that batch size; *fastest* = its "
        "fastest call over fxflops's fastest, the figure least disturbed by other processes (under load, "
        "the peers' 2-thread forward passes slow down more than fxflops's single thread, so the medians' "
        "ratio grows with the load). Peak RSS is the rise during the first timed call (VmHWM reset just "
        "before, freed memory handed back to the OS first).",
        "",
    ]
    header = ["tool"] + [f"batch {b}" for b in batches] + [f"peak RSS rise at batch {batches[-1]}, MiB"]
    rows = []
    for tool in tools:
        row = [("**" + tool.label + "**") if tool.tool == FXFLOPS else tool.label]
        last = None
        for b in batches:
            r = next((x for x in results.speed if x.tool == tool.tool and x.batch == b), None)
            if r is None:
                row.append("")
                continue
            last = r
            if r.error:
                row.append(f"error: {r.error}")
                continue
            runs = f"n={len(r.runs)}"
            if tool.tool == FXFLOPS:
                row.append(f"{_seconds(r.median)} s ({runs})")
            else:
                x = ratio(results.speed, tool.tool, b)
                fast = ratio(results.speed, tool.tool, b, fastest=True)
                shown = f" ({x:.1f} x; fastest {fast:.1f} x; {runs})" if x and fast else ""
                row.append(f"{_seconds(r.median)} s{shown}")
        row.append(_mib(last.peak_rss_increase_mib) if last else "")
        rows.append(row)
    lines += _table(header, rows)
    return lines


def _probe_rows(rows: Sequence[ProbeRow], by_model: bool) -> list[list[str]]:
    out = []
    base = next((r for r in rows if r.batch == 1 and r.median), None)
    for r in rows:
        if r.error:
            out.append(
                [r.model if by_model else str(r.batch), "error: " + r.error] + [""] * (7 if by_model else 4)
            )
            continue
        if by_model:
            out.append(
                [
                    r.model,
                    f"{(r.params or 0) / 1e9:.2f} B",
                    flops_text(r.flops),
                    _seconds(r.build_seconds),
                    _seconds(r.first_seconds),
                    _seconds(r.first_cpu_seconds),
                    _seconds(r.median),
                    _mib(r.peak_rss_increase_mib),
                    "-" if r.load is None else f"{r.load:.1f}",
                ]
            )
        else:
            rel = f"{r.median / base.median:.2f}" if base and r.median else "-"
            out.append(
                [
                    str(r.batch),
                    flops_text(r.flops),
                    _seconds(r.first_seconds),
                    _seconds(r.median),
                    rel,
                    _mib(r.peak_rss_increase_mib),
                ]
            )
    return out


def _scaling(results: Results) -> list[str]:
    lines: list[str] = []
    if results.batch_scaling:
        where = "the runner's process" if results.quick else "one fresh process"
        runs = max((len(r.runs) + 1 for r in results.batch_scaling), default=1)
        lines += [
            "## Scaling with batch size (fxflops, ViT-B-16 whole model, meta device)",
            "",
            f"All batch sizes in {where}: *first* = the first count at each batch size, smallest first (with "
            f"its peak RSS rise); then {runs - 1} rounds over all batch sizes, whose per-batch *median* is "
            "shown: round-robin, so that load from other processes falls on every batch size alike.",
            "",
        ]
        lines += _table(
            ["batch", "FLOPs", "first s", "median s", "median / batch 1", "peak RSS rise, MiB"],
            _probe_rows(results.batch_scaling, by_model=False),
        )
    if results.model_scaling:
        where = "the runner's process (--quick)" if results.quick else "a fresh subprocess per model"
        lines += [
            "## Scaling with model size (fxflops, batch 1, meta device)",
            "",
            f"Each model in {where}: fxflops and open_clip imported, fxflops warmed up on a one-layer model, "
            "then the model "
            "built on the meta device (*build s*), counted once (*first count s*, and the peak RSS rise: "
            "VmHWM reset before the count, minus VmRSS before it), then counted again (*median s*). "
            "*its CPU s* is the process CPU time of the first count, which other processes on the machine "
            "disturb less than wall time; *load* is the 1-minute load average when it started.",
            "",
        ]
        lines += _table(
            [
                "model",
                "params",
                "FLOPs",
                "build s",
                "first count s",
                "its CPU s",
                "median s",
                "peak RSS rise, MiB",
                "load",
            ],
            _probe_rows(results.model_scaling, by_model=True),
        )
    return lines


def _zoo(results: Results) -> list[str]:
    zoo = results.zoo
    if zoo is None:
        return []
    lines = ["## The whole OpenCLIP zoo, end to end", "", f"How: {zoo.how}.", ""]
    if zoo.seconds is not None:
        lines.append(
            f"- Wall time: **{zoo.seconds:.1f} s** (interpreter start-up and imports included), "
            f"{zoo.rows} rows of {zoo.models} models, {zoo.jobs} worker processes."
        )
    if zoo.error:
        lines.append(f"- Error: {zoo.error}")
    lines += [f"- {note}" for note in zoo.notes]
    if zoo.slowest:
        lines.append(
            "- Slowest models (build + 3 counts, seconds in a worker): "
            + ", ".join(f"{n} {s:.1f}" for n, s in zoo.slowest)
        )
    if zoo.failures:
        lines += ["", "<details><summary>" + f"{len(zoo.failures)} models gave no row" + "</summary>", ""]
        lines += [f"- {f}" for f in zoo.failures]
        lines += ["", "</details>"]
    return [*lines, ""]


def _profiles(results: Results) -> list[str]:
    if not results.profiles:
        return []
    lines = [
        "## Where fxflops spends its time (cProfile)",
        "",
        "Written for each failed target (and for every target with `--profile-all`).",
        "",
        "Buckets nest (indentation); cProfile inflates absolute times, and most for code made of many small "
        "calls (generators like `named_parameters()`), so read the shares and confirm with a sampling "
        "profiler (py-spy). Times are cumulative seconds.",
        "",
    ]
    for p in results.profiles:
        lines += [f"### {p.title}", "", f"Profiled wall time {p.total_seconds:.2f} s.", ""]
        total = p.total_seconds or 1.0
        lines += _table(
            ["stage", "calls", "cumulative s", "share"],
            [
                [
                    f"`{label.strip()}`"
                    if not label.startswith(" ")
                    else "&nbsp;" * (2 * (len(label) - len(label.lstrip()))) + f"`{label.strip()}`",
                    str(calls),
                    f"{cum:.3f}",
                    f"{100 * cum / total:.0f}%",
                ]
                for label, calls, cum in p.buckets
            ],
            "lrrr",
        )
        lines += ["<details><summary>Top functions by cumulative time</summary>", ""]
        lines += _table(
            ["function", "calls", "own s", "cumulative s"],
            [[f"`{f}`", str(n), f"{tt:.3f}", f"{ct:.3f}"] for f, n, tt, ct in p.top],
            "lrrr",
        )
        lines += ["</details>", ""]
    return lines


def _before_after(results: Results, previous: Results | None) -> list[str]:
    if previous is None:
        return []
    pairs: list[tuple[str, float | None, float | None]] = []

    def speed(r: Results, b: int) -> float | None:
        return next((x.median for x in r.speed if x.tool == FXFLOPS and x.batch == b), None)

    def probe(rows: Sequence[ProbeRow], model: str, b: int, attr: str) -> float | None:
        row = next((x for x in rows if x.model == model and x.batch == b and not x.error), None)
        return getattr(row, attr) if row else None

    for b in sorted({x.batch for x in results.speed if x.tool == FXFLOPS}):
        pairs.append(
            (f"count ViT-B-16, batch {b} (speed section, median s)", speed(previous, b), speed(results, b))
        )
    for b in (1, 256):
        pairs.append(
            (
                f"count ViT-B-16, batch {b} (scaling, median s)",
                probe(previous.batch_scaling, "ViT-B-16", b, "median"),
                probe(results.batch_scaling, "ViT-B-16", b, "median"),
            )
        )
    for model in ("ViT-bigG-14", "EVA02-E-14"):
        pairs.append(
            (
                f"first count {model} (s)",
                probe(previous.model_scaling, model, 1, "first_seconds"),
                probe(results.model_scaling, model, 1, "first_seconds"),
            )
        )
        pairs.append(
            (
                f"peak RSS rise {model} (MiB)",
                probe(previous.model_scaling, model, 1, "peak_rss_increase_mib"),
                probe(results.model_scaling, model, 1, "peak_rss_increase_mib"),
            )
        )
    pairs.append(
        (
            "whole zoo (s)",
            previous.zoo.seconds if previous.zoo else None,
            results.zoo.seconds if results.zoo else None,
        )
    )
    rows = [
        [label, _seconds(a), _seconds(b), f"{a / b:.2f} x" if a and b else "-"]
        for label, a, b in pairs
        if a is not None or b is not None
    ]
    if not rows:
        return []
    started = previous.machine.get("started", "?")
    commit = previous.machine.get("git_commit") or "?"
    return [
        "## Before / after (fxflops only)",
        "",
        f"*Before* is the previous run recorded in `benchmarks/results.json` (started {started}, commit "
        f"{commit}); *after* is this run. Speed-up = before / after.",
        "",
        *_table(["measure", "before", "after", "speed-up"], rows),
    ]


def _fair(results: Results) -> list[str]:
    if not results.fair:
        return []
    from benchmarks.fair_speed import FairRow, markdown

    fields = {f for f in FairRow.__dataclass_fields__}
    rows = [FairRow(**{k: v for k, v in row.items() if k in fields}) for row in results.fair]
    return ["## Speed against FlopCounterMode on the meta device", "",
            "The fair comparison (issue 13): FlopCounterMode run on meta tensors does no arithmetic either. "
            "Same model and inputs, Hugging Face models with their default call, one warm-up call each, "
            "timed calls round-robin; FlopCounterMode in the faster of autograd off/on that gives the same "
            "count. `benchmarks/fair_speed.py`.", "", markdown(rows), ""]


def render(results: Results, previous: Results | None = None) -> str:
    """The whole RESULTS.md."""
    lines = [
        "# fxflops benchmarks",
        "",
        "Accuracy, speed, memory and scaling of fxflops against the FLOP counters users would otherwise pick "
        "(issue 6). Written by `benchmarks/run.py`; do not edit by hand. See `benchmarks/README.md` for the "
        "method.",
        "",
    ]
    lines += _machine(results) + _targets(results) + _fair(results) + _accuracy(results) + _speed(results)
    lines += _scaling(results)
    lines += _zoo(results) + _profiles(results) + _before_after(results, previous)
    if results.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in results.notes] + [""]
    return "\n".join(lines).rstrip() + "\n"

"""Run every fxflops benchmark and write ``RESULTS.md`` and ``time_vs_batch.png``.

    python benchmarks/run.py            # the full run (12-16 minutes on 2 cores)
    python benchmarks/run.py --quick    # a subset in under two minutes, written to a temp dir

The runner installs nothing: a peer that is not installed is skipped with a message. It prints
one PASS/FAIL/SKIP line per target of issue 6 and exits 1 if any target failed. When a target
fails it profiles fxflops on that workload and writes where the time goes into RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `benchmarks` and `fxflops` importable
    sys.path.insert(0, str(REPO))

from benchmarks import results as results_io  # noqa: E402
from benchmarks.results import Results  # noqa: E402

SECTIONS = ("fair", "accuracy", "speed", "scaling", "zoo")
QUICK_PEERS = ("fcm_no_grad", "fcm_grad")  # --quick times FlopCounterMode only


class Log:
    """Progress lines with the elapsed time, flushed at once (the full run is long)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.0f}s] {message}", flush=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a subset in under two minutes; writes to a temp dir unless --out is given",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write RESULTS.md, time_vs_batch.png and results.json "
        "(default: benchmarks/, or a temp dir with --quick)",
    )
    parser.add_argument(
        "--skip", action="append", choices=SECTIONS, default=[], help="skip a section (repeatable)"
    )
    parser.add_argument(
        "--peers", default=None, help="comma-separated peer keys to run (default: all installed)"
    )
    parser.add_argument(
        "--zoo-jobs",
        type=int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        help="worker processes for the zoo (default: the cores)",
    )
    parser.add_argument(
        "--profile",
        dest="profile",
        action="store_true",
        default=None,
        help="profile failed targets (default: on, off with --quick)",
    )
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--profile-all", action="store_true",
                        help="profile the workload of every target, passed or not")
    return parser.parse_args(argv)


def _profiles(res: Results, log: Callable[[str], None], every: bool) -> None:
    from benchmarks import profiling

    failed = {t.name for t in res.targets if t.status == "FAIL" or (every and t.status == "PASS")}
    jobs: list[tuple[str, Callable[[], results_io.ProfileResult]]] = []
    if any("FlopCounterMode" in n for n in failed):
        jobs.append(("ViT-B-16 batch 8", lambda: profiling.profile_open_clip_count("ViT-B-16", 8)))
    if any("batch 256" in n for n in failed):
        jobs.append(("ViT-B-16 batch 1", lambda: profiling.profile_open_clip_count("ViT-B-16", 1)))
        jobs.append(("ViT-B-16 batch 256", lambda: profiling.profile_open_clip_count("ViT-B-16", 256)))
    if any("EVA02-E-14" in n for n in failed):
        jobs.append(("EVA02-E-14", lambda: profiling.profile_open_clip_count("EVA02-E-14", 1)))
    if any("zoo" in n for n in failed):
        jobs.append(("a sample of the zoo", profiling.profile_zoo_sample))
    if any("peak RSS" in t.name and t.status == "FAIL" for t in res.targets):
        res.notes.append(
            "The peak-RSS target failed; memory is not profiled by the runner (use tracemalloc)."
        )
    for label, job in jobs:
        log(f"profiling {label}")
        try:
            res.profiles.append(job())
        except Exception as e:
            res.notes.append(f"profiling {label} failed: {type(e).__name__}: {e}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = Log()
    out = args.out or (
        Path(tempfile.gettempdir()) / "fxflops-benchmarks-quick" if args.quick else REPO / "benchmarks"
    )
    out.mkdir(parents=True, exist_ok=True)
    profile = (not args.quick) if args.profile is None else args.profile

    # No network here: without these, Hugging Face code retries Hub requests for ~20 s before failing.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch  # noqa: F401  (after the arguments parse: --help stays fast)

    from benchmarks import accuracy, machine, models, peers, plot, report, scaling, speed, targets, zoo_timing

    command = ["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)]
    info = machine.describe(str(REPO), command)
    res = Results(quick=args.quick)
    log(
        f"fxflops benchmarks{' (--quick)' if args.quick else ''}: {info.cpu_model}, nproc {info.nproc}, "
        f"load {info.load_before[0]:.2f}; writing to {out}"
    )

    installed = peers.available(announce=lambda m: (res.skipped_peers.append(m), log(m)))
    if args.peers:
        wanted = set(args.peers.split(","))
        installed = [p for p in installed if p.key in wanted]

    if "accuracy" not in args.skip:
        log("accuracy")
        cases = [c for c in models.cases() if c.quick or not args.quick]
        res.accuracy = accuracy.run(cases, installed, log=lambda m: log(m))

    if "fair" not in args.skip:
        from benchmarks import fair_speed

        log("fair speed: fxflops vs FlopCounterMode on the meta device")
        keys = {"resnet50", "vit_b_16", "gpt2"} if args.quick else None
        res.fair = [row.as_dict() for row in fair_speed.run(log=lambda m: log(m), keys=keys)]

    if "speed" not in args.skip:
        log("speed")
        if args.quick:
            timed = [p for p in installed if p.key in QUICK_PEERS]
            res.notes.append(
                "--quick: speed at batch 8 only, fxflops against FlopCounterMode only, two timed runs "
                "per FlopCounterMode setting and no warm-up (the accuracy section ran each once)."
            )
            res.speed = speed.run(
                timed,
                (8,),
                fxflops_runs=5,
                peer_runs={8: 2},
                log=log,
                warmup=0 if "accuracy" not in args.skip else 1,
            )
        else:
            res.speed = speed.run(
                installed, (1, 8, 32), fxflops_runs=5, peer_runs={1: 5, 8: 3, 32: 2}, log=log
            )

    if "scaling" not in args.skip:
        log("scaling with batch size")
        if args.quick:
            res.batch_scaling = scaling.batch_scaling(
                REPO, scaling.QUICK_BATCHES, 3, in_process=True, log=log
            )
            log("scaling with model size")
            res.model_scaling = scaling.model_scaling(REPO, scaling.QUICK_MODELS, 1, in_process=True, log=log)
        else:
            res.batch_scaling = scaling.batch_scaling(REPO, scaling.BATCHES, 5, in_process=False, log=log)
            log("scaling with model size")
            res.model_scaling = scaling.model_scaling(REPO, scaling.MODELS, 3, in_process=False, log=log)

    if "zoo" not in args.skip and not args.quick:
        log("the whole OpenCLIP zoo")
        res.zoo = zoo_timing.run(REPO, args.zoo_jobs, log=log)
        log(
            f"  zoo: {res.zoo.seconds or float('nan'):.1f} s, {res.zoo.rows}/{res.zoo.models} rows"
            f"{', ' + res.zoo.error if res.zoo.error else ''}"
        )
    elif args.quick:
        res.notes.append("--quick: the whole-zoo run is skipped.")

    res.targets = targets.check(res)
    if args.profile_all or (profile and any(t.status == "FAIL" for t in res.targets)):
        _profiles(res, log, every=args.profile_all)

    info.load_after = os.getloadavg()
    res.machine = vars(info)
    res.wall_seconds = log.elapsed
    json_path = out / "results.json"
    previous = results_io.load(json_path)
    if previous is not None and previous.quick != res.quick:
        previous = None  # compare like with like
    (out / "RESULTS.md").write_text(report.render(res, previous))
    results_io.save(res, json_path)
    log(plot.write(res, out / "time_vs_batch.png"))
    log(f"wrote {out / 'RESULTS.md'} and {json_path.name}")
    print()
    for target in res.targets:
        print(target.line())
    return 1 if any(t.status == "FAIL" for t in res.targets) else 0


if __name__ == "__main__":
    sys.exit(main())

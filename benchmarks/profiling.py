"""Where fxflops spends its time, measured with cProfile, for the targets a run missed.

A profile is summarised two ways: fixed *buckets* (the stages of ``fxflops.count``: tracing,
meta-device interpretation, leaf-module forwards, rules, torch's Python meta kernels, the
torch.export fallback), and the top functions by cumulative time. Buckets nest (indentation);
cProfile's own overhead inflates the absolute numbers by roughly 1.5-2x, and most for code that makes
many small calls (generators such as ``named_parameters()``), so read the shares, and confirm a
suspect with a sampling profiler (``py-spy record``) before optimising it.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import time
from collections.abc import Callable
from typing import Any

from benchmarks.results import ProfileResult

#: (label, path fragment, function name). Indentation in the label shows nesting.
BUCKETS: tuple[tuple[str, str, str], ...] = (
    ("fxflops.count", "fxflops/api.py", "count"),
    ("  tracing: fxflops.tracing.trace", "fxflops/tracing.py", "trace"),
    ("    source lines: tracing._user_frame", "fxflops/tracing.py", "_user_frame"),
    ("    parameter reads: FlopTracer.getattr (one id index per trace)", "fxflops/tracing.py", "getattr"),
    ("    arguments: FlopTracer.create_arg", "fxflops/tracing.py", "create_arg"),
    ("    torch.fx Proxy.__iter__ (disassembles the caller per unpack)", "torch/fx/proxy.py", "__iter__"),
    ("  meta interpretation: counter.FlopCounter.count", "fxflops/counter.py", "count"),
    ("    torch.export fallback: export.export_module (submodules torch.fx cannot trace)",
     "fxflops/export.py", "export_module"),
    ("    counting exported graphs: export.count_exported", "fxflops/export.py", "count_exported"),
    ("    module lookups: FlopCounter._module", "fxflops/counter.py", "_module"),
    ("    leaf modules on meta: FlopCounter.call_module", "fxflops/counter.py", "call_module"),
    ("      meta clones: shapes.meta_clone", "fxflops/shapes.py", "meta_clone"),
    ("    functions on meta: FlopCounter.call_function", "fxflops/counter.py", "call_function"),
    ("    methods on meta: FlopCounter.call_method", "fxflops/counter.py", "call_method"),
    ("    records and rules: FlopCounter._record", "fxflops/counter.py", "_record"),
    ("      rules: FlopCounter._apply", "fxflops/counter.py", "_apply"),
    ("    same-shape fast path: counter._same_shape", "fxflops/counter.py", "_same_shape"),
    ("    elementwise fast path: counter._elementwise_output", "fxflops/counter.py", "_elementwise_output"),
    (
        "    (inside the above) torch Python meta kernels: fake_impl.meta_kernel",
        "torch/_library/fake_impl.py",
        "meta_kernel",
    ),
    (
        "    (inside the above) torch.device('meta') mode: _device.__torch_function__",
        "torch/utils/_device.py",
        "__torch_function__",
    ),
    ("  report: FlopReport.__init__", "fxflops/report.py", "__init__"),
    ("build on meta: zoo.build_open_clip", "fxflops/zoo.py", "build_open_clip"),
)

TOP = 25


def _short(filename: str) -> str:
    for marker in ("site-packages" + os.sep, "work" + os.sep + "main" + os.sep):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _label(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return name  # a builtin: "{built-in method ...}"
    return f"{_short(filename)}:{line}({name})"


def summarise(stats: pstats.Stats, title: str, wall: float) -> ProfileResult:
    """Buckets and top functions of one profile."""
    raw: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    buckets = []
    for label, fragment, name in BUCKETS:
        calls, cumulative = 0, 0.0
        for (filename, _line, func), (_cc, nc, _tt, ct, _callers) in raw.items():
            if func == name and fragment in filename.replace(os.sep, "/"):
                calls += nc
                cumulative += ct
        if calls:
            buckets.append((label, calls, round(cumulative, 3)))
    ranked = sorted(raw.items(), key=lambda item: -item[1][3])
    top = [(_label(key), nc, round(tt, 3), round(ct, 3)) for key, (_cc, nc, tt, ct, _c) in ranked[:TOP]]
    return ProfileResult(title=title, total_seconds=round(wall, 3), buckets=buckets, top=top)


def profile(fn: Callable[[], Any], title: str) -> ProfileResult:
    """cProfile one call of ``fn``."""
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    try:
        fn()
    finally:
        profiler.disable()
    wall = time.perf_counter() - start
    return summarise(pstats.Stats(profiler), title, wall)


def profile_open_clip_count(name: str, batch: int) -> ProfileResult:
    """Profile ``fxflops.count`` of an OpenCLIP model (built beforehand, counted once to warm up)."""
    import fxflops
    from benchmarks.models import open_clip_meta, quiet
    from fxflops.zoo import build_open_clip, open_clip_inputs

    if name == "ViT-B-16":
        model = open_clip_meta()
    else:
        with quiet():
            model = build_open_clip(name)
    inputs = open_clip_inputs(model, batch)
    fxflops.count(model, (inputs.image, inputs.text))  # warm: caches and lazy imports out of the way
    return profile(
        lambda: fxflops.count(model, (inputs.image, inputs.text)),
        f"fxflops.count(open_clip {name}, batch {batch}), warm",
    )


#: A spread of the zoo's families: native ViT, ModifiedResNet, ConvNeXt and SigLIP (timm), EVA, CoCa.
ZOO_SAMPLE = (
    "ViT-B-32",
    "RN50",
    "convnext_base_w",
    "ViT-SO400M-14-SigLIP",
    "EVA02-L-14",
    "coca_ViT-B-32",
    "ViT-H-14-quickgelu",
    "PE-Core-B-16",
)


def profile_zoo_sample(names: tuple[str, ...] = ZOO_SAMPLE) -> ProfileResult:
    """Profile what the zoo does per model (build on meta, then count), over a sample of families.

    Uses ``fxflops.zoo.open_clip_profile_row`` (one count per model, as ``fxflops zoo`` does) when it
    exists, else ``open_clip_row`` (three counts). Models that fail are skipped, as the zoo does.
    """
    import open_clip

    from benchmarks.models import quiet
    from fxflops import zoo

    row = getattr(zoo, "open_clip_profile_row", zoo.open_clip_row)
    known = set(open_clip.list_models())

    def sample() -> None:
        for name in names:
            if name in known:
                try:
                    with quiet():
                        row(name)
                except Exception:
                    pass

    return profile(
        sample, f"zoo sample: fxflops.zoo.{row.__name__} over {', '.join(n for n in names if n in known)}"
    )

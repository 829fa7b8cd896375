"""Sweep torchvision builders, timm families or diffusers model classes: fxflops next to FlopCounterMode.

    python -m benchmarks.sweep_vision torchvision            # every builder torchvision lists
    python -m benchmarks.sweep_vision timm                   # the smallest model of every timm family
    python -m benchmarks.sweep_vision timm 'vit*' --docs     # fnmatch patterns; --docs writes docs/
    python -m benchmarks.sweep_vision diffusers              # every ModelMixin diffusers exports

What is swept, built automatically:

* ``torchvision``: every name of ``torchvision.models.list_models()`` (classification, quantizable,
  segmentation, detection, video, optical flow), ``weights=None``. Inputs: one 224x224 image (299
  for Inception v3), a 16-frame 112x112 clip for the ResNet-3D family and 224x224 for the other
  video models, two images for RAFT, and for detectors one real image (seeded random pixels, 320x320).
* ``diffusers`` (optional, not in the test extras): every ``ModelMixin`` class diffusers exports,
  built from its default config with depth arguments above 2 set to 2; keyword inputs are built
  from the forward's parameter names and the config (``fxflops/zoo_diffusers.py``).
* ``timm``: for every module of ``timm.list_modules()`` (a family: ``vision_transformer``,
  ``convnext``, ...), the model of ``timm.list_models(module=...)`` with the fewest parameters
  (built on meta to count them), at its ``pretrained_cfg`` input size. The chosen names are written
  to ``benchmarks/timm_families.json`` so that tests can sample them without listing again.

Method, as ``benchmarks/sweep_transformers.py``: the model is built on the meta device (on the CPU
when its constructor computes with tensors), counted by fxflops, then by FlopCounterMode under
``torch.device("meta")`` with autograd on and math SDPA. Where FlopCounterMode cannot run on meta
(detectors read their data: anchors, NMS), both run on a CPU copy with seeded weights and inputs,
and fxflops counts with that data (``routing="data"``). One worker process at a time, with a
timeout and a memory limit per model; statuses as in the transformers sweep.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.sweep_transformers import (
    ROOT,
    _count_into,
    _recount_on_cpu,
    _start_worker,
    classify,
    describe,
    summary,
    sweep,
)

FAMILIES = ROOT / "benchmarks" / "timm_families.json"
LIBRARIES = ("torchvision", "timm", "diffusers")
DETECTION_SIZE = 320


# -- worker side -------------------------------------------------------------------------------------

def _build(library: str, name: str, device: str) -> Any:
    import torch

    with torch.device(device):
        if library == "torchvision":
            import torchvision

            # weights_backbone=None: detectors and segmenters would download ImageNet backbones
            extra = {"weights_backbone": None} if torchvision_kind(name) in ("detection", "segmentation") else {}
            model = torchvision.models.get_model(name, weights=None, **extra)
        else:
            import timm

            model = timm.create_model(name, pretrained=False)
    return model.eval()


def build(library: str, name: str) -> tuple[Any, str]:
    """The model on meta, or on the CPU (seeded) when its constructor computes with tensors."""
    import torch

    try:
        return _build(library, name, "meta"), "meta"
    except Exception:
        torch.manual_seed(0)
        return _build(library, name, "cpu"), "cpu"


def torchvision_kind(name: str) -> str:
    import torchvision

    for kind, module in (("detection", torchvision.models.detection), ("segmentation", torchvision.models.segmentation),
                         ("video", torchvision.models.video), ("optical_flow", torchvision.models.optical_flow)):
        if name in torchvision.models.list_models(module=module):
            return kind
    return "classification"


def inputs_for(library: str, name: str, model: Any) -> tuple[tuple[Any, ...], str]:
    """Positional inputs on meta (detectors: on the CPU, real pixels) and the model's kind."""
    import torch

    meta = torch.device("meta")
    if library == "timm":
        size = model.pretrained_cfg.get("input_size", (3, 224, 224))
        return (torch.empty(1, *size, device=meta),), "timm"
    kind = torchvision_kind(name)
    if kind == "detection":
        image = torch.rand(3, DETECTION_SIZE, DETECTION_SIZE, generator=torch.Generator().manual_seed(0))
        return ([image],), kind
    if kind == "video":
        side = 112 if name in ("r3d_18", "mc3_18", "r2plus1d_18") else 224
        return (torch.empty(1, 3, 16, side, side, device=meta),), kind
    if kind == "optical_flow":
        return (torch.empty(1, 3, 224, 224, device=meta), torch.empty(1, 3, 224, 224, device=meta)), kind
    side = 299 if "inception_v3" in name else 224
    return (torch.empty(1, 3, side, side, device=meta),), kind


def reference_total(model: Any, args: tuple[Any, ...], device: str) -> int:
    """FlopCounterMode around ``model(*args)`` under ``device``, autograd on, math SDPA."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.device(device), torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(*args)
    return int(counter.get_total_flops())


def _on_cpu(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Seeded real inputs of the same shapes (lists of images stay lists)."""
    import torch
    from torch.utils._pytree import tree_map

    generator = torch.Generator().manual_seed(0)

    def real(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.device.type == "meta":
            if not value.is_floating_point():  # ids, labels: zeros (rand has no integer form)
                return torch.zeros(value.shape, dtype=value.dtype)
            return torch.rand(value.shape, generator=generator, dtype=value.dtype)
        return value

    return tree_map(real, args)


def run_one(library: str, name: str, emit: Any) -> dict[str, Any]:
    import time


    rec: dict[str, Any] = {"type": name}
    start = time.perf_counter()
    emit("build", rec)
    try:
        model, built_on = build(library, name)
        args, kind = inputs_for(library, name, model)
    except Exception as e:
        rec["build_error"] = describe(e)
        rec["status"] = classify(rec)
        return rec
    rec.update(kind=kind, built_on=built_on)
    if kind == "detection" and built_on == "meta":
        model, built_on = _build(library, name, "cpu"), "cpu"  # a detector reads its data: real weights
        rec["built_on"] = "cpu"
    emit("fxflops", rec)
    _count_into(rec, model, args)
    rec["fxflops_seconds"] = round(time.perf_counter() - start, 2)
    emit("reference", rec)
    device = "cpu" if built_on == "cpu" and kind == "detection" else "meta"
    try:
        rec["reference_total"] = reference_total(model, args if device == "meta" else _on_cpu(args), device)
        rec["reference_device"] = device
    except Exception as e:
        rec["reference_error"] = describe(e)
        _reference_on_cpu(library, name, args, rec)
    rec["seconds"] = round(time.perf_counter() - start, 2)
    rec["status"] = classify(rec)
    return rec


def run_keywords(name: str, emit: Any) -> dict[str, Any]:
    """One diffusers class (:mod:`fxflops.zoo_diffusers`): built on meta, called with keyword
    inputs, both counters on meta; on a CPU copy (seeded weights and inputs) when FlopCounterMode
    cannot run on meta, as for the other libraries."""
    import time

    import torch

    from fxflops.zoo_diffusers import build as build_diffusers
    from fxflops.zoo_diffusers import inputs_for as diffusers_inputs

    rec: dict[str, Any] = {"type": name}
    start = time.perf_counter()
    emit("build", rec)
    try:
        model = build_diffusers(name, "meta")
        inputs = diffusers_inputs(name, model)
    except Exception as e:
        rec["build_error"] = describe(e)
        rec["status"] = classify(rec)
        return rec
    rec.update(kind="diffusers", built_on="meta")
    emit("fxflops", rec)
    _count_into(rec, model, (), inputs)
    rec["fxflops_seconds"] = round(time.perf_counter() - start, 2)
    emit("reference", rec)
    try:
        rec["reference_total"] = reference_total(_Keywords(model, inputs), (), "meta")
        rec["reference_device"] = "meta"
    except Exception as e:
        rec["reference_error"] = describe(e)
        try:
            torch.manual_seed(0)
            cpu_model = build_diffusers(name, "cpu")
            (cpu_inputs,) = _on_cpu((inputs,))
            torch.manual_seed(1)
            total = reference_total(_Keywords(cpu_model, cpu_inputs), (), "cpu")
        except Exception as cpu_error:
            rec["reference_cpu_error"] = describe(cpu_error)
        else:
            rec.pop("reference_error")
            rec.update(reference_total=total, reference_device="cpu")
            _recount_on_cpu(rec, cpu_model, (), cpu_inputs)
    rec["seconds"] = round(time.perf_counter() - start, 2)
    rec["status"] = classify(rec)
    return rec


class _Keywords:
    """``model(**inputs)`` as a no-argument call, for :func:`reference_total`."""

    def __init__(self, model: Any, inputs: dict[str, Any]) -> None:
        self.model, self.inputs = model, inputs

    def __call__(self) -> Any:
        return self.model(**self.inputs)


def _reference_on_cpu(library: str, name: str, args: tuple[Any, ...], rec: dict[str, Any]) -> None:
    """Both counters on a CPU copy with seeded weights and inputs, when FlopCounterMode fails on meta."""
    import torch


    try:
        torch.manual_seed(0)
        model = _build(library, name, "cpu")
        cpu_args = _on_cpu(args)
        torch.manual_seed(1)
        total = reference_total(model, cpu_args, "cpu")
    except Exception as e:
        rec["reference_cpu_error"] = describe(e)
        return
    rec.pop("reference_error", None)
    rec.update(reference_total=total, reference_device="cpu")
    _recount_on_cpu(rec, model, cpu_args)


def list_names(library: str) -> list[str]:
    if library == "diffusers":
        from fxflops.zoo_diffusers import list_classes

        return list_classes()
    if library == "torchvision":
        import torchvision

        return sorted(torchvision.models.list_models())
    return [family["model"] for family in timm_families()]


def timm_families() -> list[dict[str, Any]]:
    """The smallest model (fewest parameters, built on meta) of every timm module."""
    import timm
    import torch

    families = []
    for module in sorted(timm.list_modules()):
        sizes = []
        for name in timm.list_models(module=module):
            try:
                with torch.device("meta"):
                    model = timm.create_model(name, pretrained=False)
            except Exception:
                continue
            sizes.append((sum(p.numel() for p in model.parameters()), name))
        if sizes:
            params, name = min(sizes)
            families.append({"family": module, "model": name, "params": params, "models": len(sizes)})
    return families


def worker(library: str) -> None:
    """Read model names from stdin; write JSON events to the real stdout (models print to stderr)."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    import torch

    torch.set_num_threads(1)
    import fxflops

    fxflops.count(torch.nn.Linear(2, 2), torch.empty(1, 2, device="meta"))

    def emit(stage: str, rec: dict[str, Any]) -> None:
        out.write(json.dumps({"event": "stage", "stage": stage, "rec": rec}, default=str) + "\n")

    out.write(json.dumps({"event": "ready"}) + "\n")
    for line in sys.stdin:
        command = line.strip()
        if not command:
            continue
        if command == "__list__":
            if library == "timm":
                families = timm_families()
                FAMILIES.write_text(json.dumps(families, indent=1) + "\n")
                names = [family["model"] for family in families]
            else:
                names = list_names(library)
            out.write(json.dumps({"event": "list", "types": names}) + "\n")
            continue
        try:
            rec = run_keywords(command, emit) if library == "diffusers" else run_one(library, command, emit)
        except Exception as e:  # a bug here must not end the sweep
            rec = {"type": command, "build_error": describe(e), "status": "build error"}
        out.write(json.dumps({"event": "done", "rec": rec}, default=str) + "\n")


# -- parent side ---------------------------------------------------------------------------------------

def _list(library: str, log: Any, refresh: bool) -> list[str]:
    if library == "timm" and FAMILIES.exists() and not refresh:
        return [family["model"] for family in json.loads(FAMILIES.read_text())]
    w = _start_worker(log, ("benchmarks.sweep_vision", library))
    try:
        w.send("__list__")
        event = w.next_event(__import__("time").monotonic() + 1800, 1e9)
    finally:
        w.stop()
    if not isinstance(event, dict) or event.get("event") != "list":
        raise RuntimeError(f"could not list {library} models: {event}")
    return list(event["types"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("patterns", nargs="*", help="fnmatch patterns of model names (default: all)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per model (default 180)")
    parser.add_argument("--max-rss-mib", type=float, default=9000.0, help="kill a worker above this RSS")
    parser.add_argument("--recycle", type=int, default=20, help="restart the worker after this many models")
    parser.add_argument("--refresh", action="store_true", help="list timm's families again")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--docs", action="store_true", help="also write docs/coverage-<library>.md")
    parser.add_argument("--from-json", action="store_true", help="print the summary of --out and exit")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.library)
        return 0
    out = args.out or Path(f"/tmp/sweep_{args.library}.json")
    log_path = Path(f"/tmp/sweep_{args.library}.log")
    what = {"torchvision": "torchvision model builders", "timm": "timm families (smallest model each)",
            "diffusers": "diffusers model classes"}[args.library]
    if args.from_json:
        data = json.loads(out.read_text())
        text = summary(data["results"], data.get("seconds"), what)
        print(text)
        if args.docs:
            write_docs(args.library, text, data.get("versions", {}))
        return 0
    with open(log_path, "w") as log:
        names = _list(args.library, log, args.refresh)
    if args.patterns:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in args.patterns)]
    if not names:
        print("no model matches", file=sys.stderr)
        return 1
    print(f"{len(names)} {args.library} models; results to {out}, worker log {log_path}", file=sys.stderr)
    import time

    start = time.monotonic()
    results = sweep(names, args.timeout, args.max_rss_mib, args.recycle, out,
                    command=("benchmarks.sweep_vision", args.library), log_path=log_path,
                    packages=("torch", args.library))
    text = summary(results, time.monotonic() - start, what)
    print(text)
    if args.docs:
        write_docs(args.library, text, json.loads(out.read_text()).get("versions", {}))
    return 0


def write_docs(library: str, text: str, versions: dict[str, Any]) -> None:
    path = ROOT / "docs" / f"coverage-{library}.md"
    head = (f"# Coverage: {library}\n\nWritten by `python -m benchmarks.sweep_vision {library} --docs`; do not edit by "
            "hand. Method: the module docstring of `benchmarks/sweep_vision.py`. Rows that are not exact are "
            "listed with their reason, so that nothing is hidden.\n\nVersions: "
            + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".\n\n")
    path.write_text(head + text.replace("# fxflops vs", "## fxflops vs", 1) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())

"""Library sweeps in the test suite: a sample by default, every model with ``FXFLOPS_SWEEP=1``.

The models are chosen automatically, never by hand: for torchvision, every builder
``torchvision.models.list_models()`` lists (the sample: the smallest builder of each kind besides
classification, which ``tests/test_zoo_models.py`` covers); for timm, the smallest model of every
family, as ``benchmarks/sweep_vision.py`` lists them in ``benchmarks/timm_families.json`` (the
sample: 8 families spread over the alphabet). Each count must equal FlopCounterMode on the same
model and inputs (on meta; detectors on the CPU with one real image) with nothing uncounted.
For diffusers, every ``ModelMixin`` class it exports (the sample: 6 spread over the alphabet
that build with default inputs). For transformers, every model type of its config mapping from
the sweep's small config (the sample: 8 spread over the alphabet that FlopCounterMode counts on
meta). ``docs/coverage-torchvision.md``, ``docs/coverage-timm.md``, ``docs/coverage-diffusers.md``
and ``docs/coverage.md`` list what the whole sweeps found.
The whole sweeps take about 10 minutes on 2 cores, beyond what ``.ci/run`` can add, so they run
when ``FXFLOPS_SWEEP=1`` is set.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import fxflops

torchvision = pytest.importorskip("torchvision")

FAMILIES = Path(__file__).resolve().parent.parent / "benchmarks" / "timm_families.json"
WHOLE = os.environ.get("FXFLOPS_SWEEP") == "1"
KINDS = ("detection", "segmentation", "video", "optical_flow", "quantization")


def _kind(name: str) -> str:
    for kind in KINDS:
        if name in torchvision.models.list_models(module=getattr(torchvision.models, kind)):
            return kind
    return "classification"


@functools.lru_cache(maxsize=1)
def _torchvision_sample() -> list[str]:
    """The builder with the fewest parameters of each kind but classification."""
    chosen = []
    for kind in KINDS:
        sizes = []
        for name in torchvision.models.list_models(module=getattr(torchvision.models, kind)):
            model = _build_torchvision(name, "meta")
            sizes.append((sum(p.numel() for p in model.parameters()), name))
        chosen.append(min(sizes)[1])
    return chosen


def _build_torchvision(name: str, device: str) -> torch.nn.Module:
    # weights_backbone=None: detectors and segmenters would download an ImageNet backbone
    extra = {"weights_backbone": None} if _kind(name) in ("detection", "segmentation") else {}
    torch.manual_seed(0)
    try:
        with torch.device(device):
            return torchvision.models.get_model(name, weights=None, **extra).eval()
    except NotImplementedError:  # a constructor that computes with tensors (regnet): build on the CPU
        return torchvision.models.get_model(name, weights=None, **extra).eval()


def _torchvision_inputs(name: str) -> tuple[Any, ...]:
    kind = _kind(name)
    if kind == "detection":
        return ([torch.rand(3, 320, 320, generator=torch.Generator().manual_seed(0))],)
    if kind == "video":
        side = 112 if name in ("r3d_18", "mc3_18", "r2plus1d_18") else 224
        return (torch.empty(1, 3, 16, side, side, device="meta"),)
    if kind == "optical_flow":
        return (torch.empty(1, 3, 224, 224, device="meta"), torch.empty(1, 3, 224, 224, device="meta"))
    side = 299 if "inception_v3" in name else 224
    return (torch.empty(1, 3, side, side, device="meta"),)


def _reference(model: torch.nn.Module, inputs: tuple[Any, ...], device: str) -> int:
    with torch.device(device), torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), \
            FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops()


def _check(model: torch.nn.Module, inputs: tuple[Any, ...], device: str) -> None:
    report = fxflops.count(model, inputs)
    assert report.uncounted == []
    assert report.total == _reference(model, inputs, device)


def _timm_names() -> list[str]:
    if not FAMILIES.exists():
        return []
    names = [family["model"] for family in json.loads(FAMILIES.read_text())]
    if WHOLE:
        return names
    return [names[round(i * (len(names) - 1) / 7)] for i in range(8)]


def _torchvision_names() -> list[str]:
    return sorted(torchvision.models.list_models()) if WHOLE else _torchvision_sample()


@pytest.mark.parametrize("name", _torchvision_names())
def test_torchvision_builder_equals_flop_counter_mode(name: str) -> None:
    detection = _kind(name) == "detection"
    model = _build_torchvision(name, "cpu" if detection else "meta")
    # FlopCounterMode runs where the model is: meta, or the CPU for detectors (they read their image)
    _check(model, _torchvision_inputs(name), "cpu" if detection else "meta")


@pytest.mark.parametrize("name", _timm_names())
def test_timm_family_equals_flop_counter_mode(name: str) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    try:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False).eval()
    except NotImplementedError:
        model = timm.create_model(name, pretrained=False).eval()
    size = model.pretrained_cfg.get("input_size", (3, 224, 224))
    _check(model, (torch.empty(1, *size, device="meta"),), "meta")


def _diffusers_reference(name: str) -> int | None:
    """FlopCounterMode's count of a diffusers class with its default inputs on meta, or ``None``
    when it does not build or FlopCounterMode cannot run it (an input the defaults get wrong)."""
    from fxflops.zoo_diffusers import build, inputs_for

    try:
        model = build(name, "meta")
        inputs = inputs_for(name, model)
        with torch.device("meta"), torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), \
                FlopCounterMode(display=False) as counter:
            model(**inputs)
    except Exception:
        return None
    return counter.get_total_flops()


def _diffusers_sample() -> list[str]:
    """6 diffusers classes spread over the alphabet of every ModelMixin class diffusers exports:
    at each of 6 evenly spaced places, the first class from there on that FlopCounterMode can count
    with its default config and inputs (:mod:`fxflops.zoo_diffusers`); all with ``FXFLOPS_SWEEP=1``."""
    if importlib.util.find_spec("diffusers") is None:
        return []
    from fxflops.zoo_diffusers import list_classes

    names = list_classes()
    if WHOLE:
        return names
    chosen: list[str] = []
    for i in range(6):
        for name in names[round(i * (len(names) - 1) / 6):]:
            if name not in chosen and _diffusers_reference(name) is not None:
                chosen.append(name)
                break
    return chosen


@pytest.mark.parametrize("name", _diffusers_sample())
def test_diffusers_class_equals_flop_counter_mode(name: str) -> None:
    from fxflops.zoo_diffusers import build, inputs_for

    model = build(name, "meta")
    report = fxflops.count(model, (), kwargs=inputs_for(name, model))
    assert report.uncounted == []
    # FlopCounterMode on the same class and inputs, on meta (math SDPA, autograd on)
    assert report.total == _diffusers_reference(name)


@functools.lru_cache(maxsize=1)
def _transformers_sweep() -> Any:
    """``benchmarks/sweep_transformers.py`` (small configs, the reference), loaded from its file:
    the repository root is not on ``sys.path`` under ``pytest`` (it would expose ``rules``)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "sweep_transformers.py"
    spec = importlib.util.spec_from_file_location("_sweep_transformers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=1)
def _transformers_sample() -> list[str]:
    """8 transformers model types spread over the alphabet of transformers' config mapping: at each
    of 8 evenly spaced places, the first type from there on that the sweep builds from a small config
    and FlopCounterMode counts on meta with the default inputs; all with ``FXFLOPS_SWEEP=1``."""
    if importlib.util.find_spec("transformers") is None:
        return []
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    names = sorted(CONFIG_MAPPING_NAMES)
    sweep = _transformers_sweep()
    chosen: list[str] = []
    for i in range(len(names) if WHOLE else 8):
        start = i if WHOLE else round(i * (len(names) - 1) / 8)
        for name in names[start:] if not WHOLE else [names[i]]:
            if name not in chosen and _transformers_reference(sweep, name) is not None:
                chosen.append(name)
                break
    return chosen


def _transformers_reference(sweep: Any, name: str) -> int | None:
    try:
        config = sweep.small_config(name)
        _, model = sweep.build_model(config)
        return int(sweep.reference_total(model, sweep.default_inputs(model, config)))
    except Exception:
        return None


@pytest.mark.parametrize("name", _transformers_sample())
def test_transformers_model_type_equals_flop_counter_mode(name: str) -> None:
    sweep = _transformers_sweep()
    config = sweep.small_config(name)
    _, model = sweep.build_model(config)
    inputs = sweep.default_inputs(model, config)
    report = fxflops.count(model, (), kwargs=inputs)
    assert report.uncounted == []
    # FlopCounterMode on the same model and inputs, on meta (math SDPA, autograd on)
    assert report.total == sweep.reference_total(model, inputs)


def test_the_sample_is_chosen_automatically() -> None:
    # one builder per kind; the smallest of each (by parameters on meta)
    assert [_kind(n) for n in _torchvision_sample()] == list(KINDS)
    # ssdlite320 (3.4 M parameters) is torchvision's smallest detector
    assert _torchvision_sample()[0] == "ssdlite320_mobilenet_v3_large"
    if FAMILIES.exists():
        assert len(_timm_names()) == (len(json.loads(FAMILIES.read_text())) if WHOLE else 8)
    if importlib.util.find_spec("transformers") is not None and not WHOLE:
        # 8 places over the config mapping, one type from each
        assert len(_transformers_sample()) == 8

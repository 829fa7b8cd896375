"""The accuracy workloads: each one built twice, on the meta device for fxflops and with real
random weights on CPU for the peers (which all execute the model).

All workloads run at batch 1 so that per-sample and per-batch tools (ptflops averages over the
batch dimension) report the same thing. Nothing is downloaded: models come from configs.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from benchmarks import reference

OPEN_CLIP_NAME = "ViT-B-16"


@dataclass(frozen=True)
class MetaCall:
    """What fxflops counts: the model as a user holds it, on the meta device."""

    model: nn.Module
    inputs: tuple[torch.Tensor, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    method: str = "forward"


@dataclass(frozen=True)
class RealCall:
    """What a peer runs: a CPU module with random weights called as ``model(*inputs)``."""

    model: nn.Module
    inputs: tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Case:
    """One row of the accuracy table."""

    key: str
    label: str
    short: str  # column header in the accuracy table
    #: The exact count by hand arithmetic, or None where the reference is FlopCounterMode's.
    hand: int | None
    #: How the reference is established, in words, for RESULTS.md.
    how: str
    meta: Callable[[], MetaCall]
    real: Callable[[], RealCall]
    quick: bool = False  # part of the --quick subset


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the chatter of model builders (OpenCLIP's "no pretrained weights" and the like)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


class PositionalOutput(nn.Module):
    """Adapts a model for the peers: positional tensor inputs in, plain tensors out.

    fvcore's JIT tracer cannot return a Hugging Face ``ModelOutput``; hook-based peers see the
    wrapped modules unchanged, since the wrapper itself has no parameters and does no math.
    """

    def __init__(self, model: nn.Module, call: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self._call = call

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self._call(self.model, *inputs)


# -- OpenCLIP ViT-B-16 ---------------------------------------------------------------------------


def open_clip_real(name: str = OPEN_CLIP_NAME) -> nn.Module:
    """A real-weight (random) copy of an OpenCLIP model, built as OpenCLIP's profiler does."""
    return _open_clip_real_cached(name)


@functools.lru_cache(maxsize=1)
def _open_clip_real_cached(name: str) -> nn.Module:
    import open_clip

    torch.manual_seed(0)
    with quiet():
        model = open_clip.create_model(name, force_custom_text=True, pretrained_hf=False)
    return model.eval()


def open_clip_real_inputs(model: nn.Module, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and token ids of the shapes OpenCLIP's profiler uses."""
    size = model.visual.image_size
    height, width = tuple(size[-2:]) if isinstance(size, (tuple, list)) else (size, size)
    context = getattr(model, "context_length", None) or 77
    vocab = getattr(model, "vocab_size", None) or 49408
    generator = torch.Generator().manual_seed(batch)
    image = torch.randn((batch, 3, height, width), generator=generator)
    text = torch.randint(0, vocab, (batch, context), generator=generator)
    return image, text


@functools.lru_cache(maxsize=1)
def open_clip_meta(name: str = OPEN_CLIP_NAME) -> nn.Module:
    """The meta-device model fxflops counts (built once per process)."""
    from fxflops.zoo import build_open_clip

    with quiet():
        return build_open_clip(name)


def _open_clip_case(part: str, label: str, short: str) -> Case:
    def meta() -> MetaCall:
        from fxflops.zoo import open_clip_inputs

        model = open_clip_meta()
        inputs = open_clip_inputs(model, 1)
        if part == "image":
            return MetaCall(model.visual, (inputs.image,))
        if part == "text":
            return MetaCall(model.text, (inputs.text,))
        return MetaCall(model, (inputs.image, inputs.text))

    def real() -> RealCall:
        model = open_clip_real()
        image, text = open_clip_real_inputs(model, 1)
        if part == "image":
            return RealCall(model.visual, (image,))
        if part == "text":
            return RealCall(model.text, (text,))
        return RealCall(model, (image, text))

    return Case(
        key=f"open_clip_{part}",
        label=label,
        short=short,
        hand=reference.open_clip_vit_b_16()[part],
        how="hand arithmetic (shared/reference/openclip.md §3); OpenCLIP's published table",
        meta=meta,
        real=real,
        quick=part == "whole",
    )


# -- torchvision -----------------------------------------------------------------------------------


def _torchvision_case(key: str, label: str, short: str, hand: int | None, how: str) -> Case:
    def build() -> nn.Module:
        import torchvision

        return getattr(torchvision.models, key)().eval()

    def meta() -> MetaCall:
        with torch.device("meta"):
            model = build()
        return MetaCall(model, (torch.empty(1, 3, 224, 224, device="meta"),))

    def real() -> RealCall:
        torch.manual_seed(0)
        return RealCall(build(), (torch.randn(1, 3, 224, 224),))

    return Case(key=key, label=label, short=short, hand=hand, how=how, meta=meta, real=real)


# -- torch.nn layers -------------------------------------------------------------------------------

ENCODER = {"width": 512, "heads": 8, "mlp": 2048, "layers": 6, "tokens": 128}
LSTM = {"input": 256, "hidden": 512, "layers": 2, "steps": 64}


def _encoder() -> nn.Module:
    layer = nn.TransformerEncoderLayer(ENCODER["width"], ENCODER["heads"], ENCODER["mlp"], batch_first=True)
    # enable_nested_tensor only matters with a padding mask; off to keep the build quiet.
    return nn.TransformerEncoder(layer, ENCODER["layers"], enable_nested_tensor=False).eval()


def _lstm() -> nn.Module:
    return nn.LSTM(LSTM["input"], LSTM["hidden"], num_layers=LSTM["layers"], batch_first=True).eval()


def _module_case(
    key: str,
    label: str,
    short: str,
    build: Callable[[], nn.Module],
    shape: tuple[int, ...],
    hand: int,
    how: str,
    quick: bool,
) -> Case:
    def meta() -> MetaCall:
        with torch.device("meta"):
            model = build()
        return MetaCall(model, (torch.empty(shape, device="meta"),))

    def real() -> RealCall:
        torch.manual_seed(0)
        return RealCall(build(), (torch.randn(shape),))

    return Case(key=key, label=label, short=short, hand=hand, how=how, meta=meta, real=real, quick=quick)


# -- Hugging Face GPT-2 ----------------------------------------------------------------------------

GPT2_TOKENS = 128


def _gpt2() -> nn.Module:
    import transformers

    with quiet():
        config = transformers.AutoConfig.for_model("gpt2")
        return transformers.AutoModelForCausalLM.from_config(config).eval()


def _gpt2_logits(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=input_ids).logits


def _gpt2_case() -> Case:
    def meta() -> MetaCall:
        with torch.device("meta"):
            model = _gpt2()
        ids = torch.empty(1, GPT2_TOKENS, dtype=torch.long, device="meta")
        return MetaCall(model, (ids,))

    def real() -> RealCall:
        torch.manual_seed(0)
        ids = torch.randint(0, 50257, (1, GPT2_TOKENS))
        return RealCall(PositionalOutput(_gpt2(), _gpt2_logits), (ids,))

    return Case(
        key="gpt2",
        label=f"HF GPT-2 from config, {GPT2_TOKENS} tokens",
        short="GPT-2",
        hand=reference.gpt2(GPT2_TOKENS),
        how="hand arithmetic (12 blocks + 50257-way LM head on every token, causal counted dense)",
        meta=meta,
        real=real,
    )


def cases() -> list[Case]:
    """Every accuracy workload, in table order."""
    e, s = ENCODER, LSTM
    return [
        _open_clip_case("image", "OpenCLIP ViT-B-16 image tower", "ViT-B-16 image"),
        _open_clip_case("text", "OpenCLIP ViT-B-16 text tower", "ViT-B-16 text"),
        _open_clip_case("whole", "OpenCLIP ViT-B-16 whole model", "ViT-B-16 whole"),
        _torchvision_case(
            "resnet50",
            "torchvision resnet50",
            "resnet50",
            None,
            "FlopCounterMode (conv and linear only: it has a formula for every op)",
        ),
        _torchvision_case(
            "vit_b_16",
            "torchvision vit_b_16",
            "tv vit_b_16",
            reference.torchvision_vit_b_16(),
            "hand arithmetic (OpenCLIP's image encoder + a 768x1000 head on CLS)",
        ),
        _module_case(
            "transformer_encoder",
            f"nn.TransformerEncoder ({e['layers']}x{e['width']}, {e['tokens']} tokens, eval)",
            "TransformerEncoder",
            _encoder,
            (1, e["tokens"], e["width"]),
            reference.transformer_encoder(e["tokens"], e["width"], e["mlp"], e["layers"]),
            "hand arithmetic (QKV, out-proj, MLP, QK^T and AV per layer)",
            quick=True,
        ),
        _module_case(
            "lstm",
            f"nn.LSTM ({s['layers']} layers, {s['input']}->{s['hidden']}, {s['steps']} steps)",
            "LSTM",
            _lstm,
            (1, s["steps"], s["input"]),
            reference.lstm(s["steps"], 1, s["input"], s["hidden"], s["layers"]),
            "hand arithmetic (4 gates x (input + hidden) per step and layer)",
            quick=True,
        ),
        _gpt2_case(),
    ]

"""The model zoo of the crosscheck tests: how each model is built and fed, on the meta device.

Shared by ``tests/test_zoo_models.py`` and by ``tests/make_zoo_reference.py``, which records
FlopCounterMode's count of every model in ``tests/data/zoo_reference.json``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ZooModel:
    """A model of the zoo: ``build()`` returns ``(model, inputs, kwargs)`` on the meta device."""

    family: str
    name: str
    build: Callable[[], tuple[nn.Module, tuple[Any, ...], dict[str, Any]]] = field(compare=False)
    #: Part of the fast default run (a representative subset); the rest is marked slow.
    fast: bool = False

    @property
    def key(self) -> str:
        return f"{self.family}:{self.name}"


def _meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


@contextlib.contextmanager
def _quiet() -> Any:
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _on_meta_or_cpu(factory: Callable[[], nn.Module]) -> nn.Module:
    """Build on the meta device; models whose constructors compute with tensors (torchvision's
    RegNets call ``.tolist()`` while sizing their stages) are built on the CPU instead."""
    try:
        with torch.device("meta"):
            return factory()
    except NotImplementedError:
        return factory()


def torchvision_models() -> list[ZooModel]:
    import torchvision

    fast = {"resnet18", "vit_b_16", "convnext_tiny", "mobilenet_v3_small", "swin_t", "regnet_x_400mf",
            "efficientnet_b0", "maxvit_t", "inception_v3"}

    def build(name: str) -> Callable[[], tuple[nn.Module, tuple[Any, ...], dict[str, Any]]]:
        def make() -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
            model = _on_meta_or_cpu(lambda: torchvision.models.get_model(name, weights=None)).eval()
            size = 299 if name == "inception_v3" else 224
            return model, (_meta(1, 3, size, size),), {}
        return make

    names = torchvision.models.list_models(module=torchvision.models)
    return [ZooModel("torchvision", n, build(n), fast=n in fast) for n in names]


TIMM_MODELS = (
    "vit_tiny_patch16_224", "vit_base_patch16_224", "deit_tiny_patch16_224", "deit3_small_patch16_224",
    "beit_base_patch16_224", "beitv2_base_patch16_224", "swin_tiny_patch4_window7_224",
    "swinv2_tiny_window8_256", "convnext_atto", "convnextv2_atto", "efficientnet_b0",
    "tf_efficientnetv2_b0", "regnetx_002", "regnety_002", "mixer_b16_224", "efficientformer_l1",
    "efficientformerv2_s0", "maxvit_tiny_tf_224", "coatnet_0_rw_224", "levit_128s", "levit_conv_128s",
    "resnet18", "mobilenetv3_small_100", "caformer_s18", "poolformer_s12", "eva02_tiny_patch14_224",
    "cait_xxs24_224", "xcit_nano_12_p16_224", "pvt_v2_b0", "mobilevit_xs", "fastvit_t8", "hgnetv2_b0",
    # one of each mechanism met in a wider sweep (all agreed): an LSTM over patches, attention
    # counted through torch.export per block (twins, convit, nest) or for the whole model
    # (crossvit, samvit), pooling attention, multi-scale and split-attention convolutions
    "sequencer2d_s", "twins_svt_small", "convit_tiny", "nest_tiny", "crossvit_tiny_240", "samvit_base_patch16",
    "hiera_tiny_224", "mvitv2_tiny", "densenet121", "inception_next_tiny", "res2net50_14w_8s", "volo_d1_224",
    "halonet26t", "lambda_resnet26t", "efficientvit_b0", "mambaout_femto", "tnt_s_patch16_224",
    "hrnet_w18_small",
)


def timm_models() -> list[ZooModel]:
    fast = {"vit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "convnextv2_atto", "efficientnet_b0",
            "mixer_b16_224", "levit_128s", "maxvit_tiny_tf_224", "coatnet_0_rw_224", "efficientformer_l1",
            "regnetx_002", "deit_tiny_patch16_224", "beit_base_patch16_224"}

    def build(name: str) -> Callable[[], tuple[nn.Module, tuple[Any, ...], dict[str, Any]]]:
        def make() -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
            import timm

            model = _on_meta_or_cpu(lambda: timm.create_model(name, pretrained=False)).eval()
            size = model.pretrained_cfg.get("input_size", (3, 224, 224))
            return model, (_meta(1, *size),), {}
        return make

    return [ZooModel("timm", n, build(n), fast=n in fast) for n in TIMM_MODELS]


def _hf(model_class: str, config: Any) -> nn.Module:
    import transformers

    with _quiet(), torch.device("meta"):
        return getattr(transformers, model_class).from_config(config).eval()


def hf_models() -> list[ZooModel]:
    def bert() -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
        from transformers import AutoConfig

        return _hf("AutoModel", AutoConfig.for_model("bert")), (_meta(1, 128, dtype=torch.long),), {}

    def gpt2() -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
        from transformers import AutoConfig

        model = _hf("AutoModelForCausalLM", AutoConfig.for_model("gpt2"))
        return model, (_meta(1, 128, dtype=torch.long),), {}

    def llama_gqa() -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
        from transformers import LlamaConfig

        config = LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=8,
                             num_key_value_heads=2, vocab_size=1000)
        return _hf("AutoModelForCausalLM", config), (_meta(1, 64, dtype=torch.long),), {}

    def t5() -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
        from transformers import AutoConfig

        model = _hf("AutoModelForSeq2SeqLM", AutoConfig.for_model("t5", num_layers=2, num_decoder_layers=2))
        kwargs = {"decoder_input_ids": _meta(1, 16, dtype=torch.long)}
        return model, (_meta(1, 32, dtype=torch.long),), kwargs

    def vit() -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
        from transformers import AutoConfig

        return _hf("AutoModel", AutoConfig.for_model("vit")), (_meta(1, 3, 224, 224),), {}

    def clip() -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
        from transformers import AutoConfig

        model = _hf("AutoModel", AutoConfig.for_model("clip"))
        return model, (_meta(1, 77, dtype=torch.long), _meta(1, 3, 224, 224)), {}

    builders = {"bert": bert, "gpt2": gpt2, "llama-gqa": llama_gqa, "t5": t5, "vit": vit, "clip": clip}
    return [ZooModel("hf", name, make, fast=name in ("gpt2", "llama-gqa")) for name, make in builders.items()]


def open_clip_models() -> list[ZooModel]:
    from fxflops.zoo import build_open_clip, open_clip_inputs

    def whole(name: str) -> Callable[[], tuple[nn.Module, tuple[Any, ...], dict[str, Any]]]:
        def make() -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
            model = build_open_clip(name)
            inputs = open_clip_inputs(model)
            return model, (inputs.image, inputs.text), {}
        return make

    def text(name: str) -> Callable[[], tuple[nn.Module, tuple[Any, ...], dict[str, Any]]]:
        def make() -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
            model = build_open_clip(name)
            return model.text, (open_clip_inputs(model).text,), {}
        return make

    return [
        ZooModel("open_clip", "coca_ViT-B-32", whole("coca_ViT-B-32")),
        ZooModel("open_clip", "coca_ViT-B-32.text", text("coca_ViT-B-32"), fast=True),
        ZooModel("open_clip", "RN50", whole("RN50"), fast=True),
    ]


def all_models() -> list[ZooModel]:
    """Every model of the zoo, in a stable order."""
    return [*torchvision_models(), *timm_models(), *hf_models(), *open_clip_models()]

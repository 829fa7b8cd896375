"""What the CLI counts: a model SPEC and its ``--input SHAPE[:DTYPE]`` options, parsed and built.

SPEC forms::

    open_clip:ViT-B-16          OpenCLIP, meta device, as OpenCLIP's profiler builds it
    torchvision:resnet18        torchvision, meta device, weights=None
    timm:convnext_tiny          timm, meta device, pretrained=False
    package.module:callable     an importable callable (the current directory is searched too)
    path/to/file.py:callable    a callable defined in a Python file

Zoo models are built on the meta device (no weight memory, no download) with default inputs from
their own configuration; a callable returns a model or a ``(model, inputs)`` pair and is called
as is, on whatever device it chooses. ``--input`` options replace the default inputs.

Every problem is raised as :class:`SpecError`, whose message is one line and whose ``hint`` says
what to do; the CLI prints both.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import importlib.util
import inspect
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fxflops.errors import FxFlopsError

#: Sources of zoo SPECs, with the aliases people type.
ZOO_SOURCES = {
    "open_clip": "open_clip",
    "openclip": "open_clip",
    "open-clip": "open_clip",
    "torchvision": "torchvision",
    "timm": "timm",
    "hf": "hf",
    "huggingface": "hf",
    "transformers": "hf",
    "diffusers": "diffusers",
}

SPEC_FORMS = ("open_clip:NAME, torchvision:NAME, timm:NAME, hf:MODEL_TYPE, diffusers:CLASS, package.module:callable "
              "or path/to/file.py:callable")

#: ``--input`` dtype names -> ``torch`` dtype attribute names.
DTYPES: dict[str, str] = {
    "float": "float32", "float32": "float32", "fp32": "float32", "f32": "float32",
    "half": "float16", "float16": "float16", "fp16": "float16", "f16": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "double": "float64", "float64": "float64", "fp64": "float64", "f64": "float64",
    "long": "int64", "int64": "int64", "i64": "int64",
    "int": "int32", "int32": "int32", "i32": "int32",
    "short": "int16", "int16": "int16", "i16": "int16",
    "int8": "int8", "i8": "int8", "uint8": "uint8", "byte": "uint8", "u8": "uint8",
    "bool": "bool",
    "complex64": "complex64", "cfloat": "complex64", "complex128": "complex128", "cdouble": "complex128",
}

#: Fallback image input for vision models without a configured size.
DEFAULT_IMAGE_SHAPE = (1, 3, 224, 224)
#: torchvision's video classifiers are benchmarked on 16-frame clips.
VIDEO_FRAMES = 16

# [NAME=]SHAPE[:DTYPE]: "1x3x224x224", "1x77:long", "text=1x77:int64".
# A dimension may be a symbol: a name that starts with a capital letter and has no "x" ("1xL:long",
# "BxSEQ"); the count becomes a formula in it.
_DIM = r"(?:[0-9]+|[A-Z][A-Za-wyz0-9_]*)"
_INPUT_RE = re.compile(rf"^(?:(?P<name>[A-Za-z_]\w*)=)?(?P<shape>{_DIM}(?:x{_DIM})*)(?::(?P<dtype>\w+))?$")
#: The example size a symbolic dimension is traced at (any size works; fxflops.symbolic adjusts it).
SYMBOL_EXAMPLE_SIZE = 16
_INPUT_EXAMPLE = "--input 1x3x224x224, --input 1x77:long or --input text=1x77:long"


class SpecError(FxFlopsError):
    """A SPEC or ``--input`` is malformed, or the model it names cannot be built.

    ``str(error)`` is one line saying what went wrong; ``hint`` is one line saying what to do.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


# -- parsing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A parsed SPEC: ``source`` is a zoo (``open_clip``, ``torchvision``, ``timm``), ``module`` or
    ``file``; ``location`` the zoo's model name, the module or the file; ``attribute`` the callable."""

    text: str
    source: str
    location: str
    attribute: str = ""


def parse_spec(text: str) -> Spec:
    """Parse a SPEC; raise :class:`SpecError` naming the forms it accepts.

    >>> parse_spec("open_clip:ViT-B-16")
    Spec(text='open_clip:ViT-B-16', source='open_clip', location='ViT-B-16', attribute='')
    >>> parse_spec("models/tiny.py:build").source
    'file'
    """
    text = text.strip()
    if ":" not in text:
        if text.endswith(".py"):
            raise SpecError(f"SPEC {text!r} names a file but no callable in it",
                            f"write {text}:NAME, where NAME() returns a model or a (model, inputs) pair")
        raise SpecError(f"SPEC {text!r} does not say where the model comes from",
                        _bare_name_hint(text))
    # rpartition for files: a Windows path has a drive colon ("C:\models\tiny.py:build").
    path, _, attribute = text.rpartition(":")
    if path.endswith(".py"):
        if not _is_dotted_identifier(attribute):
            raise SpecError(f"SPEC {text!r}: {attribute!r} is not a Python name",
                            f"write {path}:NAME, where NAME() returns a model or a (model, inputs) pair")
        return Spec(text, "file", path, attribute)
    prefix, _, name = text.partition(":")
    source = ZOO_SOURCES.get(prefix.lower())
    if source is not None:
        if not name:
            raise SpecError(f"SPEC {text!r} names no model", f"write {source}:NAME, e.g. {_EXAMPLES[source]}")
        return Spec(text, source, name)
    if _is_dotted_identifier(prefix) and _is_dotted_identifier(name):
        return Spec(text, "module", prefix, name)
    raise SpecError(f"SPEC {text!r} is not one of the forms fxflops knows", f"write {SPEC_FORMS}")


_EXAMPLES = {"open_clip": "open_clip:ViT-B-16", "torchvision": "torchvision:resnet18", "hf": "hf:gpt2",
             "timm": "timm:convnext_tiny", "diffusers": "diffusers:UNet2DConditionModel"}


def _is_dotted_identifier(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _bare_name_hint(name: str) -> str:
    # A bare zoo name is the most common slip. The zoos are searched in their installed files, not
    # imported (importing open_clip, torchvision and timm takes seconds; a typo must fail at once).
    for source, known in (("open_clip", _open_clip_has), ("torchvision", _defines_model("torchvision", "models")),
                          ("timm", _defines_model("timm", "models"))):
        with contextlib.suppress(Exception):
            if known(name):
                return f"did you mean {source}:{name}? SPEC is {SPEC_FORMS}"
    return f"write {SPEC_FORMS}"


def _package_dir(package: str) -> Path | None:
    found = importlib.util.find_spec(package)
    locations = list(found.submodule_search_locations or []) if found is not None else []
    return Path(locations[0]) if locations else None


def _open_clip_has(name: str) -> bool:
    """Whether open_clip ships a model config named ``name`` (``model_configs/NAME.json``)."""
    root = _package_dir("open_clip")
    return root is not None and (root / "model_configs" / f"{name}.json").is_file()


def _defines_model(package: str, folder: str) -> Callable[[str], bool]:
    """A test of whether ``package/folder/**.py`` defines a function ``name`` (torchvision's and
    timm's model builders are module-level functions), read as text."""

    def known(name: str) -> bool:
        root = _package_dir(package)
        if root is None or not name.isidentifier():
            return False
        needle = f"def {name}("
        return any(needle in path.read_text(errors="ignore") for path in (root / folder).rglob("*.py"))

    return known


@dataclass(frozen=True)
class InputSpec:
    """One ``--input``: a shape, a dtype name (a ``torch`` attribute) and, for keyword inputs, a name."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    name: str | None = None
    #: Symbolic dimensions: dim index -> symbol name (``1xL`` gives ``{1: "L"}``).
    symbols: dict[int, str] = field(default_factory=dict)

    def tensor(self) -> Any:
        """An empty meta tensor of this shape and dtype: only shapes and dtypes are ever read."""
        import torch

        return torch.empty(self.shape, dtype=getattr(torch, self.dtype), device="meta")


def parse_input(text: str) -> InputSpec:
    """Parse ``[NAME=]SHAPE[:DTYPE]``, e.g. ``1x3x224x224``, ``1x77:long``, ``text=1x77:int64``.

    >>> parse_input("1x77:long")
    InputSpec(shape=(1, 77), dtype='int64', name=None)
    """
    match = _INPUT_RE.match(text.strip())
    if match is None and _INPUT_RE.match(text.strip().replace("X", "x").replace("*", "x").replace(",", "x")):
        fixed = text.strip().replace("X", "x").replace("*", "x").replace(",", "x")
        raise SpecError(f"malformed --input {text!r}: separate sizes with a lowercase x", f"write --input {fixed}")
    if match is None:
        raise SpecError(f"malformed --input {text!r}: expected [NAME=]SHAPE[:DTYPE], SHAPE like 1x3x224x224",
                        f"write e.g. {_INPUT_EXAMPLE}")
    dtype_name = (match["dtype"] or "float32").lower()
    dtype = DTYPES.get(dtype_name)
    if dtype is None:
        raise SpecError(f"malformed --input {text!r}: unknown dtype {match['dtype']!r}",
                        "use float, half, bf16, double, long, int, short, int8, uint8, bool or complex64 "
                        "(torch names such as float32 and int64 work too)")
    dims = match["shape"].split("x")
    symbols = {i: dim for i, dim in enumerate(dims) if not dim.isdigit()}
    shape = tuple(SYMBOL_EXAMPLE_SIZE if i in symbols else int(dim) for i, dim in enumerate(dims))
    return InputSpec(shape=shape, dtype=dtype, name=match["name"], symbols=symbols)


def dynamic_of(inputs: Sequence[InputSpec]) -> dict[int | str, dict[int, str]]:
    """``fxflops.count(dynamic=...)`` for the symbolic dimensions among ``inputs``."""
    dynamic: dict[int | str, dict[int, str]] = {}
    positional = [item for item in inputs if item.name is None]
    for index, item in enumerate(positional):
        if item.symbols:
            dynamic[index] = dict(item.symbols)
    for item in inputs:
        if item.name is not None and item.symbols:
            dynamic[item.name] = dict(item.symbols)
    return dynamic


# -- building ---------------------------------------------------------------------------------


@dataclass
class BuiltModel:
    """A model ready to count: ``fxflops.count(model, args, kwargs=kwargs, method=method)``."""

    spec: Spec
    model: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    method: str = "forward"

    def describe_inputs(self) -> list[dict[str, Any]]:
        """Name, shape and dtype of each input, for reports (``name`` is ``None`` when positional)."""
        items = [(None, value) for value in self.args] + list(self.kwargs.items())
        return [_describe_value(name, value) for name, value in items]


def _describe_value(name: str | None, value: Any) -> dict[str, Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return {"name": name, "shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
        items = [_describe_value(None, v) for v in value]
        return {"name": name, "value": "[" + format_inputs(items) + "]"}
    return {"name": name, "value": repr(value)}


def format_inputs(inputs: Sequence[dict[str, Any]]) -> str:
    """``1x3x224x224 float32, 1x77 int64`` from :meth:`BuiltModel.describe_inputs`."""
    parts = []
    for item in inputs:
        text = (f"{'x'.join(map(str, item['shape'])) or 'scalar'} {item['dtype']}" if "shape" in item
                else item["value"])
        parts.append(f"{item['name']}={text}" if item["name"] else text)
    return ", ".join(parts) or "(none)"


def build(spec: Spec, inputs: Sequence[InputSpec] = (), method: str = "forward",
          config: dict[str, Any] | None = None) -> BuiltModel:
    """Build the model ``spec`` names, with ``inputs`` or, when there are none, its default inputs.

    ``config`` overrides fields of a Hugging Face model's default config (``hf:`` specs only).
    """
    if config and spec.source != "hf":
        raise SpecError(f"--config applies to hf:MODEL_TYPE specs, not to {spec.text}",
                        "drop --config, or count a Hugging Face model, e.g. hf:gpt2 --config n_layer=2")
    builders = {"open_clip": _build_open_clip, "torchvision": _build_torchvision, "timm": _build_timm,
                "diffusers": _build_diffusers, "module": _build_callable, "file": _build_callable}
    if spec.source == "hf":
        model, default_args, default_kwargs = _build_hf(spec, method, config or {})
    else:
        model, default_args, default_kwargs = builders[spec.source](spec, method)
    if not callable(getattr(model, method, None)):
        raise SpecError(f"{type(model).__name__} ({spec.text}) has no method {method!r}",
                        "pass --method NAME of a method the model defines, e.g. --method forward")
    if inputs:
        args = tuple(item.tensor() for item in inputs if item.name is None)
        kwargs = {item.name: item.tensor() for item in inputs if item.name is not None}
        # Keep the builder's non-tensor options under user-given shapes.
        kwargs = {**{k: v for k, v in default_kwargs.items() if not hasattr(v, "shape")}, **kwargs}
    elif default_args is None:
        raise SpecError(f"{spec.text} gives no inputs for {method}()",
                        f"pass one --input per positional input, e.g. {_INPUT_EXAMPLE}")
    else:
        args, kwargs = default_args, default_kwargs
    return BuiltModel(spec=spec, model=model, args=args, kwargs=kwargs, method=method)


Defaults = tuple[Any, "tuple[Any, ...] | None", dict[str, Any]]


@contextlib.contextmanager
def _quiet_build() -> Iterator[None]:
    """Silence constructors' deprecation chatter (torchvision's inception init warning, ...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _missing_package(spec: Spec, package: str) -> SpecError:
    return SpecError(f"{spec.text} needs the {package} package, which is not installed",
                     f"pip install {package}")


def unknown_name_error(spec: Spec, names: Sequence[str], lister: str) -> SpecError:
    """"<source> has no model named X", with the closest names or how to list them as the hint."""
    name = spec.location
    by_lower = {candidate.lower(): candidate for candidate in names}
    close = ([by_lower[name.lower()]] if name.lower() in by_lower
             else difflib.get_close_matches(name, names, n=3, cutoff=0.75))
    if close:
        hint = "did you mean " + " or ".join(f"{spec.source}:{c}" for c in close) + "?"
    else:
        hint = f"list the names with: python -c \"{lister}\""
    return SpecError(f"{spec.source} has no model named {name!r}", hint)


def _build_failed(spec: Spec, error: BaseException, hint: str | None = None) -> SpecError:
    return SpecError(f"could not build {spec.text}: {one_line(error)}",
                     hint or "run with --debug to see the traceback")


def one_line(error: BaseException) -> str:
    """``Type: first line of the message``, for one-line error reports."""
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__


# open_clip --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def open_clip_names() -> tuple[str, ...]:
    """Every model name ``open_clip.list_models()`` knows (cached)."""
    import open_clip

    return tuple(open_clip.list_models())


def _build_open_clip(spec: Spec, method: str) -> Defaults:
    try:
        import open_clip  # noqa: F401
    except ImportError:
        raise _missing_package(spec, "open_clip_torch") from None
    from fxflops.zoo import build_open_clip_offline, open_clip_build_hint, open_clip_inputs

    if spec.location.startswith("hf-hub:"):
        raise SpecError(f"{spec.text} is a Hugging Face Hub model; fxflops builds models offline",
                        "use a built-in config name, e.g. open_clip:ViT-B-16")
    if spec.location not in open_clip_names():
        raise unknown_name_error(spec, open_clip_names(), "import open_clip; print(open_clip.list_models())")
    try:
        model = build_open_clip_offline(spec.location)
    except Exception as e:
        raise _build_failed(spec, e, open_clip_build_hint(e)) from e
    inputs = open_clip_inputs(model)
    # OpenCLIP's profiler inputs, matched to the method counted.
    defaults = {"forward": (inputs.image, inputs.text), "encode_image": (inputs.image,),
                "encode_text": (inputs.text,)}
    return model, defaults.get(method), {}


# torchvision ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _torchvision_names() -> tuple[str, ...]:
    import torchvision

    return tuple(torchvision.models.list_models())


def _build_torchvision(spec: Spec, method: str) -> Defaults:
    try:
        import torch
        import torchvision
    except ImportError:
        raise _missing_package(spec, "torchvision") from None
    name = spec.location
    if name not in _torchvision_names():
        raise unknown_name_error(spec, _torchvision_names(),
                            "import torchvision; print(torchvision.models.list_models())")
    builder = torchvision.models.get_model_builder(name)
    options: dict[str, Any] = {"weights": None}
    # Detection and segmentation builders default to downloading ImageNet backbone weights.
    if "weights_backbone" in inspect.signature(builder).parameters:
        options["weights_backbone"] = None
    from fxflops.metabuild import skip_meta_init

    try:
        try:
            with _quiet_build(), skip_meta_init(), torch.device("meta"):
                model = builder(**options)
        except NotImplementedError:
            # RegNets size their stages with tensor math (.tolist()), which meta tensors cannot
            # answer: build those on the CPU (their weights are then real, and still never read).
            with _quiet_build():
                model = builder(**options)
    except Exception as e:
        raise _build_failed(spec, e) from e
    if name in torchvision.models.list_models(module=torchvision.models.detection):
        return _detector_on_an_image(builder, options, spec)
    shape = _torchvision_input_shape(name)
    if name in torchvision.models.list_models(module=torchvision.models.optical_flow):
        return model.eval(), (torch.empty(shape, device="meta"), torch.empty(shape, device="meta")), {}
    return model.eval(), (torch.empty(shape, device="meta"),), {}


#: The image a detector SPEC is counted on: COCO's typical 480x640, seeded random pixels.
DETECTION_IMAGE = (3, 480, 640)


def _detector_on_an_image(builder: Any, options: dict[str, Any], spec: Spec) -> Defaults:
    """A detector's shapes follow its image (the proposals NMS keeps, the masks it pastes), so it
    is built on the CPU with seeded weights and counted on one seeded random image, with the data
    (``routing="data"``, :mod:`fxflops.routing`); pass your own model and image to the API to count
    yours."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            with _quiet_build():
                model = builder(**options)
        except Exception as e:
            raise _build_failed(spec, e) from e
        image = torch.rand(DETECTION_IMAGE, generator=torch.Generator().manual_seed(0))
    return model.eval(), ([image],), {}


def _torchvision_input_shape(name: str) -> tuple[int, ...]:
    """The input size of the model's default weights' preprocessing (crop, or resize for
    segmentation); 16-frame clips for video models; else 1x3x224x224."""
    import torchvision

    try:
        transforms = torchvision.models.get_model_weights(name).DEFAULT.transforms
    except Exception:  # no weights enum, or no DEFAULT: nothing to read the size from
        return DEFAULT_IMAGE_SHAPE
    keywords = getattr(transforms, "keywords", {}) or {}
    size = keywords.get("crop_size") or keywords.get("resize_size")
    if size is None:
        return DEFAULT_IMAGE_SHAPE
    sizes = [size] if isinstance(size, int) else list(size)
    height, width = (sizes[0], sizes[0]) if len(sizes) == 1 else (sizes[0], sizes[1])
    if getattr(getattr(transforms, "func", None), "__name__", "") == "VideoClassification":
        return (1, 3, VIDEO_FRAMES, height, width)
    return (1, 3, height, width)


# timm -------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _timm_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


def _build_timm(spec: Spec, method: str) -> Defaults:
    try:
        import timm
        import torch
    except ImportError:
        raise _missing_package(spec, "timm") from None
    name = spec.location
    if name.startswith("hf-hub:") or name.startswith("hf_hub:"):
        raise SpecError(f"{spec.text} is a Hugging Face Hub model; fxflops builds models offline",
                        "use a built-in architecture name, e.g. timm:convnext_tiny")
    if not timm.is_model(name.split(".", 1)[0]):  # "vit_base_patch16_224.augreg_in21k": tag after "."
        raise unknown_name_error(spec, _timm_names(), "import timm; print(timm.list_models())")
    from fxflops.metabuild import skip_meta_init
    from fxflops.zoo import hub_offline

    try:
        with _quiet_build(), hub_offline(), skip_meta_init(), torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
        config = timm.data.resolve_data_config({}, model=model)
    except Exception as e:
        raise _build_failed(spec, e) from e
    shape = (1, *config.get("input_size", DEFAULT_IMAGE_SHAPE[1:]))
    return model.eval(), (torch.empty(shape, device="meta"),), {}


def _build_diffusers(spec: Spec, method: str) -> Defaults:
    """``diffusers:CLASS``: a ``ModelMixin`` class built from its default config with its depth cut
    to 2, on meta, with keyword inputs from its forward's parameter names (:mod:`fxflops.zoo_diffusers`)."""
    try:
        import diffusers  # noqa: F401
    except ImportError:
        raise _missing_package(spec, "diffusers") from None
    from fxflops import zoo_diffusers
    from fxflops.zoo import hub_offline

    known = zoo_diffusers.list_classes()
    if spec.location not in known:
        raise unknown_name_error(spec, known, "from fxflops.zoo_diffusers import list_classes; print(list_classes())")
    try:
        with _quiet_build(), hub_offline():
            model = zoo_diffusers.build(spec.location, "meta")
            kwargs = zoo_diffusers.inputs_for(spec.location, model)
    except Exception as e:
        raise _build_failed(spec, e, "pass --input NAME=SHAPE for the inputs it needs, or count another class") from e
    return model, (), kwargs


# Hugging Face ------------------------------------------------------------------------------------


def parse_config(items: Sequence[str]) -> dict[str, Any]:
    """``--config key=value`` overrides: values are read as Python literals (ints, floats, bools,
    strings); ``num_hidden_layers=2``, ``use_cache=False``."""
    import ast

    config: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise SpecError(f"malformed --config {item!r}: expected KEY=VALUE",
                            "write e.g. --config num_hidden_layers=2")
        try:
            config[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            config[key] = value
    return config


def _check_config_keys(spec: Spec, default: Any, overrides: dict[str, Any]) -> None:
    """Refuse ``--config`` keys the model's config does not have: transformers keeps unknown
    keys as inert attributes, so ``n_layerz=2`` would count the 12-layer default."""
    import difflib

    known = set(default.to_dict()) | set(getattr(default, "attribute_map", {}))
    for key in overrides:
        if key not in known and not hasattr(default, key):
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise SpecError(f"--config {key}: {type(default).__name__} has no such field",
                            f"did you mean {close[0]}?" if close else
                            f"fields of {spec.text}: {', '.join(sorted(known)[:12])}, ...")


def _build_hf(spec: Spec, method: str, overrides: dict[str, Any]) -> Defaults:
    """``hf:MODEL_TYPE``: the model built from ``AutoConfig.for_model(MODEL_TYPE, **overrides)`` on
    the meta device, offline, with the model class and default inputs of
    :mod:`fxflops.zoo_transformers` (the library sweep's): a causal LM head where the type has one
    (a seq2seq LM for encoder-decoders), else the base model, a task head or a component class;
    1x128 token ids (fewer when ``max_position_embeddings`` is smaller: CLIP's text tower has 77),
    pixels at the config's image size, one second of 16 kHz audio or Whisper's 30 s of mel frames,
    Qwen2-VL-style patches with their grid. The first input in signature order is positional, so
    ``--input`` replaces it."""
    try:
        import transformers
    except ImportError:
        raise _missing_package(spec, "transformers") from None
    from fxflops.zoo import hub_offline
    from fxflops.zoo_transformers import build_model, default_inputs

    model_type = spec.location
    try:
        config = transformers.AutoConfig.for_model(model_type, **overrides)
    except ValueError:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        raise unknown_name_error(spec, list(CONFIG_MAPPING.keys()),
                                 "from transformers.models.auto.configuration_auto import CONFIG_MAPPING; "
                                 "print(list(CONFIG_MAPPING))") from None
    _check_config_keys(spec, transformers.AutoConfig.for_model(model_type), overrides)
    try:
        with _quiet_build(), hub_offline():
            _, model = build_model(config)
    except LookupError:
        raise SpecError(f"transformers has no model class for {model_type!r}", None) from None
    except Exception as e:
        raise _build_failed(spec, e, "try another model type, or --config to change the default config") from e
    text = getattr(config, "text_config", None) or config
    tokens = min(128, getattr(text, "max_position_embeddings", None) or 128)
    try:
        kwargs = default_inputs(model, config, tokens=tokens, decoder_tokens=tokens)
    except LookupError:
        return model, None, {}
    first = next(iter(kwargs))
    return model, (kwargs.pop(first),), kwargs


# callables --------------------------------------------------------------------------------------


def _build_callable(spec: Spec, method: str) -> Defaults:
    from torch import nn

    module = _load_file(spec) if spec.source == "file" else _import_module(spec)
    try:
        obj = functools.reduce(getattr, spec.attribute.split("."), module)
    except AttributeError:
        defined = sorted(name for name, value in vars(module).items()
                         if callable(value) and not name.startswith("_")
                         and getattr(value, "__module__", None) == module.__name__)
        raise SpecError(f"{spec.location} has no attribute {spec.attribute!r}",
                        f"it defines: {', '.join(defined[:10])}" if defined else
                        "define a function that returns a model or a (model, inputs) pair") from None
    if isinstance(obj, nn.Module):  # a module-level model instance: use it, do not call it
        result = obj
    elif callable(obj):
        try:
            result = obj()
        except Exception as e:
            raise SpecError(f"calling {spec.text} raised {one_line(e)}",
                            "the callable must take no arguments; --debug shows the traceback") from e
    else:
        raise SpecError(f"{spec.text} is a {type(obj).__name__}, not a callable",
                        "point SPEC at a function that returns a model or a (model, inputs) pair")
    if isinstance(result, nn.Module):
        return result, None, {}
    if isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[0], nn.Module):
        model, inputs = result
        args, kwargs = _normalize_inputs(spec, inputs)
        return model, args, kwargs
    raise SpecError(f"{spec.text} returned a {type(result).__name__}, not a model",
                    "return an nn.Module or a (model, inputs) pair, inputs a tensor, a tuple or a dict")


def _normalize_inputs(spec: Spec, inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import torch

    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    if isinstance(inputs, dict):
        return (), dict(inputs)
    raise SpecError(f"{spec.text} returned inputs of type {type(inputs).__name__}",
                    "return inputs as a tensor, a tuple of positional inputs or a dict of keyword inputs")


def _import_module(spec: Spec) -> Any:
    # A console script's sys.path starts with its bin/ directory, not the current one; put the
    # current directory back, as ``python -m`` would, so `fxflops count mymodels:build` works.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(spec.location)
    except ModuleNotFoundError as e:
        if e.name and (spec.location == e.name or spec.location.startswith(e.name + ".")):
            raise SpecError(f"cannot import {spec.location!r}: no module named {e.name!r}",
                            "check the spelling and run from the directory that contains it, or write "
                            "path/to/file.py:callable") from e
        raise SpecError(f"importing {spec.location!r} failed: {one_line(e)}",
                        f"install the missing package ({e.name}) or run with --debug") from e
    except Exception as e:
        raise SpecError(f"importing {spec.location!r} raised {one_line(e)}",
                        "run with --debug to see the traceback") from e


def _load_file(spec: Spec) -> Any:
    path = Path(spec.location).expanduser().resolve()
    if not path.is_file():
        raise SpecError(f"no such file: {spec.location}",
                        "check the path (relative to the current directory)")
    # A unique module name per file: two specs' "model.py" must not collide in sys.modules.
    module_name = f"_fxflops_spec_{abs(hash(str(path))):x}_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise SpecError(f"cannot load {spec.location} as a Python module", "SPEC must name a .py file")
    module = importlib.util.module_from_spec(module_spec)
    # Registered before running, as an import would: dataclasses and pickling look it up.
    sys.modules[module_name] = module
    # The file's own directory goes on the path, so `import helpers` next to it works.
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise SpecError(f"running {spec.location} raised {one_line(e)}",
                        "run with --debug to see the traceback") from e
    return module

"""Model zoos: OpenCLIP's model profile table, regenerated offline on the meta device.

The columns and their definitions follow OpenCLIP's ``open_clip_train/profiler.py``: towers are
counted separately (``model.visual`` on images, ``model.text`` on token ids), ``gflops`` is the
whole model's forward, batch 1, all rounded to 2 decimals; widths and ``embed_dim`` come from the
model config (``CLIPVisionCfg``/``CLIPTextCfg`` defaults where a config leaves them out).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

OPEN_CLIP_COLUMNS = (
    "model", "image_size", "image_width", "text_width", "embed_dim", "mparams", "image_mparams",
    "text_mparams", "gflops", "image_gflops", "text_gflops",
)


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """Silence OpenCLIP's "No pretrained weights loaded" warning while building."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def build_open_clip(name: str) -> nn.Module:
    """An OpenCLIP model on the meta device, as OpenCLIP's profiler builds it, in eval mode.

    ``force_custom_text=True`` (separate ``visual`` and ``text`` towers), ``pretrained_hf=False``,
    no pretrained weights: nothing is downloaded and no memory is allocated for weights.

    The text tower's causal mask buffer is the one tensor given real data (77 x 77 floats), so
    that ``count(..., causal="exact")`` can recognise it (:mod:`fxflops.masks`).
    """
    import open_clip

    if name not in open_clip.list_models():
        raise ValueError(f"OpenCLIP has no model named {name!r}; see open_clip.list_models()")
    with _quiet_open_clip(), torch.device("meta"):
        model = open_clip.create_model(name, force_custom_text=True, pretrained_hf=False, device="meta")
    _real_causal_masks(model)
    return model.eval()


def _real_causal_masks(model: nn.Module) -> None:
    """Rebuild OpenCLIP's ``attn_mask`` buffers on the CPU with the module's own
    ``build_causal_mask()`` (a mask is tiny; on meta it would carry no data to recognise)."""
    for module in model.modules():
        mask = module._buffers.get("attn_mask")
        build = getattr(module, "build_causal_mask", None)
        if isinstance(mask, torch.Tensor) and mask.device.type == "meta" and callable(build):
            with torch.device("cpu"):
                module._buffers["attn_mask"] = build().to(mask.dtype)


@dataclass(frozen=True)
class OpenClipInputs:
    """OpenCLIP's profiling inputs: images at the tower's size, token ids at the context length."""

    image: torch.Tensor
    text: torch.Tensor


def open_clip_inputs(model: nn.Module, batch: int = 1) -> OpenClipInputs:
    """Meta-device inputs as OpenCLIP's profiler makes them (fp32 images, int64 text)."""
    size = model.visual.image_size
    height, width = (tuple(size[-2:]) if isinstance(size, (tuple, list)) else (size, size))
    context = getattr(model, "context_length", None) or 77
    dtype = next(model.parameters()).dtype
    image = torch.empty((batch, 3, height, width), dtype=dtype, device="meta")
    text = torch.empty((batch, context), dtype=torch.int64, device="meta")
    return OpenClipInputs(image=image, text=text)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def open_clip_row(name: str, exact: bool = False) -> dict[str, Any]:
    """One row of OpenCLIP's model profile table for model ``name``.

    With ``exact=True`` the FLOP and parameter columns are exact integers instead of rounded
    G/M figures (columns ``flops``, ``image_flops``, ``text_flops``, ``params``, ...).
    """
    from fxflops.api import count

    model = build_open_clip(name)
    inputs = open_clip_inputs(model)
    image = count(model.visual, inputs.image).total
    text = count(model.text, inputs.text).total
    whole = count(model, (inputs.image, inputs.text)).total
    return _row(name, model, inputs, whole=whole, image=image, text=text, exact=exact)


def _row(name: str, model: nn.Module, inputs: OpenClipInputs, *, whole: int, image: int, text: int,
         exact: bool) -> dict[str, Any]:
    """A profile-table row from the three FLOP counts; widths and params from the model config."""
    import open_clip

    cfg = open_clip.get_model_config(name) or {}
    vision_cfg = open_clip.CLIPVisionCfg(**cfg.get("vision_cfg", {}))
    text_cfg = open_clip.CLIPTextCfg(**cfg.get("text_cfg", {}))
    params, image_params, text_params = _params(model), _params(model.visual), _params(model.text)
    row: dict[str, Any] = {
        "model": name,
        "image_size": inputs.image.shape[-2],
        "image_width": int(vision_cfg.width),
        "text_width": int(text_cfg.width),
        "embed_dim": int(cfg.get("embed_dim", 0)),
    }
    if exact:
        row.update(params=params, image_params=image_params, text_params=text_params, flops=whole,
                   image_flops=image, text_flops=text)
    else:
        row.update(
            mparams=round(params / 1e6, 2), image_mparams=round(image_params / 1e6, 2),
            text_mparams=round(text_params / 1e6, 2), gflops=round(whole / 1e9, 2),
            image_gflops=round(image / 1e9, 2), text_gflops=round(text / 1e9, 2),
        )
    return row


# -- the whole table ---------------------------------------------------------------------------

#: Exact-integer variant of :data:`OPEN_CLIP_COLUMNS` (``open_clip_row(name, exact=True)``).
OPEN_CLIP_EXACT_COLUMNS = (
    "model", "image_size", "image_width", "text_width", "embed_dim", "params", "image_params",
    "text_params", "flops", "image_flops", "text_flops",
)


@dataclass(frozen=True)
class ZooFailure:
    """A model of the zoo that produced no row: the stage that failed, why, and what to do."""

    model: str
    stage: str  # "build" or "count"
    reason: str  # one line: "RuntimeError: Please `pip install transformers` ..."
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.model}: cannot {self.stage}: {self.reason}"
        return f"{text} ({self.hint})" if self.hint else text


_HUB_OFFLINE_VARIABLE = "HF_HUB_OFFLINE"


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Hugging Face Hub offline mode while building zoo models, then the previous mode again.

    Models that need the Hub (OpenCLIP's Hugging Face text towers call ``AutoConfig.from_pretrained``)
    then fail at once instead of retrying the network for half a minute each. ``huggingface_hub``
    reads the variable when imported, so its module-level flag is switched too if it is loaded.
    """
    previous = os.environ.get(_HUB_OFFLINE_VARIABLE)
    constants = sys.modules.get("huggingface_hub.constants")
    previous_flag = getattr(constants, "HF_HUB_OFFLINE", None)
    os.environ[_HUB_OFFLINE_VARIABLE] = "1"
    if constants is not None:
        setattr(constants, "HF_HUB_OFFLINE", True)  # noqa: B010  (a module global, untyped)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_HUB_OFFLINE_VARIABLE, None)
        else:
            os.environ[_HUB_OFFLINE_VARIABLE] = previous
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None:
            # Imported inside the block, the flag was read as True: put back what the environment says.
            if previous_flag is None:
                value = previous or os.environ.get("TRANSFORMERS_OFFLINE") or ""
                previous_flag = value.upper() in {"1", "ON", "YES", "TRUE"}
            setattr(constants, "HF_HUB_OFFLINE", previous_flag)  # noqa: B010


def open_clip_build_hint(error: BaseException) -> str | None:
    """Why a known kind of OpenCLIP model cannot be built here, or ``None``."""
    text = str(error)
    if "transformers" in text or "huggingface" in text.lower() or "hf_hub" in text:
        # HFTextEncoder calls AutoConfig.from_pretrained(name) even without weights.
        return ("Hugging Face text tower: needs transformers and the Hugging Face Hub even without weights, "
                "so it cannot be built offline")
    return None


def _count_hint(name: str, error: BaseException) -> str | None:
    from fxflops.errors import TraceError

    if isinstance(error, TraceError):
        return f"`fxflops count open_clip:{name} --debug` shows why"
    return None


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def open_clip_profile_row(name: str, exact: bool = False) -> dict[str, Any]:
    """:func:`open_clip_row` from one count instead of three: the same row, about twice as fast.

    The whole model's forward calls ``self.visual(image)`` and ``self.text(text)`` on the very
    inputs the towers are profiled with, so the tower columns are the whole count's ``visual``
    and ``text`` module totals (inclusive), and the towers need not be traced a second time.
    """
    return _profile_row(name, build_open_clip_offline(name), exact)


def build_open_clip_offline(name: str) -> nn.Module:
    """:func:`build_open_clip` with the Hub offline and weight initialisation skipped on meta.

    The same model (parameters, buffers, shapes, dtypes), built faster and never waiting on the
    network: see :func:`hub_offline` and :class:`fxflops.metabuild.skip_meta_init`.
    """
    from fxflops.metabuild import skip_meta_init

    with hub_offline(), skip_meta_init():
        return build_open_clip(name)


def _profile_row(name: str, model: nn.Module, exact: bool) -> dict[str, Any]:
    """A row from one whole-model count: the towers' figures are its ``visual`` and ``text``
    module totals (equal to counting the towers alone, which :func:`open_clip_row` does)."""
    from fxflops.api import count

    inputs = open_clip_inputs(model)
    report = count(model, (inputs.image, inputs.text))
    return _row(name, model, inputs, whole=report.total, image=report.module("visual"),
                text=report.module("text"), exact=exact)


def _profile_one(name: str, exact: bool) -> dict[str, Any] | ZooFailure:
    """A row, or the reason there is none; never raises (it also runs in worker processes)."""
    try:
        model = build_open_clip_offline(name)
    except Exception as e:
        return ZooFailure(name, "build", _one_line(e), open_clip_build_hint(e))
    try:
        return _profile_row(name, model, exact)
    except Exception as e:
        return ZooFailure(name, "count", _one_line(e), _count_hint(name, e))


def _fork_is_safe() -> bool:
    """True when worker processes can be forked from this one.

    A forked worker starts warm: torch, open_clip and every lazily imported part of torch that the
    first count pulls in are already loaded, where a spawned worker spends seconds loading them
    again. Forking is unsafe when other threads may hold locks (they are copied mid-use) and with
    an initialized CUDA context. The only thread allowed besides the main one is tqdm's monitor,
    started by ``torch.fx.Interpreter``'s disabled progress bar: tqdm is written to survive forks.
    """
    import multiprocessing
    import threading

    if "fork" not in multiprocessing.get_all_start_methods() or torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return False
    return all(thread is threading.main_thread() or type(thread).__name__ == "TMonitor"
               for thread in threading.enumerate())


def _init_worker() -> None:
    import warnings

    # Tracing and meta shape propagation are single-threaded Python; intra-op threads would only
    # compete with the other workers for the cores.
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    import fxflops.rules  # noqa: F401  (import once per worker, not per model)


def open_clip_table(
    names: list[str] | None = None,
    *,
    exact: bool = False,
    jobs: int = 1,
    on_error: Callable[[ZooFailure], None] | None = None,
    on_done: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """OpenCLIP's model profile table: one row per model that builds offline and traces.

    Args:
        names: model names; every name ``open_clip.list_models()`` knows when ``None``.
        exact: exact integer FLOP and parameter columns (:data:`OPEN_CLIP_EXACT_COLUMNS`).
        jobs: worker processes; ``1`` counts in this process.
        on_error: called with a :class:`ZooFailure` for each model that gives no row; when
            ``None``, the first failure raises :class:`~fxflops.errors.FxFlopsError`.
        on_done: called as ``on_done(name, done, total)`` after each model, for progress bars.

    Returns:
        The rows, in the order of ``names``.

    >>> rows = open_clip_table(["RN50", "ViT-B-32"])  # doctest: +SKIP
    >>> [row["gflops"] for row in rows]  # doctest: +SKIP
    [18.18, 14.78]
    """
    from fxflops.errors import FxFlopsError

    if names is None:
        import open_clip

        names = list(open_clip.list_models())
    results: dict[str, dict[str, Any] | ZooFailure] = {}

    def collect(name: str, result: dict[str, Any] | ZooFailure) -> None:
        results[name] = result
        if isinstance(result, ZooFailure):
            if on_error is None:
                raise FxFlopsError(str(result))
            on_error(result)
        if on_done is not None:
            on_done(name, len(results), len(names))

    if jobs <= 1 or len(names) <= 1:
        for name in names:
            collect(name, _profile_one(name, exact))
    else:
        _profile_in_workers(names, exact, jobs, collect)
    return [result for name in names if isinstance(result := results[name], dict)]


def _profile_in_workers(names: list[str], exact: bool, jobs: int,
                        collect: Callable[[str, dict[str, Any] | ZooFailure], None]) -> None:
    """Profile ``names`` in ``jobs`` worker processes, passing each result to ``collect``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # CoCa goes through the slower torch.export capture: start it first, so that no long model is
    # left running alone at the end while the other workers sit idle.
    pending = sorted(names, key=lambda name: name.lower().startswith("coca"), reverse=True)
    if _fork_is_safe():
        # Warm this process up on one quick model before forking: the workers inherit the warm state.
        first = next((name for name in pending if not name.lower().startswith("coca")), pending[0])
        pending.remove(first)
        collect(first, _profile_one(first, exact))
    method = "fork" if _fork_is_safe() else "spawn"
    if not pending:
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(pending)), initializer=_init_worker,
                             mp_context=multiprocessing.get_context(method)) as pool:
        futures = {pool.submit(_profile_one, name, exact): name for name in pending}
        try:
            for future in as_completed(futures):
                collect(futures[future], future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise

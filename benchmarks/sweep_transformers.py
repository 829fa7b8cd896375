"""Sweep Hugging Face transformers model types: fxflops next to torch's FlopCounterMode.

Every model type of ``transformers.models.auto.configuration_auto.CONFIG_MAPPING`` (or those that
match the fnmatch patterns given) is built from a shrunk default config on the meta device (no
weights, no download) and called once with default inputs. fxflops's count is then checked against
FlopCounterMode's, run on the same model and inputs under ``torch.device("meta")`` with autograd on;
where FlopCounterMode cannot run on meta (the model reads tensor values), on a CPU copy with seeded
weights and zero inputs, and fxflops, if it failed on meta, on that CPU copy too (``reference_device``
and ``fxflops_device`` in the JSON say which).

    python -m benchmarks.sweep_transformers                    # every model type
    python -m benchmarks.sweep_transformers 'llama*' 'qwen*'   # fnmatch patterns
    python -m benchmarks.sweep_transformers --subset 120       # ~120 types spread across the alphabet
    python -m benchmarks.sweep_transformers --from-json        # re-print the last run's summary

Each model type gets one status:

* ``exact``: fxflops's total equals FlopCounterMode's and no node is uncounted;
* ``uncounted``: fxflops ran but some nodes had no rule (their distinct targets are listed);
* ``differs``: both ran, nothing uncounted, and the totals differ;
* ``fxflops error``: ``fxflops.count`` raised (or timed out, or crashed the process);
* ``build error``: no model could be built (or no default input fits its forward);
* ``reference error``: fxflops ran cleanly but FlopCounterMode failed.

Config: ``AutoConfig.for_model(type)``, then the size fields present are shrunk, in the config
and in every nested config (``text_config``, ``vision_config``, ``encoder``, ``decoder``, ...):
layers -> 2, width -> 64, feed-forward -> 128, heads -> 4, KV heads -> 2, vocabulary -> 256,
positions -> 128, ``head_dim`` = width / heads. When that config cannot be built, or neither
fxflops nor the reference can run it (the shrinking broke the model, not the counter), the sweep
retries: with image inputs dropped (multimodal LMs want image tokens in ``input_ids``), then with
only layers/vocabulary/positions shrunk, then with the default config. The attempt reported is
the first one either counter ran; ``attempt`` in the JSON says which (0 = as specified).

Models run sequentially in one worker process at a time (restarted every few models, and killed
and restarted on a timeout, a crash or too much memory), so a hang or a segfault costs one model
type, not the sweep. Results go to ``/tmp/sweep_transformers.json``; a markdown summary is printed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from fxflops.zoo_transformers import build_model, default_inputs, is_int, sub_configs

OUT = Path("/tmp/sweep_transformers.json")
LOG = Path("/tmp/sweep_transformers.log")
ROOT = Path(__file__).resolve().parent.parent


#: Size fields and their small values. The first name of each group is the brief's; the
#: encoder/decoder variants keep BART/T5-style models as small as the rest.
LAYERS = ("num_hidden_layers", "n_layer", "num_layers", "encoder_layers", "decoder_layers", "num_decoder_layers")
WIDTH = ("hidden_size", "d_model", "n_embd", "out_hidden_size", "encoder_hidden_size")
FFN = ("intermediate_size", "d_ff", "n_inner", "encoder_ffn_dim", "decoder_ffn_dim")
HEADS = ("num_attention_heads", "n_head", "encoder_attention_heads", "decoder_attention_heads")
SMALL = {**dict.fromkeys(LAYERS, 2), **dict.fromkeys(WIDTH, 64), **dict.fromkeys(FFN, 128),
         **dict.fromkeys(HEADS, 4), "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 128}
#: Shrink levels: 0 = everything above (the sweep's config), 1 = layers, vocabulary and positions
#: only (widths and heads as the default config has them), 2 = the default config untouched.
LEVEL_KEYS = {0: set(SMALL), 1: set(LAYERS) | {"vocab_size", "max_position_embeddings"}, 2: set()}

STATUSES = ("exact", "uncounted", "differs", "fxflops error", "build error", "reference error")


# -- worker side: build, count, compare one model type ----------------------------------------------

def _shrink(config: Any, keys: set[str], seen: set[int] | None = None) -> None:
    """Set the size fields in ``keys`` that ``config`` has (and its nested configs have)."""
    seen = set() if seen is None else seen
    if id(config) in seen:
        return
    seen.add(id(config))
    old_layers = next((getattr(config, k) for k in LAYERS if is_int(getattr(config, k, None))), None)
    changed = False
    for key in SMALL:
        if key not in keys or not hasattr(config, key):
            continue
        value = getattr(config, key)
        # Only scalar fields (lists such as per-stage widths are left alone); a None feed-forward
        # or KV-head count means "derived", and is set too.
        if not (is_int(value) or (value is None and (key in FFN or key == "num_key_value_heads"))):
            continue
        try:
            setattr(config, key, SMALL[key])
            changed = True
        except Exception:  # a read-only property
            pass
    if changed and is_int(old_layers) and old_layers > 2 and (set(LAYERS) & keys):
        # Every layer kind is kept only when the widths are small too: at full width, one more
        # layer (a DeepSeek-V3.2 MoE layer of 256 experts) outgrows the CPU reference's memory.
        _shrink_layer_pattern(config, old_layers, every_kind=bool(set(WIDTH) & keys))
    if keys & set(WIDTH):
        width = next((getattr(config, k) for k in WIDTH if is_int(getattr(config, k, None))), None)
        heads = next((getattr(config, k) for k in HEADS if is_int(getattr(config, k, None))), None)
        if width and heads:
            head = width // heads
            for key in ("head_dim",):
                if hasattr(config, key) and (getattr(config, key) is None or is_int(getattr(config, key))):
                    try:
                        setattr(config, key, head)
                    except Exception:
                        pass
            if is_int(getattr(config, "rotary_dim", None)) and config.rotary_dim > head:
                config.rotary_dim = head
            _shrink_latent_attention(config, head)
        if "num_experts_per_tok" in vars(config) and config.num_experts_per_tok is None:
            config.num_experts_per_tok = 2  # DeepSeek-V2's default config leaves its router's top-k unset
    for _, sub in sub_configs(config):
        _shrink(sub, keys, seen)


def _shrink_layer_pattern(config: Any, old_layers: int, every_kind: bool = True) -> None:
    """Per-layer lists (``layer_types``, ``mlp_layer_types``, ...) cut to the shrunk depth while
    keeping one layer of every kind: a hybrid model cut to its first two layers may keep no attention
    layer at all (Qwen3-Next, Kimi-Linear), and then neither counter can run it. The layers kept are
    the first two and the first of each kind, in order; the depth becomes their number. Periodic
    patterns (Jamba's ``attn_layer_period``) longer than the new depth get period 2, offset 1."""
    per_layer = {key: value for key, value in vars(config).items()
                 if isinstance(value, (list, tuple)) and len(value) == old_layers and not key.startswith("_")}
    keep = {0, 1}
    for value in per_layer.values() if every_kind else ():
        first: dict[str, int] = {}
        for index, kind in enumerate(value):
            first.setdefault(repr(kind), index)
        keep.update(first.values())
    indices = sorted(keep)
    for key, value in per_layer.items():
        try:
            setattr(config, key, type(value)(value[i] for i in indices))
        except Exception:
            pass
    depth = len(indices)
    for key in LAYERS:
        if getattr(config, key, None) == SMALL[key] and depth != SMALL[key]:
            try:
                setattr(config, key, depth)
            except Exception:
                pass
    for key, value in list(vars(config).items()) if every_kind else ():
        if key.endswith("_layer_period") and is_int(value) and value > depth:
            offset_key = key.replace("_period", "_offset")
            try:
                setattr(config, key, 2)
                if is_int(getattr(config, offset_key, None)):
                    setattr(config, offset_key, 1)
            except Exception:
                pass


def _shrink_latent_attention(config: Any, head: int) -> None:
    """Multi-head latent attention (DeepSeek-V2/V3, Mistral 4, ...): the rotary part, the rest of the
    query/key head and the value head are separate sizes, and the config derives ``head_dim`` (the
    rotary embedding's size) and ``qk_head_dim`` from them. Shrunk together, or the rotary embedding
    no longer fits the heads."""
    if not is_int(getattr(config, "qk_rope_head_dim", None)) or config.qk_rope_head_dim <= 0:
        return
    rope, nope = max(2, head // 2), max(2, head // 2)
    # head_dim is the rotary part (DeepSeek) or the whole query/key head with a partial rotary
    # factor (Mistral 4): its ratio to the rotary part is kept.
    old_rope, old_head = config.qk_rope_head_dim, getattr(config, "head_dim", None)
    try:
        config.qk_rope_head_dim = rope
        if is_int(getattr(config, "qk_nope_head_dim", None)) and config.qk_nope_head_dim > 0:
            config.qk_nope_head_dim = nope
        else:
            nope = getattr(config, "qk_nope_head_dim", 0) or 0
        if is_int(getattr(config, "v_head_dim", None)):
            config.v_head_dim = head
        if hasattr(config, "qk_head_dim"):
            config.qk_head_dim = rope + nope
        if is_int(old_head) and old_head > 0:
            config.head_dim = rope * old_head // old_rope if old_head % old_rope == 0 else rope
    except Exception:  # a read-only property
        pass


def _clamp_token_ids(config: Any, vocab: int, seen: set[int] | None = None) -> None:
    """Special token ids (pad, bos, image, ...) beyond the shrunk vocabulary: an embedding's
    padding_idx must be inside it. Distinct ids stay distinct (vocab-1, vocab-2, ...)."""
    seen = set() if seen is None else seen
    if id(config) in seen:
        return
    seen.add(id(config))
    spare = iter(range(vocab - 1, vocab // 2, -1))
    remap: dict[int, int] = {}

    def fix(value: Any) -> Any:
        if is_int(value) and value >= vocab:
            if value not in remap:
                remap[value] = next(spare)
            return remap[value]
        if isinstance(value, (list, tuple)):
            return type(value)(fix(v) for v in value)
        return value

    for key, value in sorted(vars(config).items()):
        if key.endswith(("_token_id", "_token_ids", "_token_index", "_token")) or key in ("decoder_start_token_id",):
            fixed = fix(value)
            if fixed != value:
                try:
                    setattr(config, key, fixed)
                except Exception:
                    pass
    for _, sub in sub_configs(config):
        _clamp_token_ids(sub, vocab, seen)


def small_config(model_type: str, level: int = 0) -> Any:
    """``AutoConfig.for_model(model_type)`` shrunk at ``level`` (see :data:`LEVEL_KEYS`)."""
    from transformers import AutoConfig

    config = AutoConfig.for_model(model_type)
    keys = LEVEL_KEYS[level]
    if keys:
        _shrink(config, keys)
        _clamp_token_ids(config, SMALL["vocab_size"])
    return config


def _shapes(inputs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(value.shape) for name, value in inputs.items()}


def _short_path(filename: str) -> str:
    for marker in ("/transformers/", "/fxflops/", "/torch/"):
        if marker in filename:
            return marker.strip("/") + "/" + filename.split(marker, 1)[1]
    return filename


def describe(error: BaseException) -> dict[str, Any]:
    """Exception type, first line, the head of the text and where it was raised."""
    text = str(error).strip() or repr(error)
    info: dict[str, Any] = {"type": type(error).__name__, "first": text.splitlines()[0][:400], "text": text[:1500]}
    chain, e = [], error
    while e is not None and len(chain) < 5:
        chain.append(e)
        e = e.__cause__ or e.__context__
    innermost = chain[-1]
    if innermost is not error:
        info["cause"] = f"{type(innermost).__name__}: {(str(innermost).strip().splitlines() or [''])[0][:300]}"
    frames = traceback.extract_tb(innermost.__traceback__)
    ours = [f for e in chain for f in traceback.extract_tb(e.__traceback__) if "/fxflops/" in f.filename]
    if ours:
        f = ours[-1]
        info["fxflops_frame"] = f"{_short_path(f.filename)}:{f.lineno} in {f.name}: {(f.line or '').strip()[:160]}"
    hf = [f for f in frames if "/transformers/" in f.filename]
    if hf:
        f = hf[-1]
        info["hf_frame"] = f"{_short_path(f.filename)}:{f.lineno} in {f.name}: {(f.line or '').strip()[:160]}"
    if frames:
        f = frames[-1]
        info["raise_frame"] = f"{_short_path(f.filename)}:{f.lineno} in {f.name}"
    return info


def reference_total(model: Any, inputs: dict[str, Any], device: str = "meta") -> int:
    """FlopCounterMode's total for ``model(**inputs)``, under ``device``, autograd on (on the CPU
    with the math SDPA kernel, which FlopCounterMode counts like the fused ones)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.device(device), torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(**inputs)
    return int(counter.get_total_flops())


def classify(rec: dict[str, Any]) -> str:
    if "build_error" in rec:
        return "build error"
    if "fxflops_error" in rec:
        return "fxflops error"
    if rec.get("uncounted"):
        return "uncounted"
    if "reference_error" in rec:
        return "reference error"
    return "exact" if rec["fxflops_total"] == rec["reference_total"] else "differs"


def _attempts(has_pixels_and_ids: bool) -> list[tuple[int, bool, int]]:
    """(shrink level, with images, input layout) in the order tried."""
    order = [(0, True, 0)]
    if has_pixels_and_ids:
        order.append((0, False, 0))
    return [*order, (0, True, 1), (1, True, 0), (2, True, 0)]


def run_attempt(model_type: str, level: int, images: bool, emit: Any, attempt: int = 0, layout: int = 0
                ) -> dict[str, Any]:
    import torch


    rec: dict[str, Any] = {"type": model_type, "attempt": attempt, "level": level, "images": images,
                           "layout": layout}
    emit("build", rec)
    start = time.perf_counter()
    try:
        config = small_config(model_type, level)
        rec["config"] = type(config).__name__
        rec["auto"], model = build_model(config)
        rec["model_class"] = type(model).__name__
        inputs = default_inputs(model, config, images, layout)
        if layout and _shapes(inputs) == _shapes(default_inputs(model, config, images)):
            raise LookupError("no other input layout")
    except Exception as e:
        rec["build_error"] = describe(e)
        rec["seconds"] = round(time.perf_counter() - start, 2)
        return rec
    rec["inputs"] = {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in inputs.items()}
    rec["has_pixel_values_and_input_ids"] = "pixel_values" in inputs and "input_ids" in inputs
    emit("fxflops", rec)
    _count_into(rec, model, (), inputs)
    rec["fxflops_seconds"] = round(time.perf_counter() - start, 2)
    emit("reference", rec)
    try:
        rec["reference_total"] = reference_total(model, inputs)
        rec["reference_device"] = "meta"
    except Exception as e:
        rec["reference_error"] = describe(e)
        _reference_on_cpu(rec, config, inputs)
    del model
    torch.set_grad_enabled(True)
    rec["seconds"] = round(time.perf_counter() - start, 2)
    return rec


def _count_into(rec: dict[str, Any], model: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any] | None = None) -> None:
    """``fxflops.count`` on the meta-built model (every library's sweep); its total, front end and
    uncounted targets go into ``rec``, or its error does."""
    import fxflops

    try:
        report = fxflops.count(model, args, kwargs=kwargs)
        rec.update(fxflops_total=int(report.total), trace=report.trace, routing=report.routing,
                   uncounted=uncounted_targets(report))
        # FlopCounterMode counts no recurrent kernel (aten.lstm/gru/rnn run natively on the CPU and
        # meta): the reason column says when a difference is exactly these FLOPs.
        rec["recurrent_flops"] = int(report.by_category().get("recurrent", 0))
    except Exception as e:
        rec["fxflops_error"] = describe(e)


def _recount_on_cpu(rec: dict[str, Any], model: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any] | None = None) -> None:
    """``fxflops.count`` again on the CPU copy the reference ran on, so both see the same data; the
    meta result is kept under ``meta_fxflops_*``."""
    import torch

    import fxflops

    try:
        torch.manual_seed(1)
        report = fxflops.count(model, args, kwargs=kwargs)
    except Exception as e:
        rec["fxflops_cpu_error"] = describe(e)
        return
    if "fxflops_error" in rec:
        rec["meta_fxflops_error"] = rec.pop("fxflops_error")
    else:
        rec["meta_fxflops_total"] = rec.get("fxflops_total")
    rec.update(fxflops_total=int(report.total), fxflops_device="cpu", routing=report.routing,
               uncounted=uncounted_targets(report))


def uncounted_targets(report: Any) -> list[dict[str, Any]]:
    """One entry per target without a rule: how many nodes, and the first one's name, module and source."""
    targets: dict[str, dict[str, Any]] = {}
    for r in report.uncounted:
        entry = targets.setdefault(r.target, {"target": r.target, "nodes": 0, "name": r.name, "module": r.module,
                                              "source": _short_path(r.source or "")})
        entry["nodes"] += 1
    return list(targets.values())


def _reference_on_cpu(rec: dict[str, Any], config: Any, inputs: dict[str, Any]) -> None:
    """FlopCounterMode on a CPU copy (seeded weights, zero inputs) when it cannot run on meta
    (models that read tensor values: a padding check, data-dependent shapes). fxflops is then also
    given the CPU model and inputs if it failed on meta, or assumed a uniform routing there (the
    reference counts the real routing): with data, it counts with that data (``routing="data"``)."""
    import torch


    try:
        torch.manual_seed(0)
        if hasattr(config, "_experts_implementation"):
            # FlopCounterMode counts grouped matmuls as 0 (fxflops counts them): the reference for a
            # mixture of experts is its eager per-expert loop, as in tests/rules/test_moe.py.
            config._experts_implementation = "eager"
        _, model = build_model(config, device="cpu")
        # Meta inputs become zeros; CPU inputs are values the model reads (a patch grid) and stay.
        cpu_inputs = {k: v if v.device.type == "cpu" else torch.zeros(v.shape, dtype=v.dtype)
                      for k, v in inputs.items()}
        torch.manual_seed(1)  # the same random stream for both counts (VITS samples its durations)
        total = reference_total(model, cpu_inputs, device="cpu")
    except Exception as e:
        rec["reference_cpu_error"] = describe(e)
        return
    rec.pop("reference_error", None)
    rec["reference_total"] = total
    rec["reference_device"] = "cpu"
    if "fxflops_error" in rec or rec.get("routing") == "uniform":
        _recount_on_cpu(rec, model, (), cpu_inputs)


def run_one(model_type: str, emit: Any) -> dict[str, Any]:
    """Try the attempts in order; keep the first that either counter ran (else the first one)."""
    first: dict[str, Any] | None = None
    i = 0
    order = [(0, True, 0)]
    while i < len(order):
        level, images, layout = order[i]
        rec = run_attempt(model_type, level, images, emit, i, layout)
        if i == 0:
            order = _attempts(rec.get("has_pixel_values_and_input_ids", False))
        ran = "build_error" not in rec and ("fxflops_error" not in rec or "reference_error" not in rec)
        if ran:
            break
        if first is None or ("build_error" in first and "build_error" not in rec):
            first = rec  # the first attempt that built, else the very first
        emit("failed-attempt", first)
        i += 1
    else:
        rec = first  # type: ignore[assignment]
        rec["retried"] = len(order)
    rec["status"] = classify(rec)
    return rec


def worker() -> None:
    """Read model types from stdin, one a line; write one JSON line per event to the real stdout
    (the models' own prints go to stderr)."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    import torch

    torch.set_num_threads(1)
    import transformers  # noqa: F401
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
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
            from transformers.models.auto.configuration_auto import CONFIG_MAPPING

            out.write(json.dumps({"event": "list", "types": list(CONFIG_MAPPING.keys())}) + "\n")
            continue
        try:
            rec = run_one(command, emit)
        except Exception as e:  # a bug here must not end the sweep
            rec = {"type": command, "build_error": describe(e), "status": "build error"}
        out.write(json.dumps({"event": "done", "rec": rec}, default=str) + "\n")


# -- parent side: one worker at a time, with a watchdog ---------------------------------------------

class Worker:
    """One worker process: ``command`` (``python -m <command> --worker``) reads model names from stdin
    and writes JSON events (this module's :func:`worker`, or another sweep's)."""

    def __init__(self, log: Any, command: tuple[str, ...] = ("benchmarks.sweep_transformers",)) -> None:
        env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep),
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
                   TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen([sys.executable, "-m", *command, "--worker"],
                                     cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.served = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def rss_mib(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def next_event(self, deadline: float, max_rss_mib: float) -> dict[str, Any] | str:
        """The next event, or "timeout", "crashed", "memory"."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            try:
                line = self.lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                if self.rss_mib() > max_rss_mib:
                    return "memory"
                continue
            if line is None:
                return "crashed"
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()  # our own child, by its handle
                self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _start_worker(log: Any, command: tuple[str, ...] = ("benchmarks.sweep_transformers",)) -> Worker:
    w = Worker(log, command)
    event = w.next_event(time.monotonic() + 180, 1e9)
    if not (isinstance(event, dict) and event.get("event") == "ready"):
        raise RuntimeError(f"the worker did not start ({event}); see {LOG}")
    return w


def _abort_record(model_type: str, why: str, stage: str | None, rec: dict[str, Any] | None,
                  fallback: dict[str, Any] | None, timeout: float, returncode: int | None) -> dict[str, Any]:
    """The record of a model type whose worker timed out, crashed or ran out of memory."""
    message = {"timeout": f"timed out after {timeout:g} s", "memory": "worker exceeded the memory limit",
               "crashed": f"worker process died (exit code {returncode})"}[why]
    error = {"type": {"timeout": "Timeout", "memory": "MemoryLimit", "crashed": "Crash"}[why],
             "first": f"{message} during {stage or 'startup'}", "text": message}
    if stage in ("fxflops", "reference") and rec is not None and not (rec.get("attempt") and fallback):
        rec = dict(rec)
        rec["fxflops_error" if stage == "fxflops" else "reference_error"] = error
        if stage == "fxflops":
            rec["reference_error"] = {"type": "Skipped", "first": "not run", "text": "not run"}
    elif fallback is not None:
        rec = dict(fallback)
        rec["note"] = f"a retry {message}"
    else:
        rec = {"type": model_type, "build_error": error}
    rec["type"] = model_type
    rec["aborted"] = why
    rec["status"] = classify(rec)
    return rec


def sweep(types: list[str], timeout: float, max_rss_mib: float, recycle: int, out: Path,
          command: tuple[str, ...] = ("benchmarks.sweep_transformers",), log_path: Path = LOG,
          packages: tuple[str, ...] = ("torch", "transformers")) -> list[dict[str, Any]]:
    """Each of ``types`` through one worker at a time (restarted every ``recycle`` models, and on a
    timeout, a crash or too much memory); results written to ``out`` as they come."""
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    with open(log_path, "a") as log:
        w = _start_worker(log, command)
        try:
            for n, model_type in enumerate(types, 1):
                if w.served >= recycle:
                    w.stop()
                    w = _start_worker(log, command)
                log.write(f"\n===== {model_type}\n")
                log.flush()
                t0 = time.monotonic()
                w.send(model_type)
                w.served += 1
                stage, current, fallback = None, None, None
                while True:
                    event = w.next_event(t0 + timeout, max_rss_mib)
                    if isinstance(event, str):
                        rec = _abort_record(model_type, event, stage, current, fallback, timeout, w.proc.poll())
                        w.kill()
                        w = _start_worker(log, command)
                        break
                    if event["event"] == "stage":
                        if event["stage"] == "failed-attempt":
                            fallback = event["rec"]
                        else:
                            stage, current = event["stage"], event["rec"]
                    elif event["event"] == "done":
                        rec = event["rec"]
                        break
                rec["wall_seconds"] = round(time.monotonic() - t0, 2)
                results.append(rec)
                elapsed = time.monotonic() - started
                eta = elapsed / n * (len(types) - n)
                print(f"[{n}/{len(types)}] {model_type}: {rec['status']} ({rec['wall_seconds']:.1f} s, "
                      f"eta {eta / 60:.1f} min)", file=sys.stderr, flush=True)
                if n % 10 == 0 or n == len(types):
                    _write(out, results, started, packages)
        finally:
            w.stop()
    _write(out, results, started, packages)
    return results


def _write(out: Path, results: list[dict[str, Any]], started: float,
           packages: tuple[str, ...] = ("torch", "transformers")) -> None:
    import platform

    versions = {"python": platform.python_version()}
    try:
        from importlib.metadata import version

        versions.update({p: version(p) for p in packages})
    except Exception:
        pass
    data = {"versions": versions, "seconds": round(time.monotonic() - started, 1),
            "counts": dict(Counter(r["status"] for r in results)), "results": results}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(out)


def list_types(log: Any) -> list[str]:
    w = _start_worker(log)
    try:
        w.send("__list__")
        event = w.next_event(time.monotonic() + 120, 1e9)
        assert isinstance(event, dict) and event.get("event") == "list", event
        return list(event["types"])
    finally:
        w.stop()


# -- summary ------------------------------------------------------------------------------------------

def normalize(message: str) -> str:
    """An error's first line with the model-specific parts taken out, to group alike errors."""
    m = re.sub(r"running \S+ on meta tensors", "running <model> on meta tensors", message)
    m = re.sub(r"\b[A-Z]\w*?(Config|Model|For[A-Z]\w*|PreTrainedModel)\b", "<Cls>", m)
    m = re.sub(r"0x[0-9a-f]+", "0x?", m)
    m = re.sub(r"\d+", "N", m)
    m = re.sub(r"'[^']{40,}'", "'...'", m)
    return m[:220]


def _error_of(rec: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for key, kind in (("build_error", "build"), ("fxflops_error", "fxflops")):
        if key in rec:
            return kind, rec[key]
    if rec["status"] == "reference error":
        return "reference", rec["reference_error"]
    return None


def _cell(text: str, width: int = 200) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def reason(rec: dict[str, Any]) -> str:
    status = rec["status"]
    if status == "uncounted":
        targets = ", ".join(f"`{u['target']}`" for u in rec["uncounted"])
        tail = ""
        if "reference_total" in rec:
            tail = f" (fxflops {rec['fxflops_total']:,} vs reference {rec['reference_total']:,})"
        return _cell(targets, 160) + tail
    if status == "differs":
        a, b = rec["fxflops_total"], rec["reference_total"]
        text = f"fxflops {a:,} vs reference {b:,} ({a - b:+,}; x{a / b:.3f})" if b else f"fxflops {a:,} vs reference 0"
        if rec.get("recurrent_flops") and a - b == rec["recurrent_flops"]:
            text += ": exactly fxflops' nn.LSTM/GRU/RNN FLOPs, which FlopCounterMode does not count"
        return text
    found = _error_of(rec)
    if found is None:
        return ""
    kind, err = found
    text = f"{err['type']}: {err['first']}"
    if kind == "reference":
        text = f"reference failed: {err['first']}"
        cpu = rec.get("reference_cpu_error")
        if cpu:  # the CPU run is usually the telling one (a placeholder check, a shape mismatch)
            text = f"reference failed on meta: {err['first']}; on the CPU: {cpu['first']}"
    if kind == "fxflops" and "reference_error" in rec and rec["reference_error"].get("type") != "Skipped":
        tag = " [reference fails too]"  # after the cut, so that a long message cannot hide it
        return _cell(text, 200 - len(tag)) + tag
    return _cell(text)


def summary(results: list[dict[str, Any]], seconds: float | None = None, what: str = "transformers model types",
            note: str | None = None) -> str:
    lines: list[str] = []
    counts = Counter(r["status"] for r in results)
    head = f"# fxflops vs FlopCounterMode on {len(results)} {what}"
    lines += [head + (f" ({seconds / 60:.1f} min)" if seconds else "")]
    if note:
        lines += ["", note]
    lines += ["", "| status | model types |", "|---|---|"]
    lines += [f"| {s} | {counts.get(s, 0)} |" for s in STATUSES]
    retried = [r["type"] for r in results if r.get("attempt")]
    if retried:
        lines += ["", f"{len(retried)} types were reported from a retry (images dropped, the other input "
                  "layout or less shrinking): " + ", ".join(retried)]
    lines += ["", "## Non-exact model types", "", "| model type | status | reason |", "|---|---|---|"]
    for r in sorted(results, key=lambda r: (STATUSES.index(r["status"]), r["type"])):
        if r["status"] != "exact":
            lines.append(f"| {r['type']} | {r['status']} | {reason(r)} |")

    uncounted: dict[str, list[str]] = defaultdict(list)
    where: dict[str, str] = {}
    for r in results:
        for u in r.get("uncounted") or []:
            uncounted[u["target"]].append(r["type"])
            where.setdefault(u["target"], f"{u.get('module') or '(root)'} @ {u.get('source') or '?'}")
    lines += ["", "## Top uncounted targets", "", "| target | model types | examples | first seen at |",
              "|---|---|---|---|"]
    for target, types in sorted(uncounted.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:15]:
        lines.append(f"| `{target}` | {len(types)} | {', '.join(types[:3])} | {_cell(where[target], 120)} |")

    errors: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for r in results:
        found = _error_of(r)
        if found:
            kind, err = found
            errors[f"{kind}: {err['type']}: {normalize(err['first'])}"].append((r["type"], err))
    lines += ["", "## Top error messages (normalized)", "",
              "`reference ran`: of the fxflops errors, how many the reference counted (the others fail in "
              "FlopCounterMode too: an input or config problem more than an fxflops one).", "",
              "| error | model types | reference ran | examples | hint |", "|---|---|---|---|---|"]
    by_type = {r["type"]: r for r in results}
    for key, hits in sorted(errors.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:15]:
        err = hits[0][1]
        hint = err.get("hf_frame") or err.get("fxflops_frame") or err.get("raise_frame") or ""
        ran = sum("reference_total" in by_type[t] for t, _ in hits) if key.startswith("fxflops") else "-"
        lines.append(f"| {_cell(key, 200)} | {len(hits)} | {ran} | {', '.join(t for t, _ in hits[:3])} "
                     f"| {_cell(hint, 160)} |")
    alone = [r for r in results if r["status"] == "fxflops error" and "reference_total" in r]
    lines += ["", "## fxflops errors where the reference ran", "", "| model type | reference | error | at |",
              "|---|---|---|---|"]
    for r in alone:
        err = r["fxflops_error"]
        at = err.get("fxflops_frame") or err.get("hf_frame") or err.get("raise_frame") or ""
        lines.append(f"| {r['type']} | {r['reference_total']:,} | {_cell(err['type'] + ': ' + err['first'], 120)} "
                     f"| {_cell(at, 120)} |")
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------------------

def spread(items: list[str], n: int) -> list[str]:
    """``n`` items evenly spaced over ``items`` (sorted): deterministic and across the alphabet."""
    items = sorted(items)
    if n >= len(items):
        return items
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)] if n > 1 else items[:1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="*", help="fnmatch patterns of model types (default: all)")
    parser.add_argument("--subset", type=int, default=0, help="only N types spread across the alphabet")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per model type (default 60)")
    parser.add_argument("--max-rss-mib", type=float, default=6000.0, help="kill a worker above this RSS")
    parser.add_argument("--recycle", type=int, default=25, help="restart the worker after this many types")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--from-json", action="store_true", help="print the summary of --out and exit")
    parser.add_argument("--merge", type=Path, default=None,
                        help="with --from-json: replace the records of --out by those of this sweep of some types "
                             "(re-run after a fix), write the merged --out and say so in the summary")
    parser.add_argument("--docs", action="store_true",
                        help="also write the summary to docs/coverage.md (after a sweep of every model type)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker()
        return 0
    if args.from_json:
        data = json.loads(args.out.read_text())
        if args.merge:
            data = merge(data, json.loads(args.merge.read_text()))
            args.out.write_text(json.dumps(data, indent=1))
        text = summary(data["results"], data.get("seconds"), note=data.get("merged_note"))
        print(text)
        if args.docs:
            write_docs(text, data.get("versions", {}))
        return 0
    with open(LOG, "w") as log:
        types = list_types(log)
    if args.patterns:
        types = [t for t in types if any(fnmatch.fnmatchcase(t, p) for p in args.patterns)]
    types = sorted(dict.fromkeys(types))
    if args.subset:
        types = spread(types, args.subset)
    if not types:
        print("no model type matches", file=sys.stderr)
        return 1
    print(f"{len(types)} model types; results to {args.out}, worker log {LOG}", file=sys.stderr)
    start = time.monotonic()
    results = sweep(types, args.timeout, args.max_rss_mib, args.recycle, args.out)
    text = summary(results, time.monotonic() - start)
    print(text)
    if args.docs:
        write_docs(text, json.loads(args.out.read_text()).get("versions", {}))
    return 0


def merge(whole: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """``whole`` (a sweep of every type) with the records of ``part`` (a later sweep of some types)
    in their place; ``merged_note`` says how many were re-run, so a summary never passes a merge
    off as one sweep."""
    newer = {r["type"]: r for r in part["results"]}
    results = [newer.get(r["type"], r) for r in whole["results"]]
    merged = sorted(set(whole.get("merged_types", [])) | set(newer))
    note = (f"{len(merged)} of the {len(results)} types were re-swept after fixes "
            f"(the others are from the full sweep; `merged_types` in the JSON names them).")
    return {**whole, "results": results, "counts": dict(Counter(r["status"] for r in results)),
            "versions": part.get("versions", whole.get("versions")), "merged_types": merged, "merged_note": note}


def write_docs(text: str, versions: dict[str, Any]) -> None:
    """``docs/coverage.md``: the sweep's summary, every model type that is not exact with its reason."""
    stamp = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
    head = ("# Coverage: every transformers model type\n\n"
            "Written by `python -m benchmarks.sweep_transformers --docs`; do not edit by hand. The records "
            "behind it: `docs/coverage-transformers.json` (merge a re-sweep into it with `--from-json --out "
            "docs/coverage-transformers.json --merge NEW --docs`). Each model "
            "type is built from a small config on the meta device and counted with its default inputs, next "
            "to FlopCounterMode on the same model (method: the module docstring of "
            "`benchmarks/sweep_transformers.py`). `build error` and `reference error` rows are the sweep's "
            "own limits (no default input it can build, or FlopCounterMode itself failing on meta), listed "
            "so that nothing is hidden.\n\n" + (f"Versions: {stamp}.\n\n" if stamp else ""))
    (ROOT / "docs" / "coverage.md").write_text(head + "## " + text.removeprefix("# ").rstrip() + "\n")


if __name__ == "__main__":
    sys.exit(main())

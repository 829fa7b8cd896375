"""The fair speed comparison: fxflops against FlopCounterMode on the meta device.

FlopCounterMode run on meta tensors is the fastest way a user can get the same number from
torch: no arithmetic is done, as with fxflops. It is run with autograd off and on, and compared in
the faster setting that gives the same count (with autograd off it misses nn.MultiheadAttention's
fused fast path). Both get the same model (built on meta) and the
same inputs, Hugging Face models are called with their default arguments (``use_cache`` left
on), each tool gets one untimed warm-up call, then the timed calls go round the tools (one call
each per round) so that load from other processes falls on both alike. The ratio is of the
fastest calls; medians are shown beside it. Counts must agree, or the row says so.

Run alone: ``python -m benchmarks.fair_speed`` (prints the table, exits 1 if a target fails).
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

#: Runs per tool per model (after one warm-up call).
RUNS = 3


@dataclass
class FairRow:
    """One model: both tools' timed calls and counts."""

    key: str
    label: str
    goal: float  # fxflops must be at least this many times faster
    fxflops_runs: list[float] = field(default_factory=list)
    fcm_runs: list[float] = field(default_factory=list)
    fxflops_total: int | None = None
    fcm_total: int | None = None
    #: Which FlopCounterMode setting is compared: the fastest that gives fxflops's count.
    fcm_setting: str = ""
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if not self.fxflops_runs or not self.fcm_runs:
            return None
        return min(self.fcm_runs) / min(self.fxflops_runs)

    @property
    def median_ratio(self) -> float | None:
        if not self.fxflops_runs or not self.fcm_runs:
            return None
        return statistics.median(self.fcm_runs) / statistics.median(self.fxflops_runs)

    @property
    def status(self) -> str:
        if self.error or self.ratio is None:
            return "FAIL"
        if self.fxflops_total != self.fcm_total:
            return "FAIL"
        return "PASS" if self.ratio >= self.goal else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "median_ratio": self.median_ratio, "status": self.status}


@dataclass(frozen=True)
class FairCase:
    key: str
    label: str
    goal: float
    build: Callable[[], tuple[nn.Module, tuple[Any, ...]]]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _torchvision(name: str, batch: int) -> Callable[[], tuple[nn.Module, tuple[Any, ...]]]:
    def build() -> tuple[nn.Module, tuple[Any, ...]]:
        import torchvision

        with torch.device("meta"):
            model = torchvision.models.get_model(name).eval()
        return model, (torch.empty(batch, 3, 224, 224, device="meta"),)

    return build


def _open_clip(name: str, batch: int) -> Callable[[], tuple[nn.Module, tuple[Any, ...]]]:
    def build() -> tuple[nn.Module, tuple[Any, ...]]:
        from fxflops.zoo import build_open_clip, open_clip_inputs

        model = build_open_clip(name)
        inputs = open_clip_inputs(model, batch)
        return model, (inputs.image, inputs.text)

    return build


def _hf(config: Callable[[], Any], tokens: int) -> Callable[[], tuple[nn.Module, tuple[Any, ...]]]:
    def build() -> tuple[nn.Module, tuple[Any, ...]]:
        import transformers

        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(config()).eval()
        return model, (torch.empty(1, tokens, dtype=torch.long, device="meta"),)

    return build


def _gpt2() -> Any:
    import transformers

    return transformers.AutoConfig.for_model("gpt2", n_positions=2048)


def _llama(layers: int, hidden: int, intermediate: int, heads: int, kv_heads: int) -> Callable[[], Any]:
    def config() -> Any:
        import transformers

        return transformers.LlamaConfig(num_hidden_layers=layers, hidden_size=hidden, intermediate_size=intermediate,
                                        num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=32000,
                                        max_position_embeddings=4096)

    return config


CASES = (
    FairCase("resnet50", "torchvision resnet50, batch 8", 1.0, _torchvision("resnet50", 8)),
    FairCase("vit_b_16", "OpenCLIP ViT-B-16, batch 8", 5.0, _open_clip("ViT-B-16", 8)),
    FairCase("eva02_e_14", "OpenCLIP EVA02-E-14, batch 1", 1.0, _open_clip("EVA02-E-14", 1)),
    FairCase("gpt2", "HF GPT-2, 2048 tokens, default call", 1.0, _hf(_gpt2, 2048)),
    FairCase("llama_7b", "HF LLaMA-7B config, 2048 tokens", 1.0, _hf(_llama(32, 4096, 11008, 32, 32), 2048)),
    FairCase("llama_70b", "HF 80-layer LLaMA-70B-shaped config, 2048 tokens", 3.0,
             _hf(_llama(80, 8192, 28672, 64, 8), 2048)),
)


def _fcm(model: nn.Module, inputs: tuple[Any, ...], grad: bool) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.device("meta"), torch.set_grad_enabled(grad):
        model(*inputs)
    return counter.get_total_flops()


def _fxflops(model: nn.Module, inputs: tuple[Any, ...]) -> int:
    import fxflops

    return fxflops.count(model, inputs).total


def _timed(call: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def measure(case: FairCase, runs: int = RUNS) -> FairRow:
    row = FairRow(case.key, case.label, case.goal)
    try:
        with _quiet():
            model, inputs = case.build()
            # FlopCounterMode needs every tensor on meta (OpenCLIP keeps its text mask on the CPU).
            fcm_model, fcm_inputs = case.build()
            fcm_model.to("meta")
            no_grad: list[float] = []
            grad: list[float] = []
            tools = ((row.fxflops_runs, lambda: _fxflops(model, inputs)),
                     (no_grad, lambda: _fcm(fcm_model, fcm_inputs, False)),
                     (grad, lambda: _fcm(fcm_model, fcm_inputs, True)))
            row.fxflops_total = _fxflops(model, inputs)  # warm-up calls
            totals = {"no_grad": _fcm(fcm_model, fcm_inputs, False), "grad on": _fcm(fcm_model, fcm_inputs, True)}
            for _ in range(runs):
                for seconds, call in tools:
                    elapsed, _ = _timed(call)
                    seconds.append(elapsed)
            # FlopCounterMode under no_grad is faster but misses the fused nn.MultiheadAttention
            # fast path: compare with the fastest setting that gives the same number.
            settings = [("no_grad", no_grad), ("grad on", grad)]
            same = [(name, runs_) for name, runs_ in settings if totals[name] == row.fxflops_total] or settings
            row.fcm_setting, row.fcm_runs = min(same, key=lambda item: min(item[1]))
            row.fcm_total = totals[row.fcm_setting]
    except Exception as e:
        row.error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return row


def run(log: Callable[[str], None] = print, keys: set[str] | None = None) -> list[FairRow]:
    rows = []
    for case in CASES:
        if keys and case.key not in keys:
            continue
        row = measure(case)
        rows.append(row)
        log(f"  {row.label}: " + (row.error or
            f"fxflops {min(row.fxflops_runs):.3f} s, FlopCounterMode on meta ({row.fcm_setting}) "
            f"{min(row.fcm_runs):.3f} s, "
            f"{row.ratio:.1f}x (medians {row.median_ratio:.1f}x), counts "
            f"{'equal' if row.fxflops_total == row.fcm_total else f'DIFFER {row.fxflops_total} vs {row.fcm_total}'}"
            f" -> {row.status} (goal >= {row.goal:g}x)"))
    return rows


def markdown(rows: list[FairRow]) -> str:
    lines = ["| model | fxflops | FlopCounterMode on meta | speed-up (fastest; medians) | counts | goal | status |",
             "|---|---:|---:|---:|---|---:|---|"]
    for row in rows:
        if row.error:
            lines.append(f"| {row.label} | | | | {row.error} | >= {row.goal:g}x | FAIL |")
            continue
        counts = "equal" if row.fxflops_total == row.fcm_total else f"{row.fxflops_total:,} vs {row.fcm_total:,}"
        lines.append(f"| {row.label} | {min(row.fxflops_runs):.3f} s | {min(row.fcm_runs):.3f} s "
                     f"({row.fcm_setting}) | {row.ratio:.1f}x; {row.median_ratio:.1f}x | "
                     f"{counts} (= {row.fxflops_total:,}) | >= {row.goal:g}x | {row.status} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure every case (or the keys given), print the table; with no keys, also write
    ``benchmarks/FAIR_SPEED.md``."""
    import os
    import platform
    from pathlib import Path

    keys = set(argv if argv is not None else sys.argv[1:])
    load = os.getloadavg()[0]
    rows = run(keys=keys or None)
    table = markdown(rows)
    print(table)
    if not keys:
        import fxflops

        text = "\n".join([
            "# fxflops against FlopCounterMode on the meta device", "",
            "Written by `python -m benchmarks.fair_speed`; do not edit by hand. Method: the module docstring of "
            "`benchmarks/fair_speed.py`.", "",
            f"fxflops {fxflops.__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
            f"{os.cpu_count()} cores, load {load:.2f} before the run.", "",
            table, ""])
        Path(__file__).with_name("FAIR_SPEED.md").write_text(text)
    return 1 if any(r.status == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

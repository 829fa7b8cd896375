"""Adapters for the other FLOP counters, each run the way its README tells users to run it.

Every adapter is a small function ``(model, inputs) -> (number, unit)`` that executes the real
CPU model once (every peer does: they count what a forward pass dispatches or what hooks see)
and returns the tool's own number in the tool's own unit; conversion to FLOPs happens in one
place (:func:`to_flops`). A peer that is not installed is skipped, and the runner says so; the
runner installs nothing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.machine import version_of

Inputs = tuple[torch.Tensor, ...]
Adapter = Callable[[nn.Module, Inputs], tuple[float, str]]

FLOPS = "FLOPs"
MACS = "MACs"


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Swallow what peers print (tables, warnings, tracebacks they print and then recover from)."""
    loggers = [logging.getLogger(), logging.getLogger("fvcore")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=False):
            lg.setLevel(level)


# -- torch.utils.flop_counter.FlopCounterMode --------------------------------------------------------


def _flop_counter_mode(model: nn.Module, inputs: Inputs) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops()


def fcm_no_grad(model: nn.Module, inputs: Inputs) -> tuple[float, str]:
    """FlopCounterMode as users run it for inference: ``eval()`` and ``torch.no_grad()``.

    Counts aten mm/bmm/addmm/conv/SDPA kernels at 2 FLOPs per MAC. Under no_grad,
    ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` take their fused fast path, whose
    native ops have no formula (0), and CPU flash SDPA has none either.
    """
    model.eval()
    with torch.no_grad():
        return _flop_counter_mode(model, inputs), FLOPS


def fcm_grad(model: nn.Module, inputs: Inputs) -> tuple[float, str]:
    """FlopCounterMode as OpenCLIP's profiler runs it: ``eval()``, autograd on, default kernels.

    Grad mode disables the MHA fast path, but on CPU SDPA still dispatches to the flash kernel,
    which has no formula, so the attention core (QK^T, AV) counts 0.
    """
    model.eval()
    with torch.enable_grad():
        return _flop_counter_mode(model, inputs), FLOPS


def fcm_exact(model: nn.Module, inputs: Inputs) -> tuple[float, str]:
    """FlopCounterMode set up to see every matmul: autograd on, MHA fast path off, math SDPA.

    Not how anyone runs it by default; this is the cross-check of the exact reference (the
    math SDPA kernel decomposes into two bmm calls, which have formulas).
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model.eval()
    fast_path = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
            return _flop_counter_mode(model, inputs), FLOPS
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)


# -- the other counters ------------------------------------------------------------------------------


def fvcore_count(model: nn.Module, inputs: Inputs) -> tuple[float, str]:
    """fvcore ``FlopCountAnalysis(model, inputs).total()``: JIT-traces one forward pass.

    Counts one fused multiply-add as one "flop" (MACs) over addmm/bmm/conv/einsum/matmul/linear
    plus rough norm and upsample estimates; no handle for SDPA, so attention cores are dropped.
    """
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis.total(), MACS


def thop_count(model: nn.Module, inputs: Inputs) -> tuple[float, str]:
    """thop ``profile(model, inputs)``: forward hooks on known leaf modules (conv, linear, norms,
    RNNs, ...), in MACs. ``nn.MultiheadAttention`` and functional ops are invisible to it."""
    import thop

    macs, _params = thop.profile(model, inputs=inputs, verbose=False)
    return float(macs), MACS


class _NamedInputs(nn.Module):
    """ptflops calls ``model(**input_constructor(...))``; this maps names back to positions."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, **named: torch.Tensor) -> object:
        return self.model(*named.values())


def ptflops_count(model: nn.Module, inputs: Inputs) -> tuple[float, str]:
    """ptflops ``get_model_complexity_info`` (default ``pytorch`` backend): module hooks plus a
    temporary patch of ``torch.matmul``/``F.*``; MACs, bias and some elementwise work included.

    Inputs go through ``input_constructor`` as keywords, so ptflops does not divide by the batch
    size (with a positional tensor it reports a per-sample average).
    """
    from ptflops import get_model_complexity_info

    named = {f"x{i}": x for i, x in enumerate(inputs)}
    macs, _params = get_model_complexity_info(
        _NamedInputs(model),
        (1,),
        input_constructor=lambda _res: named,
        as_strings=False,
        print_per_layer_stat=False,
        verbose=False,
    )
    if macs is None:  # ptflops prints the exception and returns None
        raise RuntimeError("ptflops returned None (its forward pass raised)")
    return float(macs), MACS


def torchinfo_count(model: nn.Module, inputs: Inputs) -> tuple[float, str]:
    """torchinfo ``summary(model, input_data=...).total_mult_adds``: per-layer mult-adds derived
    from parameter counts and output sizes of hooked leaf modules (MACs)."""
    import torchinfo

    summary = torchinfo.summary(model, input_data=list(inputs), verbose=0, device="cpu")
    return float(summary.total_mult_adds), MACS


def torch_flops_count(model: nn.Module, inputs: Inputs) -> tuple[float, str]:
    """torch_flops ``TorchFLOPsByFX(model).propagate(*inputs)``: torch.fx + a real-tensor
    interpreter that counts "exact" (2K-1) FLOPs per node. It calls the CUDA memory API on every
    node, so it cannot run on a CPU-only machine; it is run unpatched and its error reported."""
    from torch_flops import TorchFLOPsByFX

    counter = TorchFLOPsByFX(model)
    counter.propagate(*inputs)
    return float(counter.print_total_flops(show=False)), FLOPS


def calflops_count(model: nn.Module, inputs: Inputs) -> tuple[float, str]:
    """calflops ``calculate_flops(model, args=[...])``: patches ``torch.nn.functional`` and tensor
    ops for one forward pass; returns FLOPs (2 per MAC, elementwise ops included)."""
    from calflops import calculate_flops

    flops, _macs, _params = calculate_flops(
        model,
        args=list(inputs),
        print_results=False,
        print_detailed=False,
        output_as_string=False,
    )
    return float(flops), FLOPS


# -- the registry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A counter to compare with: how to find it, run it, and label it."""

    key: str
    label: str
    module: str  # import name, to check whether it is installed
    distribution: str  # for its version
    unit: str  # the unit its number comes in
    count: Adapter
    #: Why it cannot run here, decided before running (torch_flops without CUDA).
    blocked: Callable[[], str | None] = lambda: None
    #: Part of the speed comparison (reference cross-checks and blocked tools are not).
    timed: bool = True

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    @property
    def version(self) -> str | None:
        return version_of(self.distribution)

    def run(self, model: nn.Module, inputs: Inputs) -> tuple[float, str]:
        """The adapter, with the peer's printing silenced."""
        with silenced():
            return self.count(model, inputs)


def _needs_cuda() -> str | None:
    if torch.cuda.is_available():
        return None
    return "needs CUDA: it resets and reads torch.cuda peak-memory stats on every node"


PEERS: tuple[Peer, ...] = (
    Peer("fcm_no_grad", "FlopCounterMode (eval, no_grad)", "torch", "torch", FLOPS, fcm_no_grad),
    Peer(
        "fcm_grad", "FlopCounterMode (eval, grad on: OpenCLIP's profiler)", "torch", "torch", FLOPS, fcm_grad
    ),
    Peer(
        "fcm_exact",
        "FlopCounterMode (grad on, math SDPA, no MHA fast path)",
        "torch",
        "torch",
        FLOPS,
        fcm_exact,
    ),
    Peer("fvcore", "fvcore", "fvcore", "fvcore", MACS, fvcore_count),
    Peer("thop", "thop", "thop", "thop", MACS, thop_count),
    Peer("ptflops", "ptflops", "ptflops", "ptflops", MACS, ptflops_count),
    Peer("torchinfo", "torchinfo", "torchinfo", "torchinfo", MACS, torchinfo_count),
    Peer(
        "torch_flops",
        "torch_flops",
        "torch_flops",
        "torch-flops",
        FLOPS,
        torch_flops_count,
        blocked=_needs_cuda,
    ),
    Peer("calflops", "calflops", "calflops", "calflops", FLOPS, calflops_count),
)


def to_flops(value: float, unit: str) -> float:
    """A peer's number in FLOPs (2 per multiply-accumulate)."""
    return 2 * value if unit == MACS else value


def available(announce: Callable[[str], None] = print) -> list[Peer]:
    """The installed peers; each missing one is announced as skipped (nothing is installed)."""
    found = []
    for peer in PEERS:
        if peer.installed:
            found.append(peer)
        else:
            announce(
                f"skip {peer.label}: {peer.module} is not installed "
                f"(pip install {peer.distribution}; the runner installs nothing)"
            )
    return found

"""Model FLOPs utilization: achieved FLOP/s over an accelerator's peak.

``mfu(report, throughput, peak)`` with ``report`` counted for one call (usually with
``backward=True`` for training), ``throughput`` in the units one call processes per second
(samples or tokens; ``units_per_call`` says how many units one counted call covers), and ``peak``
in FLOP/s or the name of an accelerator in :data:`PEAK_FLOPS`.

``hfu`` is the hardware FLOPs utilization beside it: the FLOPs the hardware really runs, which add
to the model's FLOPs what training recomputes (:func:`hardware_flops`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fxflops.report import FlopReport


@dataclass(frozen=True)
class Peak:
    """A published dense (no sparsity) peak, in FLOP/s, and where it is published."""

    flops: float
    dtype: str
    source: str


#: Dense peak throughputs from the vendors' datasheets (sparsity figures are twice these).
PEAK_FLOPS: dict[str, Peak] = {
    "a100": Peak(312e12, "bf16", "NVIDIA A100 Tensor Core GPU datasheet (SXM and PCIe): BF16 312 TFLOPS"),
    "h100-sxm": Peak(989.4e12, "bf16", "NVIDIA H100 Tensor Core GPU datasheet, SXM: BF16 1,979 TFLOPS with sparsity"),
    "h100-pcie": Peak(756e12, "bf16", "NVIDIA H100 Tensor Core GPU datasheet, PCIe: BF16 1,513 TFLOPS with sparsity"),
    "h200": Peak(989.4e12, "bf16", "NVIDIA H200 Tensor Core GPU datasheet, SXM: BF16 1,979 TFLOPS with sparsity"),
    "b200": Peak(2250e12, "bf16", "NVIDIA B200 datasheet (HGX, 1000 W): BF16 2.25 PFLOPS dense"),
    "l4": Peak(121e12, "bf16", "NVIDIA L4 Tensor Core GPU datasheet: BF16 242 TFLOPS with sparsity"),
    "mi300x": Peak(1307.4e12, "bf16", "AMD Instinct MI300X datasheet: peak BF16 1307.4 TFLOPS (dense)"),
    "mi250x": Peak(383e12, "bf16", "AMD Instinct MI250X datasheet: peak BF16 383 TFLOPS"),
    "tpu-v4": Peak(275e12, "bf16", "Google Cloud TPU v4 documentation: 275 TFLOPS peak BF16 per chip"),
    "tpu-v5e": Peak(197e12, "bf16", "Google Cloud TPU v5e documentation: 197 TFLOPS peak BF16 per chip"),
    "tpu-v5p": Peak(459e12, "bf16", "Google Cloud TPU v5p documentation: 459 TFLOPS peak BF16 per chip"),
}


def peak_flops(peak: float | str, dtype: str | None = None) -> float:
    """Dense FLOP/s of ``peak``: a number, or an accelerator name from :data:`PEAK_FLOPS` (its bf16
    peak), or with ``dtype`` (``"fp8"``, ``"tf32"``, ``"fp32"``...) that dtype's dense peak from
    :data:`fxflops.roofline.ACCELERATORS`; a dtype with no published dense peak raises. Never a
    "with sparsity" figure."""
    if isinstance(peak, str):
        from fxflops.roofline import ACCELERATORS, ALIASES

        name = peak.strip().lower()
        name = ALIASES.get(name, name)  # "h100" is the SXM part
        if dtype is not None:
            chip = ACCELERATORS.get(name)
            if chip is not None:
                return chip.peak(dtype)
            if name in PEAK_FLOPS and dtype.lower() in ("bf16", "bfloat16"):
                return PEAK_FLOPS[name].flops
            if name in PEAK_FLOPS:
                raise ValueError(f"fxflops' table has only the bf16 dense peak of {peak!r}, not {dtype!r}")
        try:
            return PEAK_FLOPS[name].flops
        except KeyError:
            raise ValueError(f"unknown accelerator {peak!r}; known: {', '.join(sorted(PEAK_FLOPS))}") from None
    return positive_finite(peak, "peak FLOP/s")


def positive_finite(value: float, what: str) -> float:
    """``value`` as a float when it is a positive, finite number; else a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a positive, finite number, got {value!r}")
    return float(value)


def mfu(report: FlopReport, tokens_or_samples_per_second: float, peak: float | str,
        units_per_call: int = 1, dtype: str | None = None) -> float:
    """Achieved FLOP/s over peak: ``report.total / units_per_call * throughput / peak``.

    ``dtype`` picks the accelerator's dense peak for that dtype (``"fp8"``: twice bf16 on H100);
    by default the bf16 peak. An MFU above 1 is impossible and raises.

    >>> # resnet18 trained at 1,200 images/s on one A100: 10,884,440,064 FLOPs per image
    >>> round(10_884_440_064 * 1200 / 312e12, 4)
    0.0419
    """
    total = report.total
    if not isinstance(total, int):
        raise ValueError("evaluate a symbolic report at concrete sizes first: report.evaluate(...)")
    return _utilization(total, tokens_or_samples_per_second, peak, units_per_call, dtype, "MFU")


def _utilization(flops: int, throughput: float, peak: float | str, units_per_call: int, dtype: str | None,
                 what: str) -> float:
    """``flops / units_per_call * throughput / peak``, checked: ``what`` (MFU, HFU) above 1 is
    impossible, a wrong unit (tokens vs samples), per-call count or peak."""
    if isinstance(units_per_call, bool) or not isinstance(units_per_call, int) or units_per_call <= 0:
        raise ValueError(f"units_per_call must be a positive int, got {units_per_call!r}")
    value = flops / units_per_call * positive_finite(throughput, "throughput") / peak_flops(peak, dtype)
    if value > 1:
        raise ValueError(f"{what} would be {100 * value:.4g}%, above the accelerator's peak: check that the "
                         "throughput counts the units one counted call covers (units_per_call) and the peak")
    return value

RECOMPUTE_MODES = (None, "selective", "full")


def hardware_flops(report: FlopReport, recompute: str | None = None, fused_attention: bool = True) -> int:
    """The FLOPs a training step runs on the hardware, for HFU (Megatron-LM's accounting):

    * the report's forward + backward FLOPs (count with ``backward=True``);
    * ``fused_attention``: a fused attention backward (FlashAttention, PyTorch's fused SDPA kernels)
      recomputes the scores ``QK^T`` instead of storing them: + half of the attention forward FLOPs
      of every ``scaled_dot_product_attention`` node;
    * ``recompute="selective"``: activation checkpointing of the attention core (Megatron's selective
      recomputation) runs it forward again: + the attention forward FLOPs;
      ``recompute="full"``: the whole forward runs again in the backward pass: + the forward FLOPs.
    """
    if not report.includes_backward:
        raise ValueError("hardware FLOPs are a training step's: count with backward=True")
    if recompute not in RECOMPUTE_MODES:
        raise ValueError(f"recompute must be one of None, 'selective', 'full'; got {recompute!r}")
    total = report.total
    if not isinstance(total, int):
        raise ValueError("evaluate a symbolic report at concrete sizes first: report.evaluate(...)")
    attention = sum(r.flops for r in report.nodes if r.category == "attention" and "scaled_dot_product" in r.target)
    if fused_attention:
        total += attention // 2
    if recompute == "selective":
        total += attention
    elif recompute == "full":
        total += report.forward
    return total


def hfu(report: FlopReport, tokens_or_samples_per_second: float, peak: float | str, units_per_call: int = 1,
        dtype: str | None = None, recompute: str | None = None, fused_attention: bool = True) -> float:
    """Hardware FLOPs utilization: :func:`hardware_flops` per second over the peak (as :func:`mfu`).
    HFU >= MFU; above 1 is impossible and raises."""
    hardware = hardware_flops(report, recompute, fused_attention)
    return _utilization(hardware, tokens_or_samples_per_second, peak, units_per_call, dtype, "HFU")

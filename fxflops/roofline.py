"""How long a counted call takes on an accelerator, by the roofline model, and what bounds it.

Per node: ``seconds = max(FLOPs / dense peak of the node's dtype, bytes / HBM bandwidth)``; the
node is ``"compute"``-bound when the first term is the larger, else ``"memory"``-bound. The call's
time is the sum over its nodes (no overlap between nodes), and its bound is the bound of the nodes
that take most of that time. FLOPs are the report's forward FLOPs; bytes its upper bound of memory
traffic (:mod:`fxflops.traffic`: no cache, no fusion). Both peaks are the vendors' dense figures,
never the sparse ones, so the estimate is a lower bound on time for the traffic the graph implies.
It has not been validated against measured times on a GPU (none was available to the project).

    >>> report = fxflops.count(model, ids)                 # doctest: +SKIP
    >>> r = report.roofline("h100")                         # doctest: +SKIP
    >>> r.total_seconds, r.bound                            # doctest: +SKIP
    (0.00452, 'memory')
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from fxflops.report import FlopReport, module_ancestors
from fxflops.utilization import PEAK_FLOPS


@dataclass(frozen=True)
class Accelerator:
    """An accelerator's dense peaks per dtype (FLOP/s) and HBM bandwidth (bytes/s), with sources."""

    name: str
    peaks: dict[str, float]
    bandwidth: float
    source: str

    def peak(self, dtype: str | None) -> float:
        """Dense peak FLOP/s for ``dtype`` (``"bfloat16"``, ``"bf16"``, ``"float32"``...). Integer and
        boolean work runs on the vector units: it gets the float32 peak."""
        key = _DTYPE_KEYS.get(dtype or "float32", dtype or "float32")
        if key not in self.peaks and key in ("int", "bool"):
            key = "fp32"
        if key not in self.peaks:
            raise ValueError(f"no published dense {key} peak for {self.name} in fxflops' table (it has "
                             f"{', '.join(self.peaks)}); pass dtype= one of those, or an Accelerator of your own")
        return self.peaks[key]


def _bf16(name: str) -> dict[str, float]:
    """The BF16 and FP16 dense peak of ``name``, from the table MFU uses (:data:`PEAK_FLOPS`)."""
    return {"bf16": PEAK_FLOPS[name].flops, "fp16": PEAK_FLOPS[name].flops}


# Vendor datasheets, dense figures (NVIDIA prints sparse ones next to them: half of those). fp32 is
# the non-tensor-core figure, which PyTorch's float32 matmuls use by default (TF32 is off).
ACCELERATORS: dict[str, Accelerator] = {
    "a100": Accelerator("a100", {**_bf16("a100"), "tf32": 156e12, "fp32": 19.5e12}, 2.039e12,
                        "NVIDIA A100 Tensor Core GPU datasheet, 80GB SXM: BF16 312, TF32 156, FP32 19.5 TFLOPS, "
                        "HBM2e 2,039 GB/s"),
    "h100-sxm": Accelerator("h100-sxm", {**_bf16("h100-sxm"), "fp8": 1978.9e12, "tf32": 494.7e12,
                                                      "fp32": 67e12},
                            3.35e12, "NVIDIA H100 Tensor Core GPU datasheet, SXM: BF16 1,979 and FP8 3,958 TFLOPS "
                            "with sparsity, TF32 989 with sparsity, FP32 67 TFLOPS, HBM3 3.35 TB/s"),
    "h100-pcie": Accelerator("h100-pcie", {**_bf16("h100-pcie"), "fp8": 1513e12, "tf32": 378e12,
                                                        "fp32": 51e12}, 2.0e12,
                             "NVIDIA H100 Tensor Core GPU datasheet, PCIe: BF16 1,513 and FP8 3,026 TFLOPS with "
                             "sparsity, FP32 51 TFLOPS, HBM2e 2 TB/s"),
    "h200": Accelerator("h200", {**_bf16("h200"), "fp8": 1978.9e12, "tf32": 494.7e12, "fp32": 67e12}, 4.8e12,
                        "NVIDIA H200 Tensor Core GPU datasheet, SXM: BF16 1,979 and FP8 3,958 TFLOPS with sparsity, "
                        "FP32 67 TFLOPS, HBM3e 4.8 TB/s"),
    "b200": Accelerator("b200", {**_bf16("b200"), "fp8": 4500e12}, 8.0e12,
                        "NVIDIA B200 datasheet (HGX, 1000 W): BF16 2.25 and FP8 4.5 PFLOPS dense, HBM3e 8 TB/s"),
    "mi300x": Accelerator("mi300x", {**_bf16("mi300x"), "fp8": 2614.9e12, "tf32": 653.7e12,
                                                  "fp32": 163.4e12},
                          5.3e12, "AMD Instinct MI300X data sheet: BF16 1307.4, FP8 2614.9, TF32 653.7, "
                          "FP32 163.4 TFLOPS dense, HBM3 5.3 TB/s"),
    "tpu-v5e": Accelerator("tpu-v5e", {"bf16": PEAK_FLOPS["tpu-v5e"].flops}, 0.819e12,
                           "Google Cloud TPU v5e documentation: 197 TFLOPS BF16 per chip, HBM2 819 GB/s"),
}

#: Names users type for the same chip.
ALIASES = {"h100": "h100-sxm", "a100-80gb": "a100", "a100-sxm": "a100", "h200-sxm": "h200", "mi300": "mi300x",
           "v5e": "tpu-v5e", "b200-sxm": "b200"}

_DTYPE_KEYS = {
    "bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "half": "fp16", "fp16": "fp16",
    "float32": "fp32", "float": "fp32", "fp32": "fp32", "float64": "fp64", "double": "fp64",
    "tf32": "tf32", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8", "float8_e4m3fnuz": "fp8",
    "float8_e5m2fnuz": "fp8", "fp8": "fp8",
    "complex64": "fp32", "int64": "int", "int32": "int", "int16": "int", "int8": "int", "uint8": "int",
    "bool": "bool",
}


def accelerator(spec: str | Accelerator) -> Accelerator:
    """The :class:`Accelerator` named ``spec`` (``"h100"``, ``"a100"``, ``"mi300x"``...)."""
    if isinstance(spec, Accelerator):
        return spec
    key = ALIASES.get(spec.strip().lower(), spec.strip().lower())
    found = ACCELERATORS.get(key)
    if found is None:
        raise ValueError(f"unknown accelerator {spec!r} for a roofline; known: {', '.join(sorted(ACCELERATORS))} "
                         "(or build an fxflops.roofline.Accelerator)")
    return found


@dataclass(frozen=True)
class NodeTime:
    """One node on the roofline."""

    name: str
    module: str
    target: str
    flops: int
    bytes: int
    dtype: str | None
    compute_seconds: float
    memory_seconds: float

    @property
    def seconds(self) -> float:
        return max(self.compute_seconds, self.memory_seconds)

    @property
    def bound(self) -> str:
        """``"compute"`` or ``"memory"``: which of the two times is the larger (ties: memory)."""
        return "compute" if self.compute_seconds > self.memory_seconds else "memory"

    @property
    def intensity(self) -> float | None:
        """FLOPs per byte, ``None`` for a node that moves nothing."""
        return self.flops / self.bytes if self.bytes else None


@dataclass
class Roofline:
    """A report placed on an accelerator's roofline: per node times, totals and the bound."""

    accelerator: Accelerator
    nodes: list[NodeTime] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        """Sum of the nodes' times: each node waits for its slower resource, nodes do not overlap."""
        return sum(node.seconds for node in self.nodes)

    @property
    def compute_seconds(self) -> float:
        """Time at peak FLOP/s with no memory traffic (the FLOPs alone)."""
        return sum(node.compute_seconds for node in self.nodes)

    @property
    def memory_seconds(self) -> float:
        """Time at full HBM bandwidth with no arithmetic (the bytes alone)."""
        return sum(node.memory_seconds for node in self.nodes)

    @property
    def bound(self) -> str:
        """The bound of the nodes that take most of :attr:`total_seconds`."""
        return self.bound_by_module(depth=0).get("", "memory")

    def by_module(self, depth: int | None = None) -> dict[str, float]:
        """Qualified module name -> seconds of its nodes (inclusive; ``""``: the whole call)."""
        totals: dict[str, float] = defaultdict(float)
        totals[""] = 0.0
        for node in self.nodes:
            for name in module_ancestors(node.module, depth):
                totals[name] += node.seconds
        return dict(totals)

    def bound_by_module(self, depth: int | None = None) -> dict[str, str]:
        """Qualified module name -> the bound of the nodes taking most of its time (ties: memory)."""
        shares: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for node in self.nodes:
            for name in module_ancestors(node.module, depth):
                shares[name][node.bound] += node.seconds
        return {name: "compute" if s["compute"] > s["memory"] else "memory" for name, s in shares.items()}

    def summary(self, per: str = "call") -> str:
        """One line: ``memory-bound: 4.52 ms per call on h100-sxm (compute 0.03 ms, memory 4.52 ms)``."""
        return (f"{self.bound}-bound: {format_seconds(self.total_seconds)} per {per} on {self.accelerator.name} "
                f"(FLOPs alone {format_seconds(self.compute_seconds)}, bytes alone "
                f"{format_seconds(self.memory_seconds)})")


def roofline(report: FlopReport, accel: str | Accelerator, dtype: str | None = None) -> Roofline:
    """Place ``report`` on ``accel``'s roofline (see the module docstring). ``dtype`` picks the peak
    for every node (``"bf16"``) instead of each node's own dtype; the bytes stay as counted."""
    chip = accelerator(accel)
    if not isinstance(report.total, int) or not isinstance(report.bytes, int):
        raise ValueError("evaluate a symbolic report at concrete sizes first: report.evaluate(...).roofline(...)")
    result = Roofline(chip)
    for record in report.nodes:
        moved = record.bytes
        if not record.flops and not moved:
            continue
        compute = record.flops / chip.peak(dtype or record.dtype) if record.flops else 0.0
        result.nodes.append(NodeTime(record.name, record.module, record.target, record.flops, moved,
                                     record.dtype, compute, moved / chip.bandwidth))
    return result


def format_seconds(seconds: float) -> str:
    """``4.52 ms``, ``310 us``, ``1.20 s``: three significant figures in a readable unit."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9), ("ps", 1e-12)):
        if seconds >= scale or unit == "ps":
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:g} s"

"""fxflops: exact, explained FLOP counts for PyTorch models.

``fxflops.count(model, inputs)`` traces the model with ``torch.fx``, propagates shapes on the meta
device (no weights touched, no forward pass run) and counts every graph node with a rule from the
registry. FLOPs are 2 per multiply-accumulate; see :mod:`fxflops.convention`.

The package imports lazily (PEP 562): ``import fxflops.pytest_plugin`` or ``fxflops.units`` does
not import torch, because the pytest plugin loads in every pytest run of an environment.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "count": "fxflops.api",
    "count_generation": "fxflops.generation",
    "GenerationReport": "fxflops.generation",
    "uncounted_message": "fxflops.api",
    "FlopReport": "fxflops.report",
    "NodeRecord": "fxflops.report",
    "NodeContext": "fxflops.context",
    "Cost": "fxflops.cost",
    "NO_BACKWARD": "fxflops.backward",
    "RuleRegistry": "fxflops.registry",
    "RuleEntry": "fxflops.registry",
    "DEFAULT_REGISTRY": "fxflops.registry",
    "rule": "fxflops.registry",
    "zero": "fxflops.registry",
    "rule_of": "fxflops.registry",
    "Convention": "fxflops.convention",
    "FxFlopsError": "fxflops.errors",
    "RuleConflictError": "fxflops.errors",
    "RuleError": "fxflops.errors",
    "TraceError": "fxflops.errors",
    "InputError": "fxflops.errors",
    "UncountedOpError": "fxflops.errors",
    "FlopBudgetError": "fxflops.errors",
    "CausalMaskWarning": "fxflops.errors",
    "assert_flops": "fxflops.budget",
    "crosscheck": "fxflops.crosscheck",
    "mfu": "fxflops.utilization",
    "peak_flops": "fxflops.utilization",
    "hfu": "fxflops.utilization",
    "hardware_flops": "fxflops.utilization",
    "compare_formulas": "fxflops.formulas",
    "PEAK_FLOPS": "fxflops.utilization",
    "Crosscheck": "fxflops.crosscheck",
    "format_flops": "fxflops.units",
    "parse_flops": "fxflops.units",
    "FlopValueError": "fxflops.units",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fxflops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from fxflops.api import count, uncounted_message
    from fxflops.backward import NO_BACKWARD
    from fxflops.budget import assert_flops
    from fxflops.context import NodeContext
    from fxflops.convention import Convention
    from fxflops.cost import Cost
    from fxflops.crosscheck import Crosscheck, crosscheck
    from fxflops.errors import (
        FlopBudgetError,
        FxFlopsError,
        InputError,
        RuleConflictError,
        RuleError,
        TraceError,
        UncountedOpError,
    )
    from fxflops.formulas import compare_formulas
    from fxflops.generation import GenerationReport, count_generation
    from fxflops.registry import DEFAULT_REGISTRY, RuleEntry, RuleRegistry, rule, rule_of, zero
    from fxflops.report import FlopReport, NodeRecord
    from fxflops.units import FlopValueError, format_flops, parse_flops
    from fxflops.utilization import PEAK_FLOPS, hardware_flops, hfu, mfu, peak_flops

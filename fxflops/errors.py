"""The exceptions fxflops raises (all derive from :class:`FxFlopsError`), and its warnings."""

from __future__ import annotations


class FxFlopsError(RuntimeError):
    """Base class of every error fxflops raises on purpose."""


class RuleConflictError(FxFlopsError):
    """A target was registered twice without ``override=True``."""


class RuleError(FxFlopsError):
    """A FLOP rule raised while counting a node; the original exception is chained."""


class TraceError(FxFlopsError):
    """The model could not be traced symbolically or its shapes could not be propagated."""


class InputError(FxFlopsError):
    """The inputs cannot run through the model as given: an op got operands a real forward refuses
    (e.g. a float16 input to a float32 ``nn.Linear``), which meta kernels alone would let pass."""


class UncountedOpError(FxFlopsError):
    """``strict=True`` and at least one graph node had no FLOP rule."""


class FlopBudgetError(FxFlopsError, AssertionError):
    """A FLOP count exceeded its budget (``fxflops.assert_flops`` or the pytest plugin)."""


class CausalMaskWarning(UserWarning):
    """``causal="exact"`` met an attention mask it could not evaluate (its data is on the meta
    device), so that attention was counted dense."""


def site_message(problem: str, node: str, module_path: str, module_type: str, source: str | None,
                 hint: str) -> str:
    """An error naming the node, its module and its source line, and what to do next."""
    module_text = f"module '{module_path}' ({module_type})" if module_path else "the root module"
    return f"{problem}\n  node: {node}\n  in {module_text}, at {source or 'unknown source line'}\n  hint: {hint}"

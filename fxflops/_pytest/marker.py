"""The ``@pytest.mark.flops(max=..., rel=..., baseline=True)`` marker.

The marker is checked when the test is set up, before its body runs: a typo such as ``mx=`` errors
that test at once, instead of silently doing nothing or failing after a long run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from fxflops._pytest.options import parse_rel
from fxflops.units import parse_flops

__all__ = ["MARKER_HELP", "MARKER_NAME", "FlopsMarker", "MarkerError"]

MARKER_NAME = "flops"

# Written by hand: docstring-derived help printed "None" for undocumented markers in pytest-memray.
MARKER_HELP = (
    "flops(*, max=None, rel=None, baseline=True): FLOP checks for this test. max is a budget "
    '("40 GFLOPs", "1.5e9", an int) for the sum of the test\'s flops-fixture measurements; rel '
    "overrides --flops-rel for its baseline comparison; baseline=False skips the committed baseline. "
    "A marked test that records no measurement fails."
)


class MarkerError(ValueError):
    """The ``flops`` marker of a test is malformed; the message says how."""


@dataclass(frozen=True)
class FlopsMarker:
    """The validated keywords of one test's ``flops`` marker."""

    max: int | None = None
    """Budget for the sum of the test's measurements, in FLOPs; ``None`` for no budget."""
    rel: float | None = None
    """Allowed relative increase over the baseline; ``None`` uses the session's ``--flops-rel``."""
    baseline: bool = True
    """Compare with (and record into) the committed baseline."""

    @classmethod
    def from_mark(cls, mark: pytest.Mark) -> FlopsMarker:
        """Validate ``mark``'s arguments; raise :class:`MarkerError` with a message for the user."""
        expected = ", ".join(sorted(field.name for field in dataclasses.fields(cls)))
        if mark.args:
            raise MarkerError(
                "flops marker takes keyword arguments only, got positional "
                f"{', '.join(map(repr, mark.args))}; "
                f"expected keywords: {expected}"
            )
        unknown = sorted(set(mark.kwargs) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise MarkerError(
                f"flops marker got unexpected keyword(s): {', '.join(unknown)}; expected: {expected}"
            )
        kwargs: dict[str, Any] = dict(mark.kwargs)
        try:
            budget = None if kwargs.get("max") is None else parse_flops(kwargs["max"])
            rel = None if kwargs.get("rel") is None else parse_rel(kwargs["rel"], "rel")
        except ValueError as e:
            raise MarkerError(f"flops marker: {e}") from None
        baseline = kwargs.get("baseline", True)
        if not isinstance(baseline, bool):
            raise MarkerError(f"flops marker: baseline must be True or False, got {baseline!r}")
        return cls(max=budget, rel=rel, baseline=baseline)

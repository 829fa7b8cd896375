"""The object behind the ``flops`` fixture."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from fxflops._pytest.failures import moved_modules_lines
from fxflops._pytest.measure import ITEM_STATE, ItemState
from fxflops._pytest.session import FlopsSession
from fxflops.budget import budget_exceeded_message
from fxflops.errors import FlopBudgetError
from fxflops.units import parse_flops

if TYPE_CHECKING:
    from fxflops.report import FlopReport

__all__ = ["FlopsFixture"]


class FlopsFixture:
    """Count a model's FLOPs inside a test, record the count, and check an optional budget.

    >>> def test_linear(flops):  # doctest: +SKIP
    ...     report = flops(torch.nn.Linear(8, 4), torch.randn(1, 8), max="64 FLOPs")
    ...     assert report.total == 64  # 2 * 8 * 4
    """

    def __init__(self, item: pytest.Item, session: FlopsSession) -> None:
        self._item = item
        self._session = session

    def __repr__(self) -> str:
        # Shown in tracebacks as the value of the ``flops`` argument.
        state = self._item.stash.get(ITEM_STATE, None)
        count = 0 if state is None else len(state.measurements)
        return f"<flops fixture of {self._item.nodeid}: {count} measurement(s)>"

    def __call__(
        self,
        model: Any,
        inputs: Any = (),
        *,
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        max: str | int | float | None = None,
        rules: Any = None,
        **count_kwargs: Any,
    ) -> FlopReport:
        """Count ``model(*inputs, **kwargs)`` with :func:`fxflops.count` and record the result.

        ``name`` distinguishes several measurements of one test in the baseline
        (``test_x[image]``); unnamed repeats are keyed ``test_x``, ``test_x.1``, ``test_x.2``.
        ``max`` (``"40 GFLOPs"``, ``1.5e9``, an int) is checked at once: a larger count raises
        :class:`fxflops.FlopBudgetError` after the measurement is recorded. ``rules`` and any other
        keyword (``method``, ``leaf_modules``, ``strict``) go to :func:`fxflops.count`.
        Returns the :class:`~fxflops.report.FlopReport`.
        """
        # Errors about the arguments point at the test's call, not at this frame.
        __tracebackhide__ = True
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"flops(name=...) must be a non-empty string, got {name!r}")
        # Parse before counting: a malformed budget should not cost a trace.
        budget = None if max is None else parse_flops(max)
        # Imported on first use: the plugin module loads in every pytest run, torch must not.
        from fxflops.api import count
        from fxflops.errors import FxFlopsError

        try:
            report = count(model, inputs, kwargs=kwargs, rules=rules, **count_kwargs)
        except FxFlopsError as e:
            # fxflops' message names the node, module, source line and what to do; the frames
            # inside fxflops and torch (hundreds of lines under pytest) add nothing to it.
            raise e.with_traceback(None) from None
        measurement = self._session.record(self._item, report, name=name, budget=budget)
        if budget is not None and measurement.total > budget:
            lines = budget_exceeded_message(
                measurement.total, budget, measurement.detail, uncounted=measurement.uncounted
            ).split("\n")
            lines.insert(1, f"measurement {measurement.key!r}, checked by flops(..., max=...)")
            lines += moved_modules_lines(measurement)
            error = FlopBudgetError("\n".join(lines))
            # Lets the makereport hook recognise this error and replace the traceback by the text.
            self._item.stash.setdefault(ITEM_STATE, ItemState()).budget_error = error
            raise error
        return report

"""What the plugin keeps about each ``flops(...)`` call and each test.

A :class:`Measurement` travels from xdist workers to the controller, so :meth:`Measurement.to_payload`
turns it into plain JSON-able values (execnet sends only builtin types).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import pytest

from fxflops._pytest.marker import FlopsMarker

__all__ = ["ITEM_STATE", "ItemState", "Measurement", "Status", "node_key"]


class Status:
    """How a measurement compares with its committed baseline entry."""

    NEW = "new"
    """No baseline entry yet."""
    MATCHED = "matched"
    """Equal to the baseline, or within the allowed tolerance."""
    INCREASED = "increased"
    """Above the baseline by more than the tolerance."""
    IMPROVED = "improved"
    """Below the baseline."""
    UNREADABLE = "unreadable"
    """The baseline file could not be read."""
    UNCHECKED = "unchecked"
    """Not compared: ``baseline=False`` on the marker."""


@dataclass
class Measurement:
    """One ``flops(model, inputs)`` call of one test."""

    nodeid: str
    """pytest node id of the test (``tests/test_clip.py::test_towers``)."""
    test: str
    """Node id within its module (``TestClip::test_towers[cpu]``): the test part of baseline keys."""
    key: str
    """Baseline entry key: ``test``, then ``[name]`` if named, then ``.1``, ``.2`` for repeats."""
    baseline_file: str
    """Absolute path of the baseline file of the test's module."""
    total: int
    """Measured FLOPs."""
    modules: dict[str, int]
    """Non-zero ``by_module(depth=1)``: written to the baseline to show where a change came from."""
    convention: str
    """The counting convention of the report (``default``)."""
    budget: int | None = None
    """The call's ``max=``, in FLOPs."""
    uncounted: str | None = None
    """Summary of ops without a rule, if any."""
    use_baseline: bool = True
    """False when the test's marker says ``baseline=False``."""
    rel: float = 0.0
    """Tolerance used for the baseline comparison."""
    baseline: int | None = None
    """The baseline's total for ``key``, once compared and found."""
    status: str = Status.UNCHECKED
    """A :class:`Status` value, once compared."""
    detail: dict[str, int] = field(default_factory=dict, repr=False)
    """``by_module(depth=2)`` for failure messages; stays in the process that measured."""
    baseline_modules: dict[str, int] = field(default_factory=dict, repr=False)
    """The committed baseline entry's ``by_module`` (depth 1), when there is one: failure messages
    list the modules that changed against it."""

    @property
    def display(self) -> str:
        """The node id with the entry key in place of the test name (``test_a.py::test_x[image]``)."""
        return self.nodeid[: len(self.nodeid) - len(self.test)] + self.key

    def to_payload(self) -> dict[str, Any]:
        """Return a dict of builtin values, without :attr:`detail`."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "detail"}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Measurement:
        """Rebuild a measurement sent by :meth:`to_payload`."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class ItemState:
    """The plugin's state for one test item, in ``item.stash[ITEM_STATE]``."""

    marker: FlopsMarker | None = None
    """The validated marker, or ``None`` when the test has none."""
    measurements: list[Measurement] = field(default_factory=list)
    """Every ``flops(...)`` call of the test, in order."""
    budget_error: BaseException | None = None
    """The ``FlopBudgetError`` the fixture raised, to give it a clean report."""

    def next_key(self, test: str, name: str | None) -> str:
        """Return the baseline key for the next measurement: ``test[name]``, repeats ``.1``, ``.2``."""
        base = f"{test}[{name}]" if name else test
        used = {m.key for m in self.measurements}
        key, repeat = base, 0
        while key in used:
            repeat += 1
            key = f"{base}.{repeat}"
        return key


ITEM_STATE = pytest.StashKey[ItemState]()


def node_key(item: pytest.Item) -> str:
    """Return the node id of ``item`` within its module: ``TestX::test_y[1]``."""
    _, sep, rest = item.nodeid.partition("::")
    return rest if sep else item.name

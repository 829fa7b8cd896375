"""Third-party rule packs, found through the entry-point group ``fxflops.rules``.

A pack declares, in its ``pyproject.toml``::

    [project.entry-points."fxflops.rules"]
    mypack = "mypack.flops"            # a module whose import registers rules with @fxflops.rule
    other = "otherpack.flops:register"  # or a callable, called with the default RuleRegistry

Packs are loaded once, on the first count.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points

from fxflops.registry import DEFAULT_REGISTRY

ENTRY_POINT_GROUP = "fxflops.rules"
_loaded = False


def load_rule_packs() -> None:
    """Import every installed rule pack once; a pack that fails to load is reported, not fatal."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
            if callable(loaded):
                loaded(DEFAULT_REGISTRY)
        except Exception as e:  # a broken pack must not break every count
            warnings.warn(
                f"fxflops rule pack {entry_point.name!r} ({entry_point.value}) failed to load: "
                f"{type(e).__name__}: {e}",
                stacklevel=2,
            )

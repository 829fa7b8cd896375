"""Rules for ops of libraries fxflops does not depend on, registered once they are imported.

torchvision and timm wrap some functions with ``torch.fx.wrap`` so that tracing keeps them as
single ``call_function`` nodes; their rules are added here the first time a count runs after
the library was imported (fxflops never imports them itself).
"""

from __future__ import annotations

import sys

from fxflops.registry import DEFAULT_REGISTRY

_done: set[str] = set()


def _torchvision() -> None:
    from torchvision.ops import stochastic_depth
    from torchvision.ops.stochastic_depth import StochasticDepth

    # Stochastic depth drops whole residual branches (a mask, identity in eval): 0 FLOPs.
    DEFAULT_REGISTRY.zero(stochastic_depth, StochasticDepth)


_LIBRARIES = {"torchvision": _torchvision}


def register_imported() -> None:
    """Register the rules of every supported library that is imported by now (once each)."""
    for name, register in _LIBRARIES.items():
        if name not in _done and name in sys.modules:
            _done.add(name)
            register()

"""``torch.autocast(device_type="meta")`` while counting: models that ask for it work on meta.

Models build an autocast context from a tensor's device, ``torch.autocast(device_type=x.device.type,
enabled=False)`` (diffusers' Helios keeps its rotary positions in float32 this way). fxflops runs
models on meta tensors, and torch has no autocast for "meta": the constructor raises ``unsupported
scalarType``, where the same model runs on any real device. While a count runs, an autocast asked
for on "meta" is one on "cpu" instead. That changes nothing for meta tensors: autocast applies to
the tensors of its own device, and meta tensors are not CPU tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch.amp import autocast_mode


@contextlib.contextmanager
def autocast_on_meta() -> Iterator[None]:
    """Within the block, ``torch.autocast("meta", ...)`` is ``torch.autocast("cpu", ...)``. Not
    reentrant-safe across threads by itself: :func:`fxflops.api.count` holds its lock around it."""
    original = autocast_mode.autocast.__init__

    def init(self: Any, device_type: str, *args: Any, **kwargs: Any) -> None:
        original(self, "cpu" if device_type == "meta" else device_type, *args, **kwargs)

    autocast_mode.autocast.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        autocast_mode.autocast.__init__ = original  # type: ignore[method-assign]

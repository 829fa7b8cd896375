"""Build models on the meta device without paying for weight initialisation.

On the meta device a tensor has a shape and a dtype but no data, so initialising weights computes
nothing, yet it is not free: ``trunc_normal_``, ``clamp_``, ``uniform_`` and friends still run
their meta kernels, several of them Python reference implementations. For a large timm tower
that is most of the time spent building (a second for ViT-SO400M). :func:`skip_meta_init` skips
in-place ops on meta tensors altogether.

Only ops that write into their first argument and leave its shape, strides and dtype unchanged
are skipped; in-place view ops (``transpose_``, ``squeeze_``, ``as_strided_``) and ``resize_``/
``set_`` change metadata and still run. The model that comes out has the same parameters and
buffers, with the same shapes and dtypes, as without the mode.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# In-place ops that change their argument's metadata without carrying the inplace_view tag.
_METADATA_CHANGING = frozenset({"resize_", "resize_as_", "set_", "requires_grad_"})


@functools.cache
def _skippable(op: torch._ops.OpOverload) -> bool:
    """True when ``op`` only writes data into its first argument (which it returns)."""
    schema = op._schema
    if not schema.arguments or not schema.returns or op.__name__.split(".")[0] in _METADATA_CHANGING:
        return False
    if torch.Tag.inplace_view in op.tags:
        return False
    first = schema.arguments[0].alias_info
    result = schema.returns[0].alias_info
    return bool(first is not None and first.is_write and result is not None and result.is_write
                and not schema.arguments[0].kwarg_only)


class skip_meta_init(TorchDispatchMode):  # noqa: N801  (used like a function: `with skip_meta_init():`)
    """Within this mode, in-place data writes into meta tensors return at once.

    >>> with skip_meta_init(), torch.device("meta"):  # doctest: +SKIP
    ...     model = timm.create_model("vit_so400m_patch14_siglip_384")
    """

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        if args and isinstance(args[0], torch.Tensor) and args[0].is_meta and _skippable(func):
            return args[0]
        return func(*args, **(kwargs or {}))

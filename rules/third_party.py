"""Rules for ops of libraries fxflops does not depend on, registered once they are imported.

torchvision and timm wrap some functions with ``torch.fx.wrap`` so that tracing keeps them as
single ``call_function`` nodes; their rules are added here the first time a count runs after
the library was imported (fxflops never imports them itself).
"""

from __future__ import annotations

import sys

from fxflops import known_values
from fxflops.context import NodeContext
from fxflops.registry import DEFAULT_REGISTRY

from .by_convention import INTERPOLATION_PER_NEIGHBOUR

_done: set[str] = set()


def roi_align_flops(ctx: NodeContext) -> int:
    """``torchvision.ops.roi_align``: each output bin averages ``s_h * s_w`` bilinear samples of 4
    neighbours, so ``2 * 4 * numel(out) * s_h * s_w`` under the interpolation constant (2 per
    neighbour read, as ``F.interpolate``). ``s`` is ``sampling_ratio``; where it is adaptive
    (``<= 0``: ``ceil(roi_size / pooled_size)`` per box), it is read from the boxes when their
    values are known (counting with data) and taken as 2 otherwise (torchvision's detectors use 2).
    Not counted under the default convention (interpolation is not matmul-class work).
    """
    rois = ctx.args[1]
    spatial_scale, pooled_h, pooled_w, ratio = (float(ctx.args[2]), int(ctx.args[3]), int(ctx.args[4]),
                                                int(ctx.args[5]))
    channels = ctx.args[0].shape[1]
    per_neighbour = ctx.convention.constant("interpolation", INTERPOLATION_PER_NEIGHBOUR)
    bins = channels * pooled_h * pooled_w
    if ratio > 0:
        samples = rois.shape[0] * ratio * ratio
    else:
        boxes = known_values.known(rois)
        if boxes is None or boxes.device.type != "cpu":
            samples = rois.shape[0] * 4
        else:
            height = ((boxes[:, 4] - boxes[:, 2]) * spatial_scale).clamp(min=1.0)
            width = ((boxes[:, 3] - boxes[:, 1]) * spatial_scale).clamp(min=1.0)
            samples = int(((height / pooled_h).ceil() * (width / pooled_w).ceil()).sum())
    return per_neighbour * 4 * bins * samples


def _torchvision() -> None:
    import torch
    from torchvision.ops import stochastic_depth
    from torchvision.ops.stochastic_depth import StochasticDepth

    # Stochastic depth drops whole residual branches (a mask, identity in eval): 0 FLOPs.
    DEFAULT_REGISTRY.zero(stochastic_depth, StochasticDepth)
    # Non-maximum suppression selects boxes, as sort and topk select values: 0, as they count
    # (its IoU comparisons are selection work; FlopCounterMode counts 0 too).
    DEFAULT_REGISTRY.zero(torch.ops.torchvision.nms)
    DEFAULT_REGISTRY.add(torch.ops.torchvision.roi_align, roi_align_flops, category="interpolation")


_LIBRARIES = {"torchvision": _torchvision}


def register_imported() -> None:
    """Register the rules of every supported library that is imported by now (once each)."""
    for name, register in _LIBRARIES.items():
        if name not in _done and name in sys.modules:
            _done.add(name)
            register()

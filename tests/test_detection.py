"""torchvision detectors counted on a real image: their shapes follow the data (anchors, NMS, masks).

The reference is FlopCounterMode around the same model's forward on the same image.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import fxflops
from fxflops.convention import resolve_convention

torchvision = pytest.importorskip("torchvision")


def _detector(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    # weights_backbone=None: no ImageNet download
    return torchvision.models.get_model(name, weights=None, weights_backbone=None).eval()


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 320, 320, generator=torch.Generator().manual_seed(seed))


def _reference(model: torch.nn.Module, images: list[torch.Tensor]) -> int:
    with FlopCounterMode(display=False) as counter:
        model(images)
    return counter.get_total_flops()


@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large"])
def test_detector_on_a_real_image_equals_flop_counter_mode(name: str) -> None:
    model, images = _detector(name), [_image()]
    report = fxflops.count(model, (images,))
    assert report.total == _reference(model, images)
    assert report.routing == "data"  # counted on the image's data: the meta run could not decide NMS
    assert report.uncounted == []
    assert not model.training


def test_detector_on_meta_says_it_needs_the_image() -> None:
    model = _detector("fasterrcnn_mobilenet_v3_large_320_fpn").to("meta")
    with pytest.raises(fxflops.TraceError, match="pass the model with real weights and real inputs"):
        fxflops.count(model, ([torch.empty(3, 320, 320, device="meta")],))


def test_roi_align_counts_its_bilinear_samples_under_the_full_convention() -> None:
    from torchvision.ops import roi_align

    class Pool(torch.nn.Module):
        def forward(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
            return roi_align(features, boxes, output_size=(7, 7), spatial_scale=1.0, sampling_ratio=2)

    boxes = torch.tensor([[0, 0.0, 0.0, 14.0, 14.0], [0, 2.0, 2.0, 31.0, 9.0]])
    report = fxflops.count(Pool(), (torch.rand(1, 8, 32, 32), boxes), convention="full")
    # 2 boxes * 8 channels * 7 * 7 bins = 784 bins; * 2 * 2 samples * 4 neighbours * 2 FLOPs = 25,088
    assert report.total == 25_088
    assert fxflops.count(Pool(), (torch.rand(1, 8, 32, 32), boxes)).total == 0  # not matmul-class work

    class Adaptive(torch.nn.Module):
        def forward(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
            return roi_align(features, boxes, output_size=(7, 7), spatial_scale=1.0, sampling_ratio=-1)

    report = fxflops.count(Adaptive(), (torch.rand(1, 8, 32, 32), boxes), convention="full")
    # adaptive: ceil(h / 7) * ceil(w / 7) samples per bin: box 1 is 14 x 14 -> 2 * 2 = 4,
    # box 2 is 7 high, 29 wide -> 1 * 5 = 5: (4 + 5) * 8 * 49 * 4 * 2 = 28,224
    assert report.total == 28_224
    assert resolve_convention("full").constant("interpolation", 2) == 2

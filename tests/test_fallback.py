"""trace="auto" and trace="export": models torch.fx cannot follow are still counted exactly."""

from __future__ import annotations

import pytest
import torch
from flop_testing import meta
from torch import nn

import fxflops
from fxflops import TraceError


class SizeGate(nn.Module):
    """Branches on a size: torch.fx cannot trace it, but it runs (and exports) fine."""

    def __init__(self) -> None:
        super().__init__()
        self.small = nn.Linear(16, 32)
        self.large = nn.Linear(16, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            return self.large(x)[..., :32] * 2
        return self.small(x)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(8, 16)
        self.gate = SizeGate()
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gate(self.stem(x)))


def test_auto_counts_the_untraceable_submodule_by_running_it() -> None:
    report = fxflops.count(Net(), meta(4, 8))
    # stem 2*4*8*16 = 1,024; gate takes the large branch at batch 4: 2*4*16*64 = 8,192; head 2*4*32*4 = 1,024
    assert report.total == 10_240
    assert report.trace == "auto"
    assert list(report.fallbacks) == ["gate"]
    assert "control flow" in report.fallbacks["gate"]
    # the fallback is run on meta tensors: its nodes are as readable as the traced ones
    by_module = {r.module: r for r in report.nodes if r.flops}
    assert by_module["stem"].op == "call_module" and by_module["stem"].target == "torch.nn.Linear"
    assert by_module["gate.large"].op == "call_module" and by_module["gate.large"].target == "torch.nn.Linear"
    assert by_module["gate.large"].source.endswith("test_fallback.py:24")
    assert report.by_module(depth=1) == {"": 10_240, "gate": 8_192, "head": 1_024, "stem": 1_024}


def test_auto_follows_the_branch_the_inputs_take() -> None:
    report = fxflops.count(Net(), meta(2, 8))
    # batch 2 takes the small branch: 2*2*8*16 + 2*2*16*32 + 2*2*32*4 = 512 + 2,048 + 512
    assert report.total == 3_072


def test_symbolic_mode_refuses_and_names_the_module() -> None:
    with pytest.raises(TraceError, match=r"in module 'gate'.*control flow(.|\n)*hint: count with trace='auto'"):
        fxflops.count(Net(), meta(4, 8), trace="symbolic")


def test_export_mode_counts_the_whole_model_at_aten_level() -> None:
    report = fxflops.count(Net(), meta(4, 8), trace="export")
    # same arithmetic as above: 1,024 + 8,192 + 1,024
    assert report.total == 10_240
    assert report.trace == "export" and report.fallbacks == {"": "trace='export' was requested"}
    assert {r.module for r in report.nodes if r.flops} == {"stem", "gate.large", "head"}


class DictOutput(nn.Module):
    """Keyword inputs and a non-tensor output, as Hugging Face models have."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, *, use_cache: bool = True, scale: torch.Tensor | None = None) -> dict:
        out = self.proj(x)
        if scale is not None:
            out = out @ scale
        return {"out": out, "cache": (out,) if use_cache else None}


def test_dict_outputs_and_keyword_inputs() -> None:
    report = fxflops.count(DictOutput(), meta(3, 8), kwargs={"use_cache": False, "scale": meta(8, 8)})
    # proj 2*3*8*8 = 384; (3,8)@(8,8) = 384
    assert report.total == 768
    exported = fxflops.count(DictOutput(), meta(3, 8), kwargs={"use_cache": False, "scale": meta(8, 8)},
                             trace="export")
    assert exported.total == 768
    # the default call (use_cache=True) returns the cache too: the same 768
    assert fxflops.count(DictOutput(), meta(3, 8), kwargs={"scale": meta(8, 8)}).total == 768


def test_value_dependent_branches_give_a_clear_error() -> None:
    class ValueGate(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # needs the data: neither fx nor fake tensors can decide it
                return x @ x.T
            return x

    # The error names the module, the line that reads the value, and what to do.
    with pytest.raises(TraceError, match=r"Tensor.item\(\) cannot be called on meta tensors(.|\n)*"
                                         r"test_fallback.py:\d+(.|\n)*hint: the model reads tensor values"):
        fxflops.count(ValueGate(), meta(4, 4))


def test_hugging_face_gpt2_with_its_defaults() -> None:
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model("gpt2")).eval()
    report = fxflops.count(model, meta(1, 128, dtype=torch.long))  # use_cache=True: a DynamicCache comes out
    # 247,064,064 * 128 (linear) + 36,864 * 128**2 (attention), see test_zoo_models
    assert report.total == 32_228_179_968
    assert report.trace == "run"
    assert report.fallbacks == {"": "torch.fx could not trace the top level: counted by running it on meta tensors"}
    # 124,439,808 parameters (the tied lm_head counted once)
    assert report.params == 124_439_808
    # lm_head: 2 * 128 * 768 * 50,257
    assert report.by_module(depth=1)["lm_head"] == 9_880_928_256
    assert report.uncounted == []


class _RowsThenMask(nn.Module):
    """torch.fx cannot iterate over a proxy's size, so this submodule goes to torch.export, which
    leaves the size of ``x[mask]`` symbolic (Mochi's text mask, in diffusers)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        rows = [x[i] for i in range(x.shape[0])]
        return self.proj(torch.stack(rows)[mask])


class _MaskedTop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sub = _RowsThenMask()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.sub(x, mask) * 2


def test_a_size_export_leaves_symbolic_is_counted_by_running_with_the_data() -> None:
    mask = torch.tensor([True, False, True, True, False])
    report = fxflops.count(_MaskedTop(), (torch.empty(5, 8, device="meta"), mask))
    # the mask keeps 3 rows: Linear 2 * 3 * 8 * 4 = 192 (the * 2 is 0 by convention)
    assert report.total == 192 and report.trace == "run"

"""``fxflops zoo open_clip``: OpenCLIP's model profile table, regenerated offline.

The reference is ``tests/data/open_clip_model_profile.csv`` (rows of OpenCLIP's published
``model_profile.csv``, FlopCounterMode, batch 1, towers counted separately, 2 decimals). The whole
zoo is timed by ``benchmarks/zoo_open_clip.py``; here a representative subset of the families runs
in-process: native ViT, ModifiedResNet, timm ConvNeXt, SigLIP (timm tower, 64 tokens) and EVA02.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import pytest

from fxflops import zoo
from fxflops.cli import main
from fxflops.progress import Progress

TABLE = Path(__file__).parent / "data" / "open_clip_model_profile.csv"
REFERENCE = {row["model"]: row for row in csv.DictReader(TABLE.open())}
SUBSET = ["ViT-B-32", "RN50", "convnext_tiny", "ViT-B-16-SigLIP", "EVA02-B-16"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_csv_reproduces_published_rows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "zoo", "open_clip", *SUBSET, "--format", "csv", "--jobs", "1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == ",".join(zoo.OPEN_CLIP_COLUMNS)
    rows = {row["model"]: row for row in csv.DictReader(io.StringIO(out))}
    assert list(rows) == SUBSET
    for name in SUBSET:
        for column in zoo.OPEN_CLIP_COLUMNS[1:]:
            assert float(rows[name][column]) == float(REFERENCE[name][column]), (name, column)
    # Byte for byte where OpenCLIP's CSV prints 2 decimals too.
    # ViT-B-32: image 8.82 (50 tokens) + text 5.96 = 14.78 GFLOPs.
    assert "ViT-B-32,224,768,512,512,151.28,87.85,63.43,14.78,8.82,5.96" in lines
    # RN50: image 12.22 (ModifiedResNet with its AttentionPool2d over 7*7+1 tokens) + text 5.96.
    assert "RN50,224,64,512,1024,102.01,38.32,63.69,18.18,12.22,5.96" in lines
    assert "fxflops: 5 of 5 models profiled" in err


def test_exact_columns() -> None:
    rows = zoo.open_clip_table(["ViT-B-16"], exact=True)
    # Image tower (224 px, patch 16: 197 tokens, width 768, 12 layers), FLOPs = 2 * MACs:
    #   patch conv 2*196*768*(3*16*16) = 231,211,008; QKV 2*12*197*768*2304 = 8,366,063,616;
    #   out-proj 2*12*197*768*768 = 2,788,687,872; MLP 2*12*2*197*768*3072 = 22,309,502,976;
    #   QK^T and AV 2*2*12*197^2*768 = 1,430,654,976; CLS projection 2*768*512 = 786,432
    #   -> 35,126,906,880.
    # Text tower (77 tokens, width 512, 12 layers): 5,959,540,736. Whole: 41,086,447,616.
    assert rows == [{
        "model": "ViT-B-16", "image_size": 224, "image_width": 768, "text_width": 512, "embed_dim": 512,
        "params": 149620737, "image_params": 86192640, "text_params": 63428096,
        "flops": 41086447616, "image_flops": 35126906880, "text_flops": 5959540736,
    }]


def test_one_count_row_equals_three_count_row() -> None:
    # The table counts the whole model once and reads the towers off its module totals;
    # open_clip_row counts each tower on its own. Both must give the same integers.
    assert zoo.open_clip_profile_row("RN50", exact=True) == zoo.open_clip_row("RN50", exact=True)


def test_failures_are_reported_and_the_run_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    # roberta-ViT-B-32's text tower is a Hugging Face model: AutoConfig needs the Hub, even with
    # pretrained_hf=False, so it cannot be built offline. Hub offline mode makes it fail at once.
    code, out, err = run(capsys, "zoo", "open_clip", "roberta-ViT-B-32", "ViT-B-32", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["format"] == 1 and data["columns"] == list(zoo.OPEN_CLIP_COLUMNS)
    assert [row["model"] for row in data["rows"]] == ["ViT-B-32"]
    # ViT-B-32: image 8.82 + text 5.96 = 14.78 GFLOPs
    assert (data["rows"][0]["image_gflops"], data["rows"][0]["text_gflops"], data["rows"][0]["gflops"]) == (
        8.82, 5.96, 14.78)
    [failure] = data["failures"]
    assert failure["model"] == "roberta-ViT-B-32" and failure["stage"] == "build"
    assert "Hugging Face text tower" in failure["hint"]
    assert "fxflops: skipped roberta-ViT-B-32: cannot build:" in err


def test_no_row_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "zoo", "open_clip", "roberta-ViT-B-32", "--format", "csv")
    assert code == 2
    assert out.splitlines() == [",".join(zoo.OPEN_CLIP_COLUMNS)]
    assert "fxflops: error: no model could be profiled" in err


def test_unknown_name_fails_before_counting(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "zoo", "open_clip", "ViT-B-32", "ViT-B-61")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "fxflops: error: open_clip has no model named 'ViT-B-61'",
        "hint: did you mean open_clip:ViT-B-16 or open_clip:ViT-g-14 or open_clip:ViT-e-14?",
    ]


def test_table_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "zoo", "open_clip", "RN50")
    assert code == 0
    header, _, row = out.splitlines()
    assert header.split() == list(zoo.OPEN_CLIP_COLUMNS)
    assert row.split() == ["RN50", "224", "64", "512", "1024", "102.01", "38.32", "63.69", "18.18", "12.22",
                           "5.96"]


def test_hub_offline_restores_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    constants = sys.modules.get("huggingface_hub.constants")
    before = getattr(constants, "HF_HUB_OFFLINE", None)
    with zoo.hub_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1"
        if constants is not None:
            assert constants.HF_HUB_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in os.environ
    assert getattr(constants, "HF_HUB_OFFLINE", None) == before


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    log = io.StringIO()
    with Progress(2, log) as bar:
        bar.advance("RN50")
        bar.write("fxflops: skipped x")
    assert log.getvalue() == "fxflops: skipped x\n"  # no bar, no carriage returns in logs

    terminal = _Terminal()
    with Progress(2, terminal) as bar:
        bar.start("ViT-B-32")
        bar.advance("RN50")
        assert bar.render().startswith("[############............] 1/2  0:00  RN50")
        bar.write("fxflops: skipped x")
    text = terminal.getvalue()
    assert "\r[" in text and "fxflops: skipped x\n" in text
    assert text.endswith("\r")  # closed: the bar is blanked out


@pytest.mark.skipif(os.cpu_count() == 1, reason="one core: no parallel run to test")
def test_worker_processes_give_the_same_rows() -> None:
    names = ["ViT-B-32", "RN50"]
    parallel = zoo.open_clip_table(names, jobs=2)
    assert parallel == [_published_row(name) for name in names]  # in the order of names


def _published_row(name: str) -> dict[str, object]:
    """A row of the published table, typed as open_clip_table returns it."""
    row = REFERENCE[name]
    return {column: (row[column] if column == "model" else
                     int(row[column]) if column in ("image_size", "image_width", "text_width", "embed_dim")
                     else float(row[column]))
            for column in zoo.OPEN_CLIP_COLUMNS}


def test_zoo_transformers_counts_model_types_from_their_default_configs(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    assert main(["zoo", "transformers", "gpt2", "--format", "json", "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = data["rows"] if isinstance(data, dict) else data
    (row,) = [r for r in rows if r["model"] == "gpt2"]
    # GPT-2 at 128 tokens: 12 * (2*128*7,077,888 + 4*128^2*768) + 2*128*768*50257 (the LM head)
    # = 12 * 1,862,270,976 + 9,880,928,256 = 32,228,179,968
    assert row["flops"] == 32_228_179_968
    assert row["uncounted"] == 0

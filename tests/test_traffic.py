"""Bytes moved (fxflops.traffic) and the roofline (fxflops.roofline), with hand arithmetic.

Every engine (torch.fx, the run on meta tensors, torch.export) must give the same bytes, as it
gives the same FLOPs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxflops
from fxflops.roofline import ACCELERATORS, Accelerator, accelerator, format_seconds

ENGINES = ["symbolic", "run", "export"]


class _MatMul(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b


@pytest.mark.parametrize("trace", ENGINES)
def test_linear_bf16_reads_its_weights_and_input_and_writes_its_output(trace: str) -> None:
    layer = nn.Linear(4096, 4096, device="meta", dtype=torch.bfloat16)
    report = fxflops.count(layer, torch.empty(1, 4096, dtype=torch.bfloat16, device="meta"), trace=trace)
    # weight 4096*4096 + bias 4096 + input 4096 elements, 2 bytes each: 2 * 16,785,408 = 33,570,816
    assert report.bytes_read == 2 * (4096**2 + 4096 + 4096) == 33_570_816
    # output 1x4096 in bf16: 8,192
    assert report.bytes_written == 2 * 4096 == 8_192
    assert [n.dtype for n in report.nodes if n.bytes] == ["bfloat16"]
    # 2 * 4096 * 4096 = 33,554,432 FLOPs over 33,579,008 bytes: 0.9993 FLOPs/byte, memory-bound anywhere
    assert [n.intensity for n in report.nodes if n.bytes] == [2 * 4096**2 / (33_570_816 + 8_192)]


@pytest.mark.parametrize("trace", ENGINES)
def test_fp32_matmul_moves_both_operands_and_the_result(trace: str) -> None:
    report = fxflops.count(_MatMul(), (torch.empty(64, 128), torch.empty(128, 32)), trace=trace)
    # (64*128 + 128*32 + 64*32) * 4 bytes = (8192 + 4096 + 2048) * 4 = 57,344
    assert report.bytes == (64 * 128 + 128 * 32 + 64 * 32) * 4 == 57_344


@pytest.mark.parametrize("trace", ENGINES)
def test_embedding_reads_only_the_rows_it_gathers(trace: str) -> None:
    table = nn.Embedding(1000, 64)
    report = fxflops.count(table, torch.zeros(2, 3, dtype=torch.long), trace=trace)
    # 6 int64 indices (48 bytes) + 6 rows of 64 float32 (1,536 bytes), not the 256,000-byte table
    assert report.bytes_read == 6 * 8 + 6 * 64 * 4 == 1_584
    assert report.bytes_written == 6 * 64 * 4 == 1_536


class _ViewsAndBroadcast(nn.Module):
    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        y = x.view(8, 4).t()  # views: nothing moves
        return y + bias.expand(4, 8)  # the expanded bias is read as its 8 elements


@pytest.mark.parametrize("trace", ["symbolic", "run"])
def test_views_move_nothing_and_expanded_inputs_count_once(trace: str) -> None:
    report = fxflops.count(_ViewsAndBroadcast(), (torch.empty(32), torch.empty(1, 8)), trace=trace)
    moved = {n.target: (n.bytes_read, n.bytes_written) for n in report.nodes if n.op != "placeholder"}
    assert moved["Tensor.view"] == moved["Tensor.t"] == moved["Tensor.expand"] == (0, 0)
    # add reads y (32 floats) and the bias (8 floats): 160 bytes; writes 32 floats: 128 bytes
    add = "operator.add" if trace == "symbolic" else "Tensor.add"  # as each engine sees `y + bias`
    assert moved[add] == (32 * 4 + 8 * 4, 32 * 4) == (160, 128)


def test_in_place_update_writes_what_it_changes() -> None:
    class Accumulate(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x.add_(y)

    report = fxflops.count(Accumulate(), (torch.empty(16), torch.empty(16)), trace="run")
    node = next(n for n in report.nodes if n.target == "Tensor.add_")
    # reads x and y (2 * 64 bytes), writes x (64 bytes)
    assert (node.bytes_read, node.bytes_written) == (128, 64)


def test_bytes_survive_json_and_evaluate() -> None:
    report = fxflops.count(nn.Linear(8, 4), torch.empty(2, 8, device="meta"), dynamic={0: {0: "B"}})
    # weight 32 + bias 4 floats = 144 bytes, input 8*B floats = 32*B; output 4*B floats = 16*B
    assert str(report.bytes) == "48*B + 144"
    concrete = report.evaluate(B=3)
    assert concrete.bytes == 48 * 3 + 144 == 288
    assert fxflops.FlopReport.from_json(concrete.to_json()).bytes == 288
    assert fxflops.FlopReport.from_json(report.to_json()).evaluate(B=3).bytes == 288


def test_bytes_and_intensity_by_module() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    report = fxflops.count(model, torch.empty(1, 8, device="meta"))
    moved = report.bytes_by_module()
    # layer 0: reads (8*16 + 16 + 8) floats = 152 * 4 = 608, writes 16 * 4 = 64 -> 672
    assert moved["0"] == 672
    # layer 1 (ReLU): reads and writes 16 floats: 128
    assert moved["1"] == 128
    # layer 2: reads (16*4 + 4 + 16) * 4 = 336, writes 4 * 4 = 16 -> 352
    assert moved["2"] == 352
    assert moved[""] == 672 + 128 + 352 == 1_152
    # FLOPs: 2*8*16 = 256 and 2*16*4 = 128
    assert report.intensity()["0"] == 256 / 672
    assert report.intensity()[""] == (256 + 128) / 1_152


def test_large_bf16_gemm_is_compute_bound_at_the_dense_peak() -> None:
    a = torch.empty(8192, 8192, dtype=torch.bfloat16, device="meta")
    b = torch.empty(8192, 8192, dtype=torch.bfloat16, device="meta")
    line = fxflops.count(_MatMul(), (a, b)).roofline("h100")
    # 2 * 8192^3 = 1,099,511,627,776 FLOPs at 989.4 TFLOP/s = 1.1113 ms; bytes 3 * 8192^2 * 2 = 402,653,184
    # at 3.35 TB/s = 0.120 ms
    assert line.bound == "compute"
    assert line.total_seconds == pytest.approx(2 * 8192**3 / 989.4e12)
    assert line.memory_seconds == pytest.approx(3 * 8192**2 * 2 / 3.35e12)
    assert line.nodes[0].intensity == pytest.approx(2 * 8192**3 / (3 * 8192**2 * 2))  # 2730.7 FLOPs/byte


def test_llama3_8b_decode_token_moves_its_weights_and_is_memory_bound() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config).to(torch.bfloat16)
    report = fxflops.count(model, torch.zeros(1, 1, dtype=torch.long, device="meta"))
    params = sum(p.numel() for p in model.parameters())
    embedding = model.model.embed_tokens.weight.numel()
    # 8,030,261,248 parameters, 525,336,576 of them the input embedding (read one row per token):
    # 2 bytes * (8,030,261,248 - 525,336,576) = 15,009,849,344 bytes of weights
    assert (params, embedding) == (8_030_261_248, 525_336_576)
    assert report.bytes == pytest.approx(2 * (params - embedding), rel=0.01)
    line = report.roofline("h100")
    assert line.bound == "memory"
    assert line.total_seconds == pytest.approx(report.bytes / 3.35e12, rel=0.01)  # about 4.49 ms
    assert line.summary().startswith("memory-bound: 4.49 ms per call on h100-sxm")


def test_each_node_uses_the_peak_of_its_dtype() -> None:
    fp32 = fxflops.count(_MatMul(), (torch.empty(4096, 4096, device="meta"),
                                     torch.empty(4096, 4096, device="meta")))
    # 2 * 4096^3 = 137,438,953,472 FLOPs at A100's 19.5 TFLOP/s (float32, no tensor cores) = 7.05 ms
    assert fp32.roofline("a100").compute_seconds == pytest.approx(2 * 4096**3 / 19.5e12)
    # dtype= picks the bf16 peak instead: 312 TFLOP/s
    assert fp32.roofline("a100", dtype="bf16").compute_seconds == pytest.approx(2 * 4096**3 / 312e12)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: accelerator("tpu-v9"), "unknown accelerator 'tpu-v9' for a roofline; known: a100, b200, h100-pcie, "
                                    "h100-sxm, h200, mi300x, tpu-v5e (or build an fxflops.roofline.Accelerator)"),
    (lambda: ACCELERATORS["b200"].peak("float32"),
     "no published dense fp32 peak for b200 in fxflops' table (it has bf16, fp16, fp8); pass dtype= one of those, "
     "or an Accelerator of your own"),
])
def test_roofline_mistakes(call, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        call()
    assert str(excinfo.value) == message


def test_accelerator_table_holds_the_published_bandwidths() -> None:
    bandwidths = {name: chip.bandwidth for name, chip in ACCELERATORS.items()}
    assert bandwidths == {"a100": 2.039e12, "h100-sxm": 3.35e12, "h100-pcie": 2.0e12, "h200": 4.8e12,
                          "b200": 8.0e12, "mi300x": 5.3e12, "tpu-v5e": 0.819e12}
    assert accelerator("H100") is ACCELERATORS["h100-sxm"]
    custom = Accelerator("mine", {"bf16": 1e15}, 1e12, "made up")
    assert accelerator(custom) is custom


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (1.5, 0.00452, 3.1e-4, 2e-9, 5.73e-11)] == \
        ["1.5 s", "4.52 ms", "310 us", "2 ns", "57.3 ps"]


TINY = """
import torch
from torch import nn


def tiny():
    return nn.Linear(8, 4), torch.zeros(1, 8)
"""


def test_cli_roofline_in_bf16(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from fxflops.cli import main

    path = tmp_path / "tiny.py"
    path.write_text(TINY)
    assert main(["count", f"{path}:tiny", "--roofline", "h100", "--dtype", "bf16", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)["roofline"]
    # bf16: reads (8*4 weight + 4 bias + 8 input) * 2 = 88 bytes, writes 4 * 2 = 8 bytes
    assert (data["bytes_read"], data["bytes_written"], data["bytes"]) == (88, 8, 96)
    # 64 FLOPs / 989.4e12 = 6.5e-14 s < 96 bytes / 3.35e12 = 2.87e-11 s: memory-bound
    assert data["bound"] == "memory" and data["seconds"] == pytest.approx(96 / 3.35e12)
    assert main(["count", f"{path}:tiny", "--roofline", "h100"]) == 0
    out = capsys.readouterr().out.splitlines()
    # float32: (32 + 4 + 8) * 4 + 4 * 4 = 192 bytes, 64 / 192 = 0.3 FLOPs/byte, 192 / 3.35e12 = 57.3 ps;
    # 64 FLOPs at H100's float32 67 TFLOP/s: 0.955 ps
    assert any(line.split() == ["(total)", "64", "FLOPs", "192", "B", "0.3", "57.3", "ps", "memory"] for line in out)
    assert out[-1] == "memory-bound: 57.3 ps per call on h100-sxm (FLOPs alone 0.955 ps, bytes alone 57.3 ps)"


def test_peak_flops_by_dtype_are_dense() -> None:
    from fxflops.utilization import peak_flops

    # H100 SXM datasheet: FP8 3,958 and TF32 989 TFLOPS "with sparsity": dense is half
    assert peak_flops("h100", "fp8") == 1978.9e12
    assert peak_flops("h100-sxm", "tf32") == 494.7e12
    assert peak_flops("h100-sxm") == peak_flops("h100-sxm", "bf16") == 989.4e12
    assert peak_flops("a100", "fp32") == 19.5e12
    with pytest.raises(ValueError, match=r"^no published dense fp8 peak for a100 in fxflops' table"):
        peak_flops("a100", "fp8")
    with pytest.raises(ValueError, match=r"^fxflops' table has only the bf16 dense peak of 'l4', not 'fp8'$"):
        peak_flops("l4", "fp8")


def test_mfu_takes_the_dtype_of_the_peak() -> None:
    report = fxflops.count(nn.Linear(4096, 4096, bias=False, device="meta"), torch.empty(1, 4096, device="meta"))
    # 2 * 4096^2 = 33,554,432 FLOPs per call at 1e6 calls/s = 3.36e13 FLOP/s:
    # 3.39% of H100's bf16 989.4 TFLOP/s, 1.70% of its fp8 1978.9 TFLOP/s
    assert fxflops.mfu(report, 1e6, "h100-sxm") == pytest.approx(33_554_432e6 / 989.4e12)
    assert fxflops.mfu(report, 1e6, "h100-sxm", dtype="fp8") == pytest.approx(33_554_432e6 / 1978.9e12)


class NormOfTransposed(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.layer_norm(x.transpose(1, 2), (4,))
        return z.transpose(1, 2).contiguous()


@pytest.mark.parametrize("trace", ["symbolic", "run"])
def test_layer_norm_output_is_contiguous_so_a_later_contiguous_copies(trace: str) -> None:
    """timm's PVT-v2 stages: layer_norm of a transposed tensor, transposed back, ``.contiguous()``.
    torch's layer_norm returns a contiguous output whatever its input's layout, so the transpose back
    is not contiguous and ``.contiguous()`` copies it (torch.fx once kept the input's layout)."""
    report = fxflops.count(NormOfTransposed(), torch.empty(1, 4, 36, device="meta"), trace=trace)
    copy = next(n for n in report.nodes if n.name == "contiguous")
    # reads and writes 1 * 4 * 36 float32 elements: 144 * 4 bytes * 2 = 1152
    assert copy.bytes == 1152

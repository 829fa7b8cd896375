"""The roofline picture: LLaMA-3-8B's heaviest modules on an accelerator's roofline, as a PNG.

Counts LLaMA-3-8B's shape (no weights, meta device) in bf16 twice, a 2048-token prefill and one
decode token with a KV cache of 2048, and places each transformer block's attention and MLP, and the
LM head, at (arithmetic intensity, attained FLOP/s) under the accelerator's compute roof and
memory slope. Prefill points sit near or under the roof, decode points far down the slope: the
picture of why decode is memory-bound.

    python -m benchmarks.roofline_plot                   # H100, writes benchmarks/roofline_h100.png
    python -m benchmarks.roofline_plot --accelerator mi300x --out /tmp/roofline.png

Needs matplotlib (not an fxflops dependency). The times are the roofline model's, with
fxflops' traffic upper bound (no cache, no fusion), not measurements: no GPU was available.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import fxflops
from fxflops.roofline import accelerator, format_seconds

HERE = Path(__file__).resolve().parent


def llama3_8b() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192,
                         rope_theta=500000.0)
    with torch.device("meta"):
        return LlamaForCausalLM(config).to(torch.bfloat16).eval()


def points(report: fxflops.FlopReport, chip_name: str) -> dict[str, tuple[float, float]]:
    """Module kind -> (FLOPs/byte, attained FLOP/s) for the heaviest modules of one call."""
    line = report.roofline(chip_name)
    flops = report.by_module()
    moved = report.bytes_by_module()
    seconds = line.by_module()
    picked = {"attention (block 0)": "model.layers.0.self_attn", "MLP (block 0)": "model.layers.0.mlp",
              "LM head": "lm_head", "whole model": ""}
    return {label: (flops[name] / moved[name], flops[name] / seconds[name]) for label, name in picked.items()
            if moved.get(name) and seconds.get(name)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", default="h100")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    chip = accelerator(args.accelerator)
    out = args.out or HERE / f"roofline_{args.accelerator}.png"

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = llama3_8b()
    prompt = torch.zeros(1, 2048, dtype=torch.long, device="meta")
    prefill = fxflops.count(model, prompt, kwargs={"logits_to_keep": 1})
    generation = fxflops.count_generation(model, prompt, 2)
    decode = generation.steps[0]

    peak, bandwidth = chip.peaks["bf16"], chip.bandwidth
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=120)
    ridge = peak / bandwidth
    xs = [0.1, ridge, 1e5]
    axes.plot(xs, [min(peak, x * bandwidth) for x in xs], color="black", linewidth=2,
              label=f"{chip.name} roofline: bf16 {peak / 1e12:g} TFLOP/s, HBM {bandwidth / 1e12:g} TB/s")
    for name, report, marker in (("prefill, 2048 tokens", prefill, "o"), ("decode, 1 token", decode, "s")):
        for label, (intensity, attained) in points(report, chip.name).items():
            # A legend, not annotations: a call's modules sit on top of each other.
            axes.scatter([intensity], [attained], marker=marker, s=60, zorder=5, alpha=0.8,
                         label=f"{label}, {name}: {intensity:.3g} FLOPs/byte")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("arithmetic intensity (FLOPs per byte moved)")
    axes.set_ylabel("attained FLOP/s (roofline model)")
    prefill_time = prefill.roofline(chip.name).total_seconds
    decode_time = decode.roofline(chip.name).total_seconds
    axes.set_title(f"LLaMA-3-8B bf16 on {chip.name}: prefill {format_seconds(prefill_time)}, "
                   f"decode {format_seconds(decode_time)}/token (estimates, not measured)", fontsize=10)
    axes.legend(loc="lower right", fontsize=7)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(out)
    print(f"wrote {out}: prefill {format_seconds(prefill_time)} ({prefill.roofline(chip.name).bound}-bound), "
          f"decode {format_seconds(decode_time)} per token ({decode.roofline(chip.name).bound}-bound)")


if __name__ == "__main__":
    main()

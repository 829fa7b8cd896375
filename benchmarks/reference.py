"""Exact FLOP counts by hand arithmetic, in the convention fxflops and OpenCLIP's table use.

2 FLOPs per multiply-accumulate over linear layers, convolutions, matmuls and the two attention
matmuls (QK^T and AV, counted dense even under a causal mask); bias adds, norms, activations and
softmax cost 0. These closed forms are what the accuracy table's references are checked against.
"""

from __future__ import annotations


def linear(tokens: int, fan_in: int, fan_out: int) -> int:
    """A dense layer applied to ``tokens`` rows."""
    return 2 * tokens * fan_in * fan_out


def attention_core(tokens: int, width: int) -> int:
    """QK^T and AV over all heads: ``2 * 2 * T^2 * width`` (head count cancels out)."""
    return 2 * 2 * tokens * tokens * width


def transformer_layers(tokens: int, width: int, mlp: int, layers: int) -> int:
    """Pre-/post-norm transformer blocks: QKV, out-projection, 2-layer MLP, attention core."""
    per_layer = (
        linear(tokens, width, 3 * width)
        + linear(tokens, width, width)
        + linear(tokens, width, mlp)
        + linear(tokens, mlp, width)
        + attention_core(tokens, width)
    )
    return layers * per_layer


def patch_embed(image: int, patch: int, width: int, channels: int = 3) -> int:
    """A stride-``patch`` convolution that cuts the image into patches."""
    patches = (image // patch) ** 2
    return 2 * patches * width * channels * patch * patch


def open_clip_vit_b_16() -> dict[str, int]:
    """OpenCLIP ViT-B-16, batch 1: image 224 px (197 tokens, width 768, 12 layers, MLP 3072,
    projection to 512 on the CLS token only) and text 77 tokens (width 512, 12 layers, MLP 2048,
    projection 512 on the EOT token only). See shared/reference/openclip.md section 3."""
    image = patch_embed(224, 16, 768) + transformer_layers(197, 768, 3072, 12) + linear(1, 768, 512)
    text = transformer_layers(77, 512, 2048, 12) + linear(1, 512, 512)
    return {"image": image, "text": text, "whole": image + text}


def torchvision_vit_b_16() -> int:
    """torchvision ``vit_b_16``: the same 197-token encoder, then a 768 -> 1000 head on CLS."""
    return patch_embed(224, 16, 768) + transformer_layers(197, 768, 3072, 12) + linear(1, 768, 1000)


def transformer_encoder(tokens: int, width: int, mlp: int, layers: int) -> int:
    """``nn.TransformerEncoder`` of ``nn.TransformerEncoderLayer``s."""
    return transformer_layers(tokens, width, mlp, layers)


def lstm(steps: int, batch: int, input_size: int, hidden: int, layers: int) -> int:
    """Unidirectional ``nn.LSTM``: per step and layer, 4 gates x (input + recurrent) matmuls."""
    total = 0
    for layer in range(layers):
        layer_input = input_size if layer == 0 else hidden
        total += 2 * 4 * hidden * (layer_input + hidden)
    return total * steps * batch


def gpt2(tokens: int, width: int = 768, layers: int = 12, vocab: int = 50257) -> int:
    """GPT-2 (small) logits for ``tokens`` tokens: 12 blocks with a 4x MLP, then the tied
    vocabulary projection on every token; the causal mask is counted dense."""
    return transformer_layers(tokens, width, 4 * width, layers) + linear(tokens, width, vocab)

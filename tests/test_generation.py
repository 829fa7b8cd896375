"""count_generation: what model.generate() computes, a prefill and decode steps with a KV cache."""

from __future__ import annotations

import itertools

import pytest
import torch
from flop_testing import meta
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import fxflops

transformers = pytest.importorskip("transformers")


def test_gpt2_prefill_and_decode_steps_follow_the_published_formulas() -> None:
    with torch.device("meta"):
        gpt2 = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model("gpt2"))
    report = fxflops.count_generation(gpt2, meta(1, 8, dtype=torch.long), new_tokens=4)
    # prefill of P tokens: 169,869,312 * P (every linear but the LM head) + 77,194,752 (the LM head on the
    #   last position only, as generate() asks) + 36,864 * P**2 (attention)
    #   P = 8: 1,358,954,496 + 77,194,752 + 2,359,296 = 1,438,508,544
    assert report.prefill.total == 1_438_508_544
    # decode step with p cached tokens: 247,064,064 (2 per parameter) + 36,864 * (p + 1)
    #   p = 8, 9, 10: 247,395,840, 247,432,704, 247,469,568
    assert report.step_costs() == [247_395_840, 247_432_704, 247_469_568]
    # 1,438,508,544 + 742,298,112
    assert report.total == 2_180_806_656 and len(report.steps) == 3
    # 247,064,064 + 36,864 * (p + 1) = 36,864 * p + 247,100,928
    assert report.step_formula() == "36864*p + 247100928"


@pytest.mark.parametrize(
    ("model_type", "config"),
    [("gpt2", {"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 128, "n_positions": 64}),
     ("llama", {"vocab_size": 128, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2})],
)
def test_total_equals_flop_counter_mode_around_generate(model_type: str, config: dict) -> None:
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(model_type, **config))
    model.eval()
    ids = torch.randint(0, 128, (1, 8))
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model.generate(ids, max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=0)
    report = fxflops.count_generation(model, ids, new_tokens=5)
    assert report.total == counter.get_total_flops()
    assert len(report.steps) == 4
    # each step attends to one more cached token: the steps grow by a constant
    steps = report.step_costs()
    assert len({b - a for a, b in itertools.pairwise(steps)}) == 1 and steps[1] > steps[0]


def test_one_new_token_is_the_prefill_alone() -> None:
    with torch.device("meta"):
        gpt2 = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model("gpt2", n_layer=1))
    report = fxflops.count_generation(gpt2, meta(1, 4, dtype=torch.long), new_tokens=1)
    assert report.steps == [] and report.total == report.prefill.total


def test_bad_arguments_are_refused() -> None:
    with torch.device("meta"):
        gpt2 = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model("gpt2", n_layer=1))
    with pytest.raises(ValueError, match="new_tokens must be a positive int"):
        fxflops.count_generation(gpt2, meta(1, 4, dtype=torch.long), new_tokens=0)
    with pytest.raises(TypeError, match="2-D tensor of token ids"):
        fxflops.count_generation(gpt2, meta(4, dtype=torch.long), new_tokens=2)


_SEQ2SEQ = {
    "t5": {"num_layers": 2, "d_model": 64, "d_ff": 128, "num_heads": 4, "d_kv": 16, "vocab_size": 128},
    "bart": {"encoder_layers": 2, "decoder_layers": 2, "d_model": 64, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128,
             "encoder_attention_heads": 4, "decoder_attention_heads": 4, "vocab_size": 128,
             "max_position_embeddings": 64},
}


@pytest.mark.parametrize("model_type", sorted(_SEQ2SEQ))
def test_encoder_decoder_generation_equals_flop_counter_mode_around_generate(model_type: str) -> None:
    config = transformers.AutoConfig.for_model(model_type, **_SEQ2SEQ[model_type])
    config.decoder_start_token_id, config.bos_token_id, config.pad_token_id, config.eos_token_id = 0, 0, 0, 1
    torch.manual_seed(0)
    model = transformers.AutoModelForSeq2SeqLM.from_config(config).eval()
    ids = torch.randint(3, 128, (1, 12))
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        model.generate(ids, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    report = fxflops.count_generation(model, meta(1, 12, dtype=torch.long), new_tokens=5)
    assert report.total == counter.get_total_flops()
    # Per decoder layer, one token, c decoder tokens in context, P = 12 encoder tokens, d = 64:
    #   self-attention projections 4 * 2*64*64 = 32,768; scores and values 2 * 2*64*c = 256c;
    #   cross-attention q and o 2 * 2*64*64 = 16,384 (its k and v come from the cache); its scores and
    #   values 2 * 2*64*12 = 3,072; feed-forward 2 * 2*64*128 = 32,768: 84,992 + 256c
    # 2 layers and the LM head 2*64*128 = 16,384: a step costs 186,368 + 512c; steps have c = 2..5
    assert report.step_costs() == [186_368 + 512 * c for c in (2, 3, 4, 5)] == [187_392, 187_904, 188_416, 188_928]
    # prefill: the encoder, 2 * (4 * 2*12*64*64 + 2 * 2*12*12*64 + 2 * 2*12*64*128) = 1,646,592, then the first
    # decoder step (c = 1) 186,880 and its cross-attention keys and values 2 * 2 * 2*12*64*64 = 393,216
    assert report.prefill.total == 1_646_592 + 186_880 + 393_216 == 2_226_688


def test_whisper_generation_from_audio_features_equals_flop_counter_mode_around_generate() -> None:
    config = transformers.WhisperConfig(
        vocab_size=128, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80, max_source_positions=50,
        max_target_positions=64, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, bos_token_id=0)
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(config).eval()
    features = torch.randn(1, 80, 100)  # 100 mel frames; the encoder's stride-2 convolution keeps 50
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        model.generate(features, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    report = fxflops.count_generation(model, features.to("meta"), new_tokens=4)
    assert report.total == counter.get_total_flops()
    # Per decoder layer, one token, c decoder tokens in context, 50 encoder frames, d = 64:
    #   self-attention 4 * 2*64*64 = 32,768 + scores and values 2 * 2*64*c = 256c; cross-attention q and o
    #   2 * 2*64*64 = 16,384 + its scores and values 2 * 2*64*50 = 12,800; feed-forward 2 * 2*64*128 = 32,768
    # 2 layers (189,440 + 512c) and the output projection 2*64*128 = 16,384: 205,824 + 512c, c = 2..4
    assert report.step_costs() == [205_824 + 512 * c for c in (2, 3, 4)] == [206_848, 207_360, 207_872]

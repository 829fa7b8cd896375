"""``fxflops.count_generation``: what ``model.generate()`` computes, prefill and decode steps.

Generating ``N`` new tokens from a prompt of ``P`` tokens with a KV cache is one *prefill*
forward over the prompt (which yields the first new token) and ``N - 1`` *decode steps* of one
token each, step ``k`` attending over the ``P + k`` tokens in the cache. Counted here as
``generate(input_ids, max_new_tokens=N, min_new_tokens=N, do_sample=False)`` computes it, by
running the same forward calls on a meta clone of the model (:class:`fxflops.recorder.MetaSession`),
the cache one call returns passed to the next:

* the prefill passes ``logits_to_keep=1`` where the model takes it, as ``generate()`` does: the
  LM head runs on the last prompt position only;
* each decode step feeds one token per sequence with the cache, ``use_cache=True``;
* greedy decoding's argmax and the stopping checks are not model work (0 FLOPs, not counted).

Encoder-decoder models (T5, BART, Marian...) are counted as ``generate()`` runs them: the prefill
is the encoder over the prompt and the first decoder step on the decoder start token (its
cross-attention keys and values go into the cache), then ``N - 1`` decoder steps of one token,
each attending over its own growing self-attention cache and the fixed encoder output, with
``encoder_outputs`` passed so the encoder is not run again. State-space models (Mamba) need no
special case: their cache is a fixed-size state, so every decode step costs the same.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fxflops.report import FlopReport


@dataclass
class GenerationReport:
    """The FLOPs of generating ``new_tokens`` tokens: the prefill and every decode step.

    Attributes:
        prefill: the forward over the prompt (it yields the first new token).
        steps: one report per decode step, ``new_tokens - 1`` of them; ``steps[k]`` feeds the
            ``k + 2``-th new token with ``prompt + k + 1`` tokens in the cache.
        prompt_tokens, new_tokens: sizes of the generation counted.
    """

    prefill: FlopReport
    steps: list[FlopReport] = field(default_factory=list)
    prompt_tokens: int = 0
    new_tokens: int = 0

    @property
    def total(self) -> int:
        """FLOPs of the whole generation: the prefill plus every decode step."""
        return self.prefill.total + sum(step.total for step in self.steps)

    @property
    def decode(self) -> int:
        """FLOPs of the decode steps alone."""
        return sum(step.total for step in self.steps)

    def step_costs(self) -> list[int]:
        """FLOPs of each decode step, in order."""
        return [step.total for step in self.steps]

    def step_formula(self) -> str:
        """The decode-step cost as a polynomial in ``p``, the number of tokens in the cache.

        Fitted to the counted steps (``p = prompt, ..., prompt + new_tokens - 2``) as
        ``a + b * p`` and checked against every one of them, so it is exact wherever the model's
        step cost is affine in the context (dense attention); a model whose steps are not (a
        sliding window that fills up) raises instead of extrapolating. Needs two steps
        (``new_tokens >= 3``). GPT-2: ``36864*p + 247100928``.
        """
        import sympy

        costs = self.step_costs()
        if len(costs) < 2:
            raise ValueError("a step formula needs at least two decode steps: count with new_tokens >= 3")
        slope = costs[1] - costs[0]
        first = self.prompt_tokens
        intercept = costs[0] - slope * first
        for index, cost in enumerate(costs):
            if intercept + slope * (first + index) != cost:
                raise ValueError(f"decode steps are not affine in the context length (step {index + 1} costs "
                                 f"{cost:,}, the line through the first two says "
                                 f"{intercept + slope * (first + index):,}): use step_costs()")
        p = sympy.Symbol("p", integer=True, nonnegative=True)
        return str(sympy.expand(intercept + slope * p))

    def summary(self) -> str:
        """A few lines: the prefill, the decode steps (first and last), the total."""
        lines = [f"generation: {self.prompt_tokens} prompt tokens + {self.new_tokens} new tokens "
                 f"(prefill, then {len(self.steps)} decode steps with a KV cache)",
                 f"prefill: {self.prefill.total:,} FLOPs"]
        if self.steps:
            lines.append(f"decode:  {self.decode:,} FLOPs ({self.steps[0].total:,} for the first step, "
                         f"{self.steps[-1].total:,} for the last)")
            costs = self.step_costs()
            growth = {b - a for a, b in itertools.pairwise(costs)}
            if growth == {0}:
                lines.append("cache:   every decode step costs the same (a fixed-size state, or a full window)")
            elif len(growth) == 1:
                lines.append(f"cache:   each decode step costs {growth.pop():,} FLOPs more than the one before "
                             "(attention over one more cached token)")
        lines.append(f"total:   {self.total:,} FLOPs")
        return "\n".join(lines)

    def roofline(self, accelerator: Any, dtype: str | None = None) -> GenerationRoofline:
        """The prefill and every decode step on ``accelerator``'s roofline
        (:meth:`FlopReport.roofline`): the prefill is usually compute-bound, decode memory-bound."""
        return GenerationRoofline(self.prefill.roofline(accelerator, dtype),
                                  [step.roofline(accelerator, dtype) for step in self.steps])


@dataclass
class GenerationRoofline:
    """Roofline times of a generation: the prefill, and one per decode step."""

    prefill: Any
    steps: list[Any] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return self.prefill.total_seconds + sum(step.total_seconds for step in self.steps)

    @property
    def seconds_per_token(self) -> float | None:
        """Mean decode-step time (``None`` with no decode step)."""
        return sum(step.total_seconds for step in self.steps) / len(self.steps) if self.steps else None

    def summary(self) -> str:
        """``prefill: 12.3 ms (compute-bound); decode: 4.52 ms per token (memory-bound); total ...``."""
        from fxflops.roofline import format_seconds

        name = self.prefill.accelerator.name
        lines = [f"prefill: {format_seconds(self.prefill.total_seconds)} on {name} ({self.prefill.bound}-bound)"]
        per_token = self.seconds_per_token
        if per_token is not None:
            bounds = {step.bound for step in self.steps}
            bound = bounds.pop() if len(bounds) == 1 else "mixed"
            lines.append(f"decode:  {format_seconds(per_token)} per token on {name} ({bound}-bound, mean of "
                         f"{len(self.steps)} steps)")
        lines.append(f"total:   {format_seconds(self.total_seconds)} (roofline estimate, not validated on a GPU)")
        return "\n".join(lines)


def count_generation(
    model: nn.Module,
    input_ids: torch.Tensor,
    new_tokens: int,
    *,
    convention: Any = "default",
    rules: Any = None,
    leaf_modules: Sequence[type | str] = (),
    **forward_kwargs: Any,
) -> GenerationReport:
    """Count ``model.generate(input_ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
    do_sample=False)`` without running it (see the module docstring).

    ``forward_kwargs`` are passed to every forward call (e.g. ``attention_mask`` is built by
    ``generate`` and need not be given). The model is left as it was.

    >>> # doctest: +SKIP
    >>> report = fxflops.count_generation(gpt2, ids, new_tokens=32)
    >>> report.prefill.total, len(report.steps), report.total
    """
    from fxflops.api import _COUNT_LOCK, build_report, prepare_registry
    from fxflops.convention import resolve_convention
    from fxflops.recorder import MetaSession

    encoder_decoder = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
    if not isinstance(input_ids, torch.Tensor) or (input_ids.dim() != 2 and not encoder_decoder):
        raise TypeError("input_ids must be a 2-D tensor of token ids, (batch, prompt length); an encoder-decoder "
                        "also takes its encoder's input features, e.g. Whisper's (batch, mel bins, frames)")
    if not isinstance(new_tokens, int) or isinstance(new_tokens, bool) or new_tokens < 1:
        raise ValueError(f"new_tokens must be a positive int, got {new_tokens!r}")
    with _COUNT_LOCK:
        registry = prepare_registry(rules)
        resolved = resolve_convention(convention)
        session = MetaSession(model, registry=registry, convention=resolved, leaf_modules=leaf_modules)
        batch, prompt = input_ids.shape[0], input_ids.shape[-1]  # ids: tokens; audio features: frames
        takes = set(inspect.signature(model.forward).parameters)
        kwargs = dict(forward_kwargs)
        kwargs.setdefault("use_cache", True) if "use_cache" in takes else None
        if "logits_to_keep" in takes and not encoder_decoder:
            kwargs.setdefault("logits_to_keep", 1)
        if encoder_decoder:
            if "decoder_input_ids" not in takes:
                raise NotImplementedError(f"{type(model).__name__}.forward takes no decoder_input_ids: its "
                                          "generation cannot be counted step by step")
            # generate() starts the decoder from one start token per sequence.
            kwargs["decoder_input_ids"] = torch.empty((input_ids.shape[0], 1), dtype=torch.long, device="meta")
        recording = session.call((input_ids,), kwargs)
        name = type(model).__name__
        # transformers 5 names the cache argument "cache" ("past_key_values" before).
        cache_name = "cache" if "cache" in takes else "past_key_values"

        def report(recording: Any, label: str) -> FlopReport:
            params = sum(p.numel() for p in recording.used_parameters.values())
            built = build_report(f"{name} ({label})", recording.records, params, resolved, causal="dense",
                                 backward=False, trace="run",
                                 fallbacks={"": "generation is counted by running the model on meta tensors"})
            built.routing = recording.routing
            return built

        label = (f"encoder over {prompt} tokens and the first decoder step" if encoder_decoder
                 else f"prefill of {prompt} tokens")
        result = GenerationReport(prefill=report(recording, label), prompt_tokens=prompt, new_tokens=new_tokens)
        cache = _cache_of(recording.output)
        encoded = _encoder_output(recording.output) if encoder_decoder else None
        for step in range(1, new_tokens):
            if cache is None:
                raise NotImplementedError(f"{name} returned no past_key_values: its decode steps cannot be counted "
                                          "with a KV cache (is use_cache supported?)")
            ids = torch.empty((batch, 1), dtype=torch.long, device="meta")
            if encoder_decoder:
                step_kwargs = {**kwargs, "decoder_input_ids": ids, "encoder_outputs": encoded, cache_name: cache}
                recording = session.call((), step_kwargs)
                context = f"{step + 1} decoder tokens in context, cross-attending {prompt}"
            else:
                recording = session.call((ids,), {**kwargs, cache_name: cache})
                context = f"{prompt + step} tokens in context"
            result.steps.append(report(recording, f"decode step {step}, {context}"))
            cache = _cache_of(recording.output) or cache
    return result


def _encoder_output(output: Any) -> Any:
    """``(encoder_last_hidden_state,)`` of an encoder-decoder forward's output, for the decoder steps'
    ``encoder_outputs`` (as ``generate()`` keeps it)."""
    hidden = output.get("encoder_last_hidden_state") if isinstance(output, dict) else \
        getattr(output, "encoder_last_hidden_state", None)
    if hidden is None:
        raise NotImplementedError("the encoder-decoder forward returned no encoder_last_hidden_state: its decoder "
                                  "steps cannot be counted without running the encoder again")
    return (hidden,)


def _cache_of(output: Any) -> Any:
    """The KV cache a Hugging Face forward returned (``cache``, formerly ``past_key_values``), or ``None``."""
    for name in ("cache", "past_key_values"):
        found = output.get(name) if isinstance(output, dict) else getattr(output, name, None)
        if found is not None:
            return found
    return None

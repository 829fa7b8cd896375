"""The published LLM FLOP formulas next to the exact count, with each difference by term.

``compare_formulas(report, config, tokens)`` evaluates, for one sequence of ``tokens`` tokens at
batch 1, the formulas LLM papers and trainers use (``../shared/reference/llm-formulas.md``):

* **Kaplan et al. 2020**: ``2N + 2 L T d_attn`` per token, ``N`` the non-embedding parameters;
* **Chinchilla** (Hoffmann et al. 2022, appendix F): every matmul of the model written out, plus
  the input embedding as a matmul (``2 V d`` per token) and the softmax (``3 H T`` per token and
  layer);
* **PaLM / torchtitan**: ``6N + 12 L H Q T`` per token for training, ``N`` all parameters but the
  input embedding (torchtitan's ``num_flops_per_token``), so forward ``2N + 4 L H Q T``;
* **Megatron-LM** (Narayanan et al. 2021): ``L (24 T d^2 + 4 T^2 d) + 2 T d V``, which assumes
  ``d_ff = 4d``, full multi-head attention and an untied LM head.

Training counts (a report made with ``backward=True``) are 3x the forward formulas, as every one
of these papers takes them. Each formula is split into the same four terms as the exact count:

* ``weights``: products with weight matrices (projections, MLPs), the LM head excluded;
* ``attention``: the score and value products (``QK^T`` and ``AV``), which no weight holds;
* ``lm_head``: the output projection to the vocabulary;
* ``other``: what a formula adds that the exact count does not hold under its convention (the
  embedding as a matmul, the softmax), and in the exact count whatever is left.

so that ``difference`` names the term that differs: a formula counting norm weights as matmul
parameters shows it in ``weights``, one ignoring the LM head in ``lm_head``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fxflops.report import FlopReport

TERMS = ("weights", "attention", "lm_head", "other")

#: Targets of products between activations (no weight): attention scores and values when a model
#: computes them eagerly.
_ACTIVATION_PRODUCTS = ("matmul", "bmm", "baddbmm", "einsum")


@dataclass(frozen=True)
class Shape:
    """What the formulas read from a model config."""

    layers: int
    width: int
    heads: int
    head_dim: int
    vocab: int
    ffw: int
    #: Parameters outside embedding tables (Kaplan's N) and outside the input embedding only (PaLM's N).
    non_embedding_params: int
    params_without_input_embedding: int


def shape_of(config: Any, report: FlopReport) -> Shape:
    """The :class:`Shape` of a Hugging Face config (GPT-2 and LLaMA field names) and the report's
    parameter counts (embedding tables are the modules of type ``Embedding``)."""
    def field_of(*names: str, default: Any = None) -> Any:
        for name in names:
            value = getattr(config, name, None)
            if value is not None:
                return value
        if default is None:
            raise ValueError(f"the config has none of {', '.join(names)}: pass a config with the model's sizes")
        return default

    layers = field_of("num_hidden_layers", "n_layer", "num_layers")
    width = field_of("hidden_size", "n_embd", "d_model")
    heads = field_of("num_attention_heads", "n_head")
    head_dim = getattr(config, "head_dim", None) or width // heads
    vocab = field_of("vocab_size")
    ffw = field_of("intermediate_size", "n_inner", "ffn_dim", default=4 * width) or 4 * width
    tables = {name: report.module_params.get(name, 0) for name, kind in report.module_types.items()
              if kind == "Embedding"}
    embedding = sum(tables.values())
    token_table = max(tables.values(), default=0)  # the input embedding: the largest table
    return Shape(layers, width, heads, head_dim, vocab, ffw, report.params - embedding, report.params - token_table)


@dataclass(frozen=True)
class Estimate:
    """One formula's FLOPs for the sequence, by term, and its difference from the exact count."""

    name: str
    terms: dict[str, int]
    exact: dict[str, int]
    assumptions: str

    @property
    def total(self) -> int:
        return sum(self.terms.values())

    @property
    def difference(self) -> dict[str, int]:
        """Formula minus exact, per term (positive: the formula counts more)."""
        return {term: self.terms.get(term, 0) - self.exact.get(term, 0) for term in TERMS}

    @property
    def relative(self) -> float:
        exact = sum(self.exact.values())
        return (self.total - exact) / exact if exact else 0.0


@dataclass
class FormulaComparison:
    """The exact count by term, and every formula's estimate next to it."""

    tokens: int
    training: bool
    exact: dict[str, int]
    estimates: list[Estimate] = field(default_factory=list)

    @property
    def exact_total(self) -> int:
        return sum(self.exact.values())

    def table(self) -> str:
        """One row per formula: total, difference, and the terms that differ."""
        from tabulate import tabulate

        what = "forward + backward" if self.training else "forward"
        rows = [["exact (fxflops)", f"{self.exact_total:,}", "", ""]]
        for estimate in self.estimates:
            differs = ", ".join(f"{term} {value:+,}" for term, value in estimate.difference.items() if value)
            rows.append([estimate.name, f"{estimate.total:,}", f"{100 * estimate.relative:+.2f}%", differs or "-"])
        head = f"{what} FLOPs of one sequence of {self.tokens} tokens, batch 1"
        exact = ", ".join(f"{term} {value:,}" for term, value in self.exact.items())
        table = tabulate(rows, headers=["formula", "FLOPs", "vs exact", "difference by term"],
                         disable_numparse=True, colalign=("left", "right", "right", "left"))
        notes = "\n".join(f"  {estimate.name}: {estimate.assumptions}" for estimate in self.estimates)
        return f"{head}\n{table}\nexact by term: {exact}\nassumptions:\n{notes}\n"


def exact_terms(report: FlopReport) -> dict[str, int]:
    """The report's FLOPs in the four :data:`TERMS`."""
    from fxflops.report import _role

    terms = dict.fromkeys(TERMS, 0)
    for record in report.nodes:
        if record.op in ("placeholder", "output", "get_attr") or not record.total_flops:
            continue
        name = record.target.rsplit(".", 1)[-1].lower()
        if _role(record) == "lm_head":
            terms["lm_head"] += record.total_flops
        elif (record.category == "attention" and "multiheadattention" not in name) or \
                (record.category == "matmul" and name in _ACTIVATION_PRODUCTS):
            terms["attention"] += record.total_flops
        elif record.category in ("matmul", "conv", "attention", "recurrent"):
            terms["weights"] += record.total_flops
        else:
            terms["other"] += record.total_flops
    return terms


def compare_formulas(report: FlopReport, config: Any, tokens: int | None = None) -> FormulaComparison:
    """Kaplan, Chinchilla, PaLM/torchtitan and Megatron next to ``report`` (one sequence of
    ``tokens`` tokens, batch 1; read from the report's first input when not given)."""
    if not isinstance(report.total, int):
        raise ValueError("evaluate a symbolic report at concrete sizes first: report.evaluate(...)")
    if tokens is None:
        # The token ids the first embedding lookup reads: (1, T).
        lookup = next((r for r in report.nodes if "embedding" in r.target.lower() and r.input_shapes), None)
        shape = lookup.input_shapes[0] if lookup is not None else ()
        if len(shape) != 2 or shape[0] != 1:
            raise ValueError("pass tokens=: the report's first embedding lookup does not read one sequence of "
                             "token ids (1, T)")
        tokens = int(shape[1])
    s = shape_of(config, report)
    t, d, layers, attn = tokens, s.width, s.layers, s.heads * s.head_dim
    factor = 3 if report.includes_backward else 1
    exact = exact_terms(report)

    def estimate(name: str, weights: int, attention: int, lm_head: int, other: int, assumptions: str) -> Estimate:
        terms = {"weights": factor * weights, "attention": factor * attention, "lm_head": factor * lm_head,
                 "other": factor * other}
        return Estimate(name, terms, exact, assumptions)

    head = 2 * t * d * s.vocab
    result = FormulaComparison(t, report.includes_backward, exact)
    # Kaplan: 2N per token over the non-embedding parameters (an untied LM head is one of them).
    kaplan_weights = 2 * t * s.non_embedding_params
    result.estimates.append(estimate(
        "Kaplan (2N + 2 L T d_attn)", kaplan_weights, 2 * layers * t * t * attn, 0, 0,
        "N without embedding tables; attention context 2 L T d_attn per token (QK^T and AV at one FLOP "
        "per multiply-add); an untied LM head counted in N"))
    result.estimates.append(estimate(
        "Chinchilla (appendix F)",
        layers * (2 * 3 * t * d * attn + 2 * t * attn * d + 2 * 2 * t * d * s.ffw),
        layers * 2 * 2 * t * t * attn, head, 2 * t * s.vocab * d + layers * 3 * s.heads * t * t,
        "every matmul written out for full multi-head attention and a 2-matrix MLP, plus the input "
        "embedding as a matmul and 3 FLOPs per softmax entry"))
    result.estimates.append(estimate(
        "PaLM / torchtitan (6N + 12 L H Q T)", 2 * t * s.params_without_input_embedding,
        4 * layers * s.heads * s.head_dim * t * t, 0, 0,
        "N all parameters but the input embedding (norm weights and the LM head included, as matmul "
        "weights); attention dense over the whole sequence"))
    result.estimates.append(estimate(
        "Megatron (24 T d^2 + 4 T^2 d per layer, + 2 T d V)", layers * 24 * t * d * d,
        layers * 4 * t * t * d, head, 0,
        "d_ff = 4d, full multi-head attention, an untied LM head over every position"))
    # Where a formula puts an untied LM head inside N, move it to its own term so that terms line
    # up. A tied head is the embedding table, which both formulas leave out of N.
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for index, estimate_ in enumerate(result.estimates):
        if estimate_.name.startswith(("Kaplan", "PaLM")) and exact["lm_head"] and not tied:
            terms = dict(estimate_.terms)
            moved = min(terms["weights"], factor * head)
            terms["weights"] -= moved
            terms["lm_head"] += moved
            result.estimates[index] = Estimate(estimate_.name, terms, exact, estimate_.assumptions)
    return result

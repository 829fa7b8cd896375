"""Total and active parameters of a mixture-of-experts model.

A routed mixture-of-experts layer holds ``E`` experts and sends each token to ``k`` of them, so a
token uses ``k/E`` of the layer's expert parameters: ``active = total - (1 - k/E) * experts``.
That is the "active parameters" figure MoE papers quote (Mixtral 8x7B: 46.7 B total, 12.9 B
active), and the ``N`` of ``6N`` per-token training estimates (maxtext#678).

Experts and routing are read as Hugging Face names them: expert parameters live under a module
path component ``experts`` (shared experts, ``shared_expert(s)``, are always active), and ``k``
and ``E`` come from the model's config (``num_experts_per_tok`` and ``num_local_experts``,
``num_experts`` or ``n_routed_experts``). A model without them has active = total.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

_EXPERT_COUNT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
_TOP_K_FIELDS = ("num_experts_per_tok", "moe_top_k", "top_k", "num_selected_experts")


@dataclass(frozen=True)
class ParameterCount:
    """``total`` parameters; ``expert`` of them in routed experts; ``active`` per token."""

    total: int
    expert: int = 0
    experts: int | None = None
    top_k: int | None = None

    @property
    def active(self) -> int:
        """Parameters one token uses: everything outside routed experts, and ``top_k/experts`` of
        the experts' (exact when each expert has the same size, as in every HF MoE)."""
        if not self.expert or not self.experts or not self.top_k:
            return self.total
        return self.total - self.expert + self.expert * self.top_k // self.experts

    def describe(self) -> str:
        """``46.70 B (active 12.88 B per token: 2 of 8 experts)``, or the total alone."""
        text = _billions(self.total)
        if self.active != self.total:
            text += f" (active {_billions(self.active)} per token: {self.top_k} of {self.experts} experts)"
        return text


def _billions(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def _attribute(obj: object, name: str) -> object:
    """``getattr(obj, name, None)`` for configs whose ``__getattr__`` raises something else than
    ``AttributeError`` (a dict read by attribute raises ``KeyError``)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _config_int(config: object, fields: tuple[str, ...]) -> int | None:
    for name in fields:
        value = _attribute(config, name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _is_routed_expert(path: str) -> bool:
    parts = path.split(".")
    return "experts" in parts and not any(p.startswith("shared_expert") for p in parts)


def _routing(model: nn.Module) -> tuple[int, int] | None:
    """``(experts, top_k)`` from the model's config, or ``None`` for a model without routing."""
    config = _attribute(model, "config")
    if config is None:
        return None
    text = _attribute(config, "text_config") or config
    experts = _config_int(text, _EXPERT_COUNT_FIELDS)
    top_k = _config_int(text, _TOP_K_FIELDS)
    return (experts, top_k) if experts and top_k and top_k <= experts else None


def active_parameters(model: nn.Module) -> int | None:
    """Parameters one token uses, or ``None`` for a model without routed experts (answered from
    the config alone, without walking the parameters, for every other model)."""
    if _routing(model) is None:
        return None
    counted = parameter_count(model)
    return counted.active if counted.active != counted.total else None


def parameter_count(model: nn.Module) -> ParameterCount:
    """Total, expert and active parameters of ``model`` (each shared tensor once)."""
    seen: dict[int, tuple[str, int]] = {}
    for name, param in model.named_parameters():
        seen.setdefault(id(param), (name, param.numel()))
    total = sum(n for _, n in seen.values())
    routing = _routing(model)
    if routing is None:
        return ParameterCount(total)
    experts, top_k = routing
    expert = sum(n for name, n in seen.values() if _is_routed_expert(name.rsplit(".", 1)[0]))
    return ParameterCount(total, expert, experts, top_k)

"""The result of a count: one record per graph node, and roll-ups that always sum to the total.

Per-module totals are *inclusive*: a module's figure includes every descendant's, the root is
``""``, and the children of any module never sum to more than their parent. FLOPs of nodes that
run directly in a module's own ``forward`` (not in a child) stay with that module.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

FORMAT_VERSION = 1


@dataclass(frozen=True)
class NodeRecord:
    """How one graph node was counted.

    Attributes:
        name: the node's name in the graph (``visual_conv1``).
        op: ``call_module``, ``call_function``, ``call_method``, ``get_attr``, ...
        target: what the node calls, readable (``torch.nn.Conv2d``, ``torch.matmul``, ``Tensor.view``).
        module: qualified name of the module the node belongs to (``""`` for the root).
        module_type: class name of that module.
        input_shapes: shapes of the node's tensor inputs.
        output_shapes: shapes of the node's tensor outputs.
        flops: forward FLOPs counted under the report's convention.
        macs: multiply-accumulates of matmul-class work, forward and backward (half their FLOPs).
        rule: importable name of the rule that counted it, ``None`` when no rule matched.
        category: the rule's category (``matmul``, ``norm``, ``zero``, ...), ``None`` without rule.
        source: ``file:line`` of the user code that created the node, when known.
        backward_flops: FLOPs of this node's backward pass (``count(backward=True)``), else 0.
        bytes_read: bytes the node reads from memory (forward; :mod:`fxflops.traffic`).
        bytes_written: bytes the node writes to memory (forward).
        dtype: the dtype it computes in (``"bfloat16"``), for picking a peak; ``None`` without tensors.
    """

    name: str
    op: str
    target: str
    module: str
    module_type: str
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    flops: int
    macs: int
    rule: str | None
    category: str | None
    source: str | None = None
    backward_flops: Any = 0
    bytes_read: Any = 0
    bytes_written: Any = 0
    dtype: str | None = None

    @property
    def total_flops(self) -> Any:
        """Forward plus backward FLOPs of this node (backward is 0 unless counted)."""
        return self.flops + self.backward_flops

    @property
    def bytes(self) -> Any:
        """Bytes read plus bytes written (forward)."""
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float | None:
        """Arithmetic intensity, forward FLOPs per byte moved; ``None`` for a node that moves nothing."""
        return self.flops / self.bytes if self.bytes else None

    @property
    def counted(self) -> bool:
        """True when a rule matched this node (even if it costs 0)."""
        return self.rule is not None


@dataclass
class FlopReport:
    """FLOPs of one model call, per node, per module and per op.

    >>> report = fxflops.count(model, torch.empty(1, 3, 224, 224, device="meta"))  # doctest: +SKIP
    >>> report.total, report.by_module(depth=1), report.by_op()  # doctest: +SKIP
    """

    model: str
    nodes: list[NodeRecord]
    params: int
    convention: str = "default"
    convention_description: str = ""
    unit: str = "FLOPs"
    causal: str = "dense"
    trace: str = "symbolic"
    #: True when the counts include the backward pass (``count(backward=True)``).
    includes_backward: bool = False
    #: Modules counted through torch.export instead of torch.fx: qualified name -> why.
    fallbacks: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    #: Qualified module name -> class name, for every module of the model (tables show the
    #: type of containers that own no node themselves, such as ``layer1 (Sequential)``).
    module_types: dict[str, str] = field(default_factory=dict)
    #: Qualified module name -> its parameters, its submodules' included (``""``: the model).
    module_params: dict[str, int] = field(default_factory=dict)
    #: Qualified module name -> shapes of its output tensors at its first call.
    module_outputs: dict[str, tuple[tuple[Any, ...], ...]] = field(default_factory=dict)
    #: Parameters one token uses in a mixture-of-experts model (``top_k/experts`` of the routed
    #: experts' and all the others, :mod:`fxflops.params`); ``None`` for a model without routing.
    active_params: int | None = None
    #: What decided the shapes that depend on a router's choice (:mod:`fxflops.routing`):
    #: ``"uniform"`` (assumed balanced), ``"data"`` (the model ran on its real data) or ``None``
    #: (no shape depended on one).
    routing: str | None = None

    def __repr__(self) -> str:
        # Short on purpose: the nodes are in .nodes (a ViT-B-16 has thousands).
        total = f"{self.total:,}" if isinstance(self.total, int) else str(self.total)
        return (f"FlopReport(model={self.model!r}, total={total} {self.unit}, nodes={len(self.nodes)}, "
                f"uncounted={len(self.uncounted)}, convention={self.convention!r}, trace={self.trace!r})")

    @property
    def total(self) -> Any:
        """Total FLOPs (1 multiply-accumulate = 2 FLOPs), forward plus backward when counted;
        a sympy polynomial for symbolic sizes."""
        return sum((record.total_flops for record in self.nodes), 0)

    @property
    def forward(self) -> Any:
        """FLOPs of the forward pass."""
        return sum((record.flops for record in self.nodes), 0)

    @property
    def backward(self) -> Any:
        """FLOPs of the backward pass (0 unless counted with ``backward=True``)."""
        return sum((record.backward_flops for record in self.nodes), 0)

    @property
    def symbols(self) -> list[str]:
        """Names of the size symbols the counts depend on (empty for concrete sizes)."""
        found: set[str] = set()
        for record in self.nodes:
            for value in (record.flops, record.backward_flops):
                if not isinstance(value, int):
                    found.update(str(s) for s in value.free_symbols)
        return sorted(found)

    def formula(self) -> str:
        """The total as a simplified polynomial, e.g. ``36864*L**2 + 247064064*L``."""
        import sympy

        return str(sympy.expand(self.total)) if self.symbols else str(self.total)

    def evaluate(self, **sizes: int) -> FlopReport:
        """The concrete report at the given sizes, e.g. ``report.evaluate(L=128)``.

        Equal to counting the model at that shape.
        """
        from fxflops.symbolic import evaluate

        def shape(dims: tuple[Any, ...]) -> tuple[int, ...]:
            return tuple(d if isinstance(d, int) else evaluate(_parse(d), sizes) for d in dims)

        nodes = [
            replace(record, flops=evaluate(record.flops, sizes), macs=evaluate(record.macs, sizes),
                    backward_flops=evaluate(record.backward_flops, sizes),
                    bytes_read=evaluate(record.bytes_read, sizes), bytes_written=evaluate(record.bytes_written, sizes),
                    input_shapes=tuple(shape(s) for s in record.input_shapes),
                    output_shapes=tuple(shape(s) for s in record.output_shapes))
            for record in self.nodes
        ]
        return replace(self, nodes=nodes)

    at = evaluate

    @property
    def macs(self) -> Any:
        """Multiply-accumulates of matmul-class work (half its FLOPs)."""
        return sum((record.macs for record in self.nodes), 0)

    @property
    def bytes(self) -> Any:
        """Bytes the forward pass moves, read plus written: an upper bound of memory traffic (no
        cache, no fusion; see :mod:`fxflops.traffic` and docs/conventions.md)."""
        return self.bytes_read + self.bytes_written

    @property
    def bytes_read(self) -> Any:
        """Bytes the forward pass reads (weights, inputs, activations)."""
        return sum((record.bytes_read for record in self.nodes), 0)

    @property
    def bytes_written(self) -> Any:
        """Bytes the forward pass writes (activations, outputs, cache updates)."""
        return sum((record.bytes_written for record in self.nodes), 0)

    def bytes_by_module(self, depth: int | None = None) -> dict[str, int]:
        """Qualified module name -> inclusive bytes moved, as :meth:`by_module` for FLOPs."""
        return self._inclusive(lambda record: record.bytes, depth)

    def intensity(self, depth: int | None = None) -> dict[str, float]:
        """Arithmetic intensity, forward FLOPs per byte moved, of each module (``""``: the model);
        a module that moves no bytes is left out."""
        flops = self._inclusive(lambda record: record.flops, depth)
        moved = self.bytes_by_module(depth)
        return {name: flops[name] / moved[name] for name in moved if moved[name]}

    def roofline(self, accelerator: Any, dtype: str | None = None) -> Any:
        """Time on ``accelerator`` by the roofline model: per node ``max(FLOPs / dense peak of its
        dtype, bytes / HBM bandwidth)``; see :class:`fxflops.roofline.Roofline`. ``dtype``
        (``"bf16"``) picks the peak for every node instead of each node's own dtype."""
        from fxflops.roofline import roofline

        return roofline(self, accelerator, dtype=dtype)

    @property
    def uncounted(self) -> list[NodeRecord]:
        """Records of the nodes that had no rule: their cost is unknown, not zero."""
        return [record for record in self.nodes if not record.counted]

    def by_module(self, depth: int | None = None) -> dict[str, int]:
        """Qualified module name -> inclusive FLOPs; ``""`` is the root and equals :attr:`total`.

        ``depth`` keeps modules at most that many levels below the root (``depth=1``: the root and
        its children). Modules that took part but cost 0 are listed with 0.
        """
        return self._inclusive(lambda record: record.total_flops, depth)

    def _inclusive(self, value: Any, depth: int | None) -> dict[str, Any]:
        """Qualified module name -> the sum of ``value(record)`` over the module and its descendants."""
        totals: dict[str, Any] = defaultdict(int)
        totals[""] = 0
        for record in self.nodes:
            amount = value(record)
            for name in module_ancestors(record.module, depth):
                totals[name] += amount
        return dict(sorted(totals.items(), key=lambda item: _module_sort_key(item[0])))

    def by_op(self) -> dict[str, int]:
        """Target (``torch.nn.Linear``, ``Tensor.matmul``, ...) -> FLOPs, largest first."""
        totals: dict[str, int] = defaultdict(int)
        for record in self.nodes:
            if record.op in ("placeholder", "output", "get_attr"):
                continue
            totals[record.target] += record.total_flops
        return dict(sorted(totals.items(), key=lambda item: (-_magnitude(item[1]), item[0])))

    def by_category(self) -> dict[str, int]:
        """Rule category (``matmul``, ``conv``, ``attention``, ...) -> FLOPs; ``None`` = no rule."""
        totals: dict[str, int] = defaultdict(int)
        for record in self.nodes:
            if record.op in ("placeholder", "output"):
                continue
            totals[record.category or "uncounted"] += record.total_flops
        return dict(sorted(totals.items(), key=lambda item: (-_magnitude(item[1]), item[0])))

    def by_role(self) -> dict[str, int]:
        """What the FLOPs do in a language model: ``expert`` (routed mixture-of-experts layers),
        ``attention`` (projections, scores and values), ``lm_head`` (the output projection) and
        ``dense`` (everything else: MLPs, shared experts, routers, embeddings, convolutions).

        Roles are read from module paths as Hugging Face names them (``experts``, ``self_attn`` /
        ``attention`` / ``attn``, ``lm_head`` / ``embed_out``) and from the rule (grouped
        matmuls are expert work, attention-category rules attention work).
        """
        totals: dict[str, int] = {"expert": 0, "attention": 0, "dense": 0, "lm_head": 0}
        for record in self.nodes:
            if record.op in ("placeholder", "output", "get_attr"):
                continue
            totals[_role(record)] += record.total_flops
        return totals

    def to_html(self, path: Any = None, title: str | None = None) -> str:
        """The report as one self-contained HTML page (an icicle of FLOPs by module that zooms on
        click, the op and category tables, fallbacks and uncounted nodes); written to ``path`` when
        given. See :mod:`fxflops.html`."""
        from pathlib import Path

        from fxflops.html import report_html

        page = report_html(self, title)
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page

    def _repr_html_(self) -> str:
        """Notebook view: a collapsible module tree with exact counts and shares."""
        from fxflops.html import notebook_html

        return notebook_html(self)

    def module(self, name: str) -> int:
        """Inclusive FLOPs of the module called ``name`` (``""`` is the whole model)."""
        prefix = name + "."
        return sum(r.total_flops for r in self.nodes if not name or r.module == name or r.module.startswith(prefix))

    def table(self, by: str = "module", depth: int | None = 2, fmt: str = "simple", top: int | None = None) -> str:
        """The report as a text table (tabulate's ``fmt``: simple, github, plain, ...)."""
        from fxflops.render import render_table

        return render_table(self, by=by, depth=depth, fmt=fmt, top=top)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with a format version; ``FlopReport.from_dict`` reads it back.

        Symbolic counts are written as strings (``"36864*L**2 + 247064064*L"``).
        """
        return {
            "format": FORMAT_VERSION,
            "model": self.model,
            "total": _jsonable(self.total),
            "forward": _jsonable(self.forward),
            "backward": _jsonable(self.backward),
            "includes_backward": self.includes_backward,
            "macs": _jsonable(self.macs),
            "symbols": self.symbols,
            "params": self.params,
            "active_params": self.active_params,
            "routing": self.routing,
            "unit": self.unit,
            "convention": self.convention,
            "convention_description": self.convention_description,
            "causal": self.causal,
            "trace": self.trace,
            "fallbacks": dict(self.fallbacks),
            "versions": dict(self.versions),
            "module_types": dict(self.module_types),
            "module_params": dict(self.module_params),
            "module_outputs": {k: [list(s) for s in v] for k, v in self.module_outputs.items()},
            "modules": {k: _jsonable(v) for k, v in self.by_module().items()},
            "ops": {k: _jsonable(v) for k, v in self.by_op().items()},
            "categories": {k: _jsonable(v) for k, v in self.by_category().items()},
            "uncounted": [record.name for record in self.uncounted],
            "bytes": _jsonable(self.bytes),
            "nodes": [{**asdict(record), "flops": _jsonable(record.flops), "macs": _jsonable(record.macs),
                       "backward_flops": _jsonable(record.backward_flops),
                       "bytes_read": _jsonable(record.bytes_read), "bytes_written": _jsonable(record.bytes_written)}
                      for record in self.nodes],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlopReport:
        """Rebuild a report written by :meth:`to_dict`."""
        if not isinstance(data, dict):
            raise ValueError(f"a FlopReport is a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported FlopReport format {data.get('format')!r}; expected {FORMAT_VERSION}")
        try:
            return cls._from_fields(data)
        except (KeyError, TypeError) as e:
            problem = f"missing field {e.args[0]!r}" if isinstance(e, KeyError) else str(e)
            raise ValueError(f"not a FlopReport written by to_json(): {problem}") from None

    @classmethod
    def _from_fields(cls, data: dict[str, Any]) -> FlopReport:
        nodes = [
            NodeRecord(
                **{
                    **record,
                    "flops": _parse(record["flops"]),
                    "macs": _parse(record["macs"]),
                    "backward_flops": _parse(record.get("backward_flops", 0)),
                    "bytes_read": _parse(record.get("bytes_read", 0)),
                    "bytes_written": _parse(record.get("bytes_written", 0)),
                    "input_shapes": tuple(tuple(s) for s in record["input_shapes"]),
                    "output_shapes": tuple(tuple(s) for s in record["output_shapes"]),
                }
            )
            for record in data["nodes"]
        ]
        return cls(
            model=data["model"],
            nodes=nodes,
            params=data["params"],
            convention=data["convention"],
            convention_description=data.get("convention_description", ""),
            unit=data.get("unit", "FLOPs"),
            causal=data.get("causal", "dense"),
            includes_backward=bool(data.get("includes_backward", False)),
            trace=data.get("trace", "symbolic"),
            fallbacks=dict(data.get("fallbacks", {})),
            versions=dict(data.get("versions", {})),
            module_types=dict(data.get("module_types", {})),
            module_params=dict(data.get("module_params", {})),
            module_outputs={k: tuple(tuple(s) for s in v) for k, v in data.get("module_outputs", {}).items()},
            active_params=data.get("active_params"),
            routing=data.get("routing"),
        )

    @classmethod
    def from_json(cls, text: str) -> FlopReport:
        """Rebuild a report from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    def __str__(self) -> str:
        from fxflops.units import format_flops

        if self.symbols:
            return f"{self.model}: {self.formula()} FLOPs (convention '{self.convention}'), {self.params:,} params"
        uncounted = len(self.uncounted)
        tail = f", {uncounted} uncounted node{'s' if uncounted != 1 else ''}" if uncounted else ""
        return (
            f"{self.model}: {format_flops(self.total)} ({self.total:,} FLOPs, convention "
            f"'{self.convention}'), {self.params:,} params{tail}"
        )


def _magnitude(value: Any) -> float:
    """A sortable size of a count; symbolic counts are compared at every symbol = 1024."""
    if isinstance(value, int):
        return float(value)
    return float(value.subs({symbol: 1024 for symbol in value.free_symbols}))


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, int) else str(value)


def module_ancestors(module: str, depth: int | None = None) -> list[str]:
    """``module`` and every module containing it, root (``""``) first, to at most ``depth`` levels:
    the modules a node's cost rolls up into."""
    parts = module.split(".") if module else []
    levels = len(parts) if depth is None else min(len(parts), depth)
    return [".".join(parts[:level]) for level in range(levels + 1)]


def _parse(value: Any) -> Any:
    """The inverse of :func:`_jsonable`: ints stay, strings become sympy expressions."""
    if isinstance(value, (int, float)) or value is None:
        return value
    import re

    import sympy

    # Every bare name is a size symbol, even one sympy would read as its own (S, N, E, I, Q, O);
    # names followed by "(" are functions (Min, floor).
    names = set(re.findall(r"\b([A-Za-z_]\w*)\b(?!\s*\()", value))
    symbols = {name: sympy.Symbol(name, integer=True, positive=True) for name in names}
    return sympy.sympify(value, locals=symbols)


_ATTENTION_MODULES = frozenset({"self_attn", "attn", "attention", "self_attention", "cross_attn", "encoder_attn",
                                "crossattention", "self", "mha", "multihead_attn"})
_EXPERT_MODULES = frozenset({"experts", "expert"})
_HEAD_MODULES = frozenset({"lm_head", "embed_out"})


def _role(record: NodeRecord) -> str:
    """The :meth:`FlopReport.by_role` role of one record."""
    parts = record.module.split(".") if record.module else []
    if parts and parts[-1] in _HEAD_MODULES:
        return "lm_head"
    if (record.rule or "").endswith("grouped_mm_flops") or any(p in _EXPERT_MODULES for p in parts):
        return "expert"
    if record.category == "attention" or any(p in _ATTENTION_MODULES for p in parts):
        return "attention"
    return "dense"


def _module_sort_key(name: str) -> tuple[Any, ...]:
    # Natural order: resblocks.2 before resblocks.10.
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split(".")) if name else ()


def merge_counts(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Sum several name -> FLOPs mappings."""
    totals: dict[str, int] = defaultdict(int)
    for part in parts:
        for key, value in part.items():
            totals[key] += value
    return dict(totals)

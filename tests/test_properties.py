"""Property tests: every matmul-class rule against FlopCounterMode on random shapes and parameters.

Under the ``"default"`` convention fxflops and ``torch.utils.flop_counter.FlopCounterMode`` (meta
tensors, math SDPA kernel, grad on: see ``tests/rules/conftest.py``) count the same thing, so they
must agree exactly on every example. Where FlopCounterMode counts 0 (``mv``, ``dot``: torch has no
formula for them, and torch.matmul folds some 1-D cases into them) the property is the hand
formula, and that torch did dispatch to one of them. Causal-exact attention is checked
against the mask itself, and the ``"full"`` convention against its invariants.

Examples are derandomized (fixed per test, reproducible in CI) and small: the whole file runs in
well under a minute on two cores.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from flop_testing import fxflops_total, make_call, meta, torch_reference_flops
from fxflops.rules.attention import BOTTOM_RIGHT, TOP_LEFT, kept_scores
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import fxflops

torch_flops = torch_reference_flops
count = fxflops_total
call = make_call

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW_PROPERTY = settings(PROPERTY, max_examples=25)


# -- convolutions -------------------------------------------------------------------------------


@st.composite
def convolutions(draw: st.DrawFn) -> tuple[nn.Module, torch.Tensor]:
    dims = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(dims))
    sizes = []
    for k, d, p in zip(kernel, dilation, padding, strict=True):
        reach = d * (k - 1) + 1  # the kernel's span; the padded input must cover it
        sizes.append(draw(st.integers(max(1, reach - 2 * p), reach + 3)))
    batch = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    if transposed:
        # output_padding must be smaller than stride or dilation; padding must leave an output
        output_padding = tuple(draw(st.integers(0, max(s, d) - 1))
                               for s, d in zip(stride, dilation, strict=True))
        out = [(i - 1) * s - 2 * p + d * (k - 1) + o + 1
               for i, s, p, d, k, o in zip(sizes, stride, padding, dilation, kernel, output_padding,
                                           strict=True)]
        if min(out) < 1:
            padding = (0,) * dims
        cls = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[dims - 1]
        module: nn.Module = cls(c_in, c_out, kernel, stride=stride, padding=padding,
                                output_padding=output_padding, groups=groups, bias=bias, dilation=dilation,
                                device="meta")
    else:
        cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
        module = cls(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     bias=bias, device="meta")
    return module, meta(batch, c_in, *sizes)


@PROPERTY
@given(convolutions())
def test_conv_matches_torch(case: tuple[nn.Module, torch.Tensor]) -> None:
    module, x = case
    assert count(module, x) == torch_flops(module, x)


@PROPERTY
@given(convolutions())
def test_functional_conv_matches_torch(case: tuple[nn.Module, torch.Tensor]) -> None:
    module, x = case
    transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
    dims = x.dim() - 2
    fn = ((F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d) if transposed
          else (F.conv1d, F.conv2d, F.conv3d))[dims - 1]
    options: dict[str, Any] = dict(stride=module.stride, padding=module.padding, dilation=module.dilation,
                                   groups=module.groups)
    if transposed:
        options["output_padding"] = module.output_padding
    model = call(fn, 2, **options)
    assert count(model, x, module.weight) == torch_flops(model, x, module.weight)


class _RecordOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def _aten_ops(fn: Any, *inputs: torch.Tensor) -> set[str]:
    """Names of the aten ops ``fn(*inputs)`` dispatches to (as FlopCounterMode sees them)."""
    recorder = _RecordOps()
    with torch.enable_grad(), recorder:
        fn(*inputs)
    return recorder.names


# -- matmul, mm, bmm, baddbmm, linear -----------------------------------------------------------


@st.composite
def matmul_shapes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Operands of torch.matmul: 1-D to 4-D on either side, broadcastable batch dimensions."""
    n, k, m = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    a_dims, b_dims = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch = [draw(st.integers(1, 3)) for _ in range(max(a_dims, b_dims) - 2)]

    def batch_of(dims: int) -> list[int]:
        own = batch[len(batch) - (dims - 2):] if dims > 2 else []
        return [size if draw(st.booleans()) else 1 for size in own]  # broadcast some dims from 1

    a = (k,) if a_dims == 1 else (*batch_of(a_dims), n, k)
    b = (k,) if b_dims == 1 else (*batch_of(b_dims), k, m)
    return a, b


@PROPERTY
@given(matmul_shapes())
def test_matmul_broadcasting_matches_torch(shapes: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    a, b = meta(*shapes[0]), meta(*shapes[1])
    model = call(torch.matmul, 2)
    ours = count(model, a, b)
    out = torch.matmul(a, b)
    # hand formula: 2 * numel(out) * k, k the contracted size
    assert ours == 2 * out.numel() * shapes[0][-1]
    reference = torch_flops(model, a, b)
    if reference == 0:
        # FlopCounterMode has no formula for mv and dot, which torch.matmul folds some 1-D cases into
        assert {"mv", "dot"} & _aten_ops(torch.matmul, a, b)
    else:
        assert ours == reference


@PROPERTY
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.booleans())
def test_bmm_and_baddbmm_match_torch(batch: int, n: int, k: int, m: int, broadcast_input: bool) -> None:
    a, b = meta(batch, n, k), meta(batch, k, m)
    bmm = call(torch.bmm, 2)
    # 2 * B * n * k * m
    assert count(bmm, a, b) == torch_flops(bmm, a, b) == 2 * batch * n * k * m
    c = meta(1, 1, m) if broadcast_input else meta(batch, n, m)
    baddbmm = call(torch.baddbmm, 3)
    assert count(baddbmm, c, a, b) == torch_flops(baddbmm, c, a, b) == 2 * batch * n * k * m


@PROPERTY
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.booleans())
def test_mm_addmm_mv_dot(n: int, k: int, m: int, bias: bool) -> None:
    a, b = meta(n, k), meta(k, m)
    mm = call(torch.mm, 2)
    assert count(mm, a, b) == torch_flops(mm, a, b) == 2 * n * k * m
    addmm = call(torch.addmm, 3)
    c = meta(m) if bias else meta(n, m)
    assert count(addmm, c, a, b) == torch_flops(addmm, c, a, b) == 2 * n * k * m
    # FlopCounterMode counts mv and dot as 0: the hand formula 2 * numel(out) * k
    assert count(call(torch.mv, 2), a, meta(k)) == 2 * n * k
    assert count(call(torch.dot, 2), meta(k), meta(k)) == 2 * k


@PROPERTY
@given(st.lists(st.integers(1, 3), max_size=2), st.integers(1, 6), st.integers(1, 6), st.booleans())
def test_linear_matches_torch(batch: list[int], in_features: int, out_features: int, bias: bool) -> None:
    module = nn.Linear(in_features, out_features, bias=bias, device="meta")
    x = meta(*batch, in_features)
    # 2 * prod(batch) * in * out; the bias add is not counted (default convention)
    assert count(module, x) == torch_flops(module, x) == 2 * math.prod(batch) * in_features * out_features
    functional = call(F.linear, 2)
    assert count(functional, x, module.weight) == torch_flops(functional, x, module.weight)


# -- einsum -------------------------------------------------------------------------------------


@st.composite
def einsums(draw: st.DrawFn) -> tuple[str, list[tuple[int, ...]]]:
    labels = "abcdef"
    sizes = {label: draw(st.integers(1, 4)) for label in labels}
    n_operands = draw(st.integers(2, 3))
    terms = []
    for _ in range(n_operands):
        term = draw(st.lists(st.sampled_from(labels), min_size=1, max_size=3, unique=True))
        terms.append("".join(term))
    used = sorted(set("".join(terms)))
    output = draw(st.lists(st.sampled_from(used), max_size=3, unique=True))
    equation = ",".join(terms) + "->" + "".join(output)
    return equation, [tuple(sizes[label] for label in term) for term in terms]


@PROPERTY
@given(einsums(), st.booleans())
def test_einsum_matches_torch(case: tuple[str, list[tuple[int, ...]]], optimize: bool) -> None:
    equation, shapes = case
    operands = [meta(*shape) for shape in shapes]
    model = call(torch.einsum, len(operands), equation)
    with torch.backends.opt_einsum.flags(enabled=optimize):
        assert count(model, *operands) == torch_flops(model, *operands)


# -- attention ----------------------------------------------------------------------------------


@st.composite
def sdpa_cases(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool, bool]:
    batch = draw(st.integers(1, 2))
    kv_heads = draw(st.integers(1, 2))
    gqa = draw(st.booleans())
    q_heads = kv_heads * (draw(st.integers(1, 3)) if gqa else 1)
    q_len, k_len = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    dim, value_dim = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    causal = draw(st.booleans())
    q = meta(batch, q_heads, q_len, dim)
    k, v = meta(batch, kv_heads, k_len, dim), meta(batch, kv_heads, k_len, value_dim)
    return q, k, v, gqa, causal


@PROPERTY
@given(sdpa_cases())
def test_sdpa_matches_torch(case: tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool, bool]) -> None:
    q, k, v, gqa, causal = case
    model = call(F.scaled_dot_product_attention, 3, is_causal=causal, enable_gqa=gqa)
    b, h, length, dim = q.shape
    source, value_dim = k.shape[-2], v.shape[-1]
    # dense: 2 * B * Hq * L * S * (E + Ev), FlopCounterMode's count whatever the mask
    expected = 2 * b * h * length * source * (dim + value_dim)
    assert count(model, q, k, v) == torch_flops(model, q, k, v) == expected


@PROPERTY
@given(sdpa_cases())
def test_sdpa_causal_exact_counts_the_kept_entries(case: tuple[torch.Tensor, ...]) -> None:
    q, k, v, gqa, _ = case
    model = call(F.scaled_dot_product_attention, 3, is_causal=True, enable_gqa=gqa)
    b, h, length, dim = q.shape
    source, value_dim = k.shape[-2], v.shape[-1]
    # torch's is_causal mask: torch.ones(L, S).tril(diagonal=0)
    kept = int(torch.ones(length, source).tril(diagonal=0).sum())
    report = fxflops.count(model, (q, k, v), causal="exact")
    assert report.total == 2 * b * h * kept * (dim + value_dim)


@PROPERTY
@given(st.integers(0, 9), st.integers(0, 9))
def test_kept_scores_match_the_masks(length: int, source: int) -> None:
    ones = torch.ones(length, source)
    top_left = int(ones.tril(diagonal=0).sum())
    bottom_right = int(ones.tril(diagonal=source - length).sum())
    assert kept_scores(length, source, TOP_LEFT).count == top_left
    assert kept_scores(length, source, BOTTOM_RIGHT).count == bottom_right
    assert kept_scores(length, source, TOP_LEFT).twice == 2 * top_left
    assert kept_scores(length, source).count == length * source


@st.composite
def mha_cases(draw: st.DrawFn) -> tuple[nn.MultiheadAttention, tuple[torch.Tensor, ...], dict[str, Any]]:
    heads = draw(st.integers(1, 3))
    embed = heads * draw(st.integers(1, 3))
    kdim, vdim = draw(st.sampled_from([None, 3, 5])), draw(st.sampled_from([None, 2, 4]))
    batch_first = draw(st.booleans())
    module = nn.MultiheadAttention(embed, heads, kdim=kdim, vdim=vdim, batch_first=batch_first,
                                   bias=draw(st.booleans()), add_bias_kv=draw(st.booleans()),
                                   add_zero_attn=draw(st.booleans()), device="meta")
    n, length, source = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))

    def tokens(count_: int, width: int) -> torch.Tensor:
        return meta(n, count_, width) if batch_first else meta(count_, n, width)

    inputs = (tokens(length, embed), tokens(source, kdim or embed), tokens(source, vdim or embed))
    return module, inputs, {"need_weights": draw(st.booleans())}


@SLOW_PROPERTY
@given(mha_cases())
def test_mha_matches_torch(case: tuple[nn.Module, tuple[torch.Tensor, ...], dict[str, Any]]) -> None:
    module, inputs, kwargs = case
    assert count(module, *inputs, kwargs=kwargs) == torch_flops(module, *inputs, **kwargs)


# -- recurrent layers ---------------------------------------------------------------------------


@st.composite
def recurrent_cases(draw: st.DrawFn) -> tuple[nn.Module, torch.Tensor]:
    kind = draw(st.sampled_from([nn.LSTM, nn.GRU, nn.RNN]))
    options: dict[str, Any] = dict(num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
                                   batch_first=draw(st.booleans()), bias=draw(st.booleans()))
    hidden = draw(st.integers(1, 4))
    if kind is nn.LSTM and hidden > 1 and draw(st.booleans()):
        options["proj_size"] = draw(st.integers(1, hidden - 1))  # torch wants proj_size < hidden_size
    input_size = draw(st.integers(1, 4))
    module = kind(input_size, hidden, device="meta", **options)
    steps, batch = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    if draw(st.booleans()):
        x = meta(steps, input_size)  # unbatched
    else:
        x = meta(batch, steps, input_size) if options["batch_first"] else meta(steps, batch, input_size)
    return module, x


@SLOW_PROPERTY
@given(recurrent_cases())
def test_recurrent_matches_torch(case: tuple[nn.Module, torch.Tensor]) -> None:
    module, x = case
    assert count(module, x) == torch_flops(module, x)


# -- the "full" convention's invariants ---------------------------------------------------------


@PROPERTY
@given(convolutions())
def test_full_adds_exactly_the_bias_to_convolutions(case: tuple[nn.Module, torch.Tensor]) -> None:
    module, x = case
    default = fxflops.count(module, x)
    full = fxflops.count(module, x, convention="full")
    out = module(x)
    bias = out.numel() if module.bias is not None else 0
    # full = 2 * MACs + numel(out) for the bias add; MACs do not move
    assert full.macs == default.macs and default.total == 2 * default.macs
    assert full.total == default.total + bias


@PROPERTY
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3),
       st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_full_elementwise_follows_the_broadcast_output(a: list[int], b: list[int]) -> None:
    # make the shapes broadcastable: where both have a dim, one of them is 1 or they are equal
    width = min(len(a), len(b))
    b = [*b[: len(b) - width], *[y if y == x else 1 for x, y in zip(a[len(a) - width:], b[len(b) - width:],
                                                                     strict=True)]]
    x, y = meta(*a), meta(*b)
    model = call(torch.add, 2)
    assert fxflops.count(model, (x, y), convention="full").total == (x + y).numel()
    assert fxflops.count(model, (x, y)).total == 0

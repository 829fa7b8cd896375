"""The accuracy table: fxflops's exact count of each workload next to every peer's answer."""

from __future__ import annotations

import gc
import time
import traceback
from collections.abc import Callable, Sequence

from benchmarks.models import Case
from benchmarks.peers import Peer, to_flops
from benchmarks.results import CaseResult, PeerCell


def one_line(error: BaseException) -> str:
    """An exception as one short line for a table cell."""
    text = str(error).strip().splitlines()
    message = text[0] if text else ""
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a chain: torch.fx's interpreter wraps the error a node raised."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None or id(inner) in seen:
            return error
        seen.add(id(inner))
        error = inner


def _count_fxflops(case: Case, result: CaseResult) -> None:
    import fxflops

    call = case.meta()
    start = time.perf_counter()
    try:
        report = fxflops.count(call.model, call.inputs, kwargs=call.kwargs, method=call.method)
    except Exception as e:
        result.fxflops_error = one_line(e)
        traceback.print_exc()
        return
    result.fxflops_seconds = time.perf_counter() - start
    result.reference = report.total
    result.uncounted = len(report.uncounted)
    result.fallbacks = dict(report.fallbacks)


def _run_peer(peer: Peer, case: Case) -> PeerCell:
    blocked = peer.blocked()
    try:
        call = case.real()
        start = time.perf_counter()
        value, unit = peer.run(call.model, call.inputs)
        seconds = time.perf_counter() - start
    except Exception as e:
        # A blocked peer is still run, unpatched, so the table shows the error it really raises:
        # the CUDA call where it gets that far, an earlier tracing failure where it does not.
        cause = root_cause(e)
        reason = one_line(cause)
        if blocked and "cuda" in reason.lower():
            return PeerCell(error=f"cannot run on CPU, {blocked} ({reason})")
        return PeerCell(error=reason)
    return PeerCell(value=value, unit=unit, flops=to_flops(value, unit), seconds=seconds)


def run(cases: Sequence[Case], peers: Sequence[Peer], log: Callable[[str], None] = print) -> list[CaseResult]:
    """Count every case with fxflops (meta device) and with every peer (real CPU model)."""
    out = []
    for case in cases:
        result = CaseResult(key=case.key, label=case.label, short=case.short, how=case.how, hand=case.hand)
        _count_fxflops(case, result)
        error = f" ERROR {result.fxflops_error}" if result.fxflops_error else ""
        seconds = result.fxflops_seconds or float("nan")
        log(f"  {case.label}: fxflops {result.reference} ({seconds:.2f} s){error}")
        for peer in peers:
            cell = _run_peer(peer, case)
            result.peers[peer.key] = cell
            shown = f"{cell.value:.6g} {cell.unit}" if cell.error is None else cell.error
            log(f"    {peer.label}: {shown}")
        out.append(result)
        gc.collect()
    return out


def reference_checks(result: CaseResult) -> list[tuple[str, bool]]:
    """How the case's reference is confirmed: equal to hand arithmetic, to FlopCounterMode exact."""
    checks = []
    if result.reference is None:
        return checks
    if result.hand is not None:
        checks.append(("hand arithmetic", result.hand == result.reference))
    exact = result.peers.get("fcm_exact")
    if exact is not None and exact.flops is not None:
        name = "FlopCounterMode (math SDPA, grad on)"
        if exact.flops == 0 and result.reference:
            name += ", which counts 0 here"
        checks.append((name, int(exact.flops) == result.reference))
    return checks

"""pytest plugin of fxflops: FLOP budgets and committed FLOP baselines for test suites.

Loaded through the ``pytest11`` entry point as soon as fxflops is installed, so importing it must
stay cheap: it imports neither torch nor the counting engine (the ``flops`` fixture imports
:func:`fxflops.count` when a test first calls it).

* ``flops(model, inputs, *, kwargs=None, name=None, max=None, rules=None)`` fixture: counts,
  records the measurement for the test, checks ``max`` at once and returns the ``FlopReport``.
* ``@pytest.mark.flops(max=..., rel=..., baseline=True)``: a budget for the sum of the test's
  measurements and per-test baseline settings.
* Baselines in ``__flops__/<test module>.json`` next to each test module, written by
  ``--flops-update``; see ``docs/pytest-plugin.md``.

The work is done in :mod:`fxflops._pytest`; this module only wires it into pytest.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from fxflops._pytest.failures import FlopsLongRepr
from fxflops._pytest.fixture import FlopsFixture
from fxflops._pytest.marker import MARKER_HELP, MarkerError
from fxflops._pytest.measure import ITEM_STATE
from fxflops._pytest.options import FlopsOptions, add_options
from fxflops._pytest.session import PAYLOAD_KEY, SESSION, FlopsSession
from fxflops._pytest.summary import write_summary

__all__ = ["flops"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    session = FlopsSession(config, FlopsOptions.from_config(config))
    config.stash[SESSION] = session
    # xdist's hooks exist only when xdist is loaded; registering them otherwise is an error.
    if config.pluginmanager.hasplugin("xdist") and not _is_xdist_worker(config):
        config.pluginmanager.register(_XdistController(session), "fxflops-xdist-controller")


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[SESSION].collected(session.items)


def pytest_deselected(items: list[pytest.Item]) -> None:
    # Covers -k, -m, --deselect, --lf and plugins that deselect: any of them makes the run partial.
    if items:
        items[0].config.stash[SESSION].narrow("deselection")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    try:
        item.config.stash[SESSION].setup_item(item)
    except MarkerError as e:
        problem = str(e)
    else:
        return
    # Outside the except block, so that the report shows no "during handling" chain; pytrace=False
    # because the message is the whole story and a traceback into the plugin is noise.
    pytest.fail(problem, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when != "call":
        return report
    session = item.config.stash[SESSION]
    failures = session.finish_call(item, body_completed=call.excinfo is None)
    state = item.stash.get(ITEM_STATE, None)
    path, lineno = str(item.path), (item.location[1] or 0) + 1
    if call.excinfo is not None and state is not None and call.excinfo.value is state.budget_error:
        # The fixture's budget error: show its text, pointing at the test line that called flops().
        for entry in reversed(call.excinfo.traceback):
            if str(entry.path) == path:
                lineno = entry.lineno + 1
                break
        text = f"{call.excinfo.value}\nchecked at {session.display_path(item.path)}:{lineno}"
        # Baseline changes of the measurements made so far are worth knowing in the same run.
        text = "\n\n".join([text, *(f.long_repr for f in failures)])
        _set_longrepr(report, FlopsLongRepr(text, path, lineno))
    elif failures and report.passed and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        _set_longrepr(report, FlopsLongRepr("\n\n".join(f.long_repr for f in failures), path, lineno))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = config.stash[SESSION]
    if _is_xdist_worker(config):
        config.workeroutput[PAYLOAD_KEY] = state.to_payload()  # type: ignore[attr-defined]
        return
    # Interrupted, crashed or collect-only sessions measured nothing reliable: leave the files.
    if state.options.update and session.exitstatus in _WRITABLE_EXIT and not config.option.collectonly:
        state.write_baselines()
        if any(result.error for result in state.results) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if state.options.json:
        # Relative to where pytest was invoked, as --junit-xml is.
        try:
            state.write_json(config.invocation_params.dir / state.options.json)
        except OSError as e:  # the path was checked at startup; the disk may still refuse
            state.json_error = f"could not write --flops-json {state.options.json}: {type(e).__name__}: {e}"
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(wrapper=True)
def pytest_report_to_serializable(
    report: pytest.CollectReport | pytest.TestReport,
) -> Generator[None, dict[str, Any] | None, dict[str, Any] | None]:
    data = yield
    # xdist sends str(longrepr) for unknown longrepr types, which loses the crash line that the
    # short summary and JUnit's message attribute show; send it alongside.
    if data is not None and isinstance(report.longrepr, FlopsLongRepr):
        data[_LONGREPR_KEY] = report.longrepr.to_payload()
    return data


@pytest.hookimpl(wrapper=True)
def pytest_report_from_serializable(data: dict[str, Any]) -> Generator[None, Any, Any]:
    report = yield
    payload = data.get(_LONGREPR_KEY)
    if payload is not None and report is not None:
        _set_longrepr(report, FlopsLongRepr.from_payload(payload))
        # TestReport(**data) also stored the key as an attribute; it would travel on otherwise.
        report.__dict__.pop(_LONGREPR_KEY, None)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not _is_xdist_worker(config):
        write_summary(terminalreporter, config.stash[SESSION])


@pytest.fixture
def flops(request: pytest.FixtureRequest) -> FlopsFixture:
    """Count a model's FLOPs: ``flops(model, inputs, *, kwargs=None, name=None, max=None, rules=None)``.

    Each call traces ``model`` with :func:`fxflops.count`, records the count for this test (its
    baseline entry is the test name, ``test[name]`` when named, ``.1``, ``.2`` for unnamed repeats),
    raises :class:`fxflops.FlopBudgetError` at once if the count exceeds ``max``, and returns the
    ``FlopReport``.
    """
    return FlopsFixture(request.node, request.config.stash[SESSION])


class _XdistController:
    """Collects the workers' measurements on the xdist controller (registered only with xdist)."""

    def __init__(self, session: FlopsSession) -> None:
        self._session = session

    def pytest_testnodedown(self, node: object, error: object) -> None:
        output = getattr(node, "workeroutput", None) or {}
        self._session.merge(output.get(PAYLOAD_KEY))


_LONGREPR_KEY = "fxflops_longrepr"

# OK, TESTS_FAILED and NO_TESTS_COLLECTED: the session ran to its end.
_WRITABLE_EXIT = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)


def _set_longrepr(report: pytest.TestReport, longrepr: FlopsLongRepr) -> None:
    # FlopsLongRepr is duck-typed like pytest's TerminalRepr (toterminal, reprcrash); the base
    # class itself is private to pytest.
    report.longrepr = longrepr  # type: ignore[assignment]


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")

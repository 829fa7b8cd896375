"""Command-line options of the plugin and their ini twins, resolved once per session.

Every option has an ini key of the same name with ``-`` replaced by ``_`` (``--flops-rel`` and
``flops_rel``). The command line wins when it is given; otherwise the ini value applies. CLI options
are registered with ``default=None`` so that "not given" can be told apart from "given as the
default" (pytest-memray's ini options had no effect because their flags defaulted to ``False``).
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["DEFAULT_DIRNAME", "FlopsOptions", "add_options", "parse_rel"]

DEFAULT_DIRNAME = "__flops__"

_FLAGS = {
    "flops_update": (
        "write or refresh the committed FLOP baselines (<dirname>/<test module>.json); on runs not "
        "narrowed by -k, -m, node ids or deselection, also remove entries of tests that are gone"
    ),
    "flops_strict": "also fail tests whose FLOPs went down compared with the baseline",
    "flops_report": "print a table of every FLOP measurement at the end of the session",
}


def parse_rel(value: Any, source: str) -> float:
    """Return ``value`` as a relative tolerance (a finite float >= 0; 0.05 means 5%).

    Raises ``ValueError`` naming ``source`` (the option, ini key or marker) otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"{source} must be a number >= 0 (0.05 means 5%), got {value!r}")
    try:
        rel = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be a number >= 0 (0.05 means 5%), got {value!r}") from None
    if not math.isfinite(rel) or rel < 0:
        raise ValueError(f"{source} must be a number >= 0 (0.05 means 5%), got {value!r}")
    return rel


def _rel_type(value: str) -> float:
    try:
        return parse_rel(value, "--flops-rel")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_options(parser: pytest.Parser) -> None:
    """Register the ``--flops-*`` options and their ini twins."""
    group = parser.getgroup("fxflops", "FLOP budgets and baselines (fxflops)")
    for dest, help_text in _FLAGS.items():
        option = "--" + dest.replace("_", "-")
        # BooleanOptionalAction also adds --no-flops-..., so the CLI can switch off what ini enables.
        group.addoption(
            option,
            action=argparse.BooleanOptionalAction,
            default=None,
            dest=dest,
            help=f"{help_text} (ini: {dest})",
        )
        parser.addini(dest, help_text, type="bool", default=False)
    group.addoption(
        "--flops-rel",
        type=_rel_type,
        default=None,
        dest="flops_rel",
        metavar="REL",
        help="allowed relative FLOP increase over the baseline, e.g. 0.01 for 1%% "
        "(default 0; ini: flops_rel)",
    )
    parser.addini("flops_rel", "allowed relative FLOP increase over the baseline (0.01 = 1%)", default="0")
    group.addoption(
        "--flops-dirname",
        default=None,
        dest="flops_dirname",
        metavar="NAME",
        help="folder next to each test module that holds its baseline "
        f"(default {DEFAULT_DIRNAME}; ini: flops_dirname)",
    )
    parser.addini(
        "flops_dirname",
        "folder next to each test module that holds its FLOP baseline",
        default=DEFAULT_DIRNAME,
    )
    # No ini twin: a path for one run's output belongs to the command line (as --junit-xml).
    group.addoption(
        "--flops-json",
        default=None,
        dest="flops_json",
        metavar="PATH",
        help="write every FLOP measurement of the session to PATH as JSON (for CI dashboards)",
    )


@dataclass(frozen=True)
class FlopsOptions:
    """The plugin's settings for one session, after CLI/ini resolution and validation."""

    update: bool = False
    """``--flops-update``: write baselines, and prune unused entries on full runs."""
    strict: bool = False
    """``--flops-strict``: decreases beyond ``rel`` fail too."""
    report: bool = False
    """``--flops-report``: print the table of measurements at the end."""
    rel: float = 0.0
    """``--flops-rel``: allowed relative increase over the baseline."""
    dirname: str = DEFAULT_DIRNAME
    """``--flops-dirname``: baseline folder name next to each test module."""
    json: str | None = None
    """``--flops-json``: where to write the session's measurements, or ``None``."""

    @classmethod
    def from_config(cls, config: pytest.Config) -> FlopsOptions:
        """Resolve every option, CLI first, then ini; raise ``pytest.UsageError`` for bad values."""

        def pick(dest: str) -> Any:
            value = config.getoption(dest, default=None)
            return config.getini(dest) if value is None else value

        try:
            rel = parse_rel(pick("flops_rel"), "flops_rel")
        except ValueError as e:
            raise pytest.UsageError(str(e)) from None
        dirname = str(pick("flops_dirname")).strip()
        # A single plain folder name: the baseline must sit next to its test module, and a path
        # such as "../x" would let two modules share or escape their folder.
        if not dirname or dirname in (".", "..") or "/" in dirname or "\\" in dirname:
            raise pytest.UsageError(
                f"flops_dirname must be a plain folder name such as {DEFAULT_DIRNAME!r}, got {dirname!r}"
            )
        json_path = config.getoption("flops_json", default=None)
        if json_path is not None:
            _check_json_path(config.invocation_params.dir / json_path, json_path)
        return cls(
            update=bool(pick("flops_update")),
            strict=bool(pick("flops_strict")),
            report=bool(pick("flops_report")),
            rel=rel,
            dirname=dirname,
            json=json_path,
        )


def _check_json_path(path: Path, given: str) -> None:
    """Refuse a ``--flops-json`` path that cannot be written, before any test runs (a failure at
    the end of the session would lose the summary and waste the run)."""
    if path.is_dir():
        raise pytest.UsageError(f"--flops-json must name a file, but {given!r} is a folder")
    # Missing folders are created when the file is written; the nearest existing one must be a
    # writable folder.
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise pytest.UsageError(f"--flops-json {given!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise pytest.UsageError(f"--flops-json {given!r} cannot be written (permission denied)")

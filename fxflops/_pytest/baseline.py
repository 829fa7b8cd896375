"""Committed baseline files: ``<test dir>/__flops__/<test module stem>.json``.

One file per test module, one entry per measurement, exact integers::

    {
      "entries": {
        "test_linear": {"by_module": {"": 64}, "convention": "default", "test": "test_linear", "total": 64}
      },
      "format": 1,
      "recorded_with": {"convention": "1 MAC = 2 FLOPs", "fxflops": "0.1.0", "torch": "2.14.1"}
    }

Files are written with sorted keys, an indent of 2 and a trailing newline so that diffs are small and
stable, and atomically (temporary file + ``os.replace``) so that a crash or Ctrl-C never leaves half
a file. Only ``entries[*].total`` is compared; ``by_module`` shows where a change came from.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from fxflops._pytest.measure import Measurement
from fxflops.errors import FxFlopsError

__all__ = [
    "FORMAT_VERSION",
    "Baseline",
    "BaselineError",
    "baseline_path",
    "make_entry",
    "read_baseline",
    "recorded_with",
    "render",
    "write_atomic",
]

FORMAT_VERSION = 1
"""Version of the file layout; a file with another version must be regenerated."""


class BaselineError(FxFlopsError):
    """A baseline file exists but cannot be used; the message names the file and the problem."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class Baseline:
    """The content of one baseline file."""

    path: Path
    """Where the file is (or would be)."""
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Entry key -> ``{"test", "total", "by_module", "convention"}``."""
    exists: bool = False
    """Whether the file was on disk."""

    def total(self, key: str) -> int | None:
        """Return the recorded total of ``key``, or ``None`` when there is no such entry."""
        entry = self.entries.get(key)
        return None if entry is None else int(entry["total"])


def baseline_path(test_module: Path, dirname: str) -> Path:
    """Return the baseline file of the test module at ``test_module``."""
    return test_module.parent / dirname / f"{test_module.stem}.json"


def read_baseline(path: Path) -> Baseline:
    """Read and validate the baseline file at ``path``; a missing file is an empty baseline.

    Raises :class:`BaselineError` for unreadable JSON, another ``format`` version, or entries that
    are not ``{"test": str, "total": int >= 0, ...}``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Baseline(path)
    except OSError as e:
        raise BaselineError(path, f"cannot be read ({e.strerror or e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BaselineError(path, f"is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise BaselineError(path, "is not a JSON object")
    if data.get("format") != FORMAT_VERSION:
        raise BaselineError(
            path,
            f"has format {data.get('format')!r}, this fxflops reads format {FORMAT_VERSION}; "
            "it needs regenerating",
        )
    entries = data.get("entries")
    if not isinstance(entries, dict):
        raise BaselineError(path, '"entries" is missing or not an object')
    for key, entry in entries.items():
        if not isinstance(entry, dict):
            raise BaselineError(path, f"entry {key!r} is not an object")
        total = entry.get("total")
        # bool is an int subclass; true/false in a hand-edited file is a mistake, not 1/0 FLOPs.
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise BaselineError(path, f'entry {key!r}: "total" must be a whole number >= 0, got {total!r}')
        if not isinstance(entry.get("test"), str):
            raise BaselineError(path, f'entry {key!r}: "test" (the test it belongs to) is missing')
    return Baseline(path, entries=entries, exists=True)


def make_entry(measurement: Measurement) -> dict[str, Any]:
    """Return the baseline entry recording ``measurement``."""
    return {
        "by_module": dict(measurement.modules),
        "convention": measurement.convention,
        "test": measurement.test,
        "total": measurement.total,
    }


def render(entries: dict[str, dict[str, Any]]) -> str:
    """Return the file text for ``entries``: sorted keys, indent 2, trailing newline."""
    document = {"entries": entries, "format": FORMAT_VERSION, "recorded_with": recorded_with()}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a part.

    The temporary file is created next to ``path`` because ``os.replace`` is atomic only within one
    file system.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates the file as 0600; a committed file should read like any other.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise


def recorded_with() -> dict[str, str]:
    # importlib.metadata, not ``import torch``: the xdist controller writes the files and never
    # imported torch.
    versions = {"convention": "1 MAC = 2 FLOPs"}
    for package in ("fxflops", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions

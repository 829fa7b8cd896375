"""A one-line progress bar on stderr for long CLI runs (``fxflops zoo``); no dependency.

The bar is drawn only when the stream is a terminal: redirected or captured stderr (CI logs,
``2> errors.txt``, pytest's capsys) gets the per-item messages and nothing else, so logs hold no
carriage returns and no half-drawn bars. Messages written while a bar is shown clear it first and
redraw it below, so a failure report never ends up glued to the bar.

>>> import io
>>> with Progress(3, io.StringIO()) as bar:  # not a terminal: draws nothing
...     bar.advance("ViT-B-32")
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

_WIDTH = 24


class Progress:
    """``[#######.........]  7/75  0:42  last: ViT-B-16`` on one line of ``stream``, redrawn in place.

    Args:
        total: how many items the run has.
        stream: where to draw; ``sys.stderr`` when ``None``.
        enabled: draw the bar; by default only when ``stream`` is a terminal.
    """

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.done = 0
        self._label = ""
        self._start = time.monotonic()
        self._drawn = 0  # length of the line currently on screen, to blank it out

    def start(self, label: str) -> None:
        """Show ``label`` as the item being worked on (the count is unchanged)."""
        self._label = label
        self._draw()

    def advance(self, label: str = "") -> None:
        """Mark one item done; ``label`` names the next one, if any."""
        self.done += 1
        self._label = label
        self._draw()

    def write(self, message: str) -> None:
        """Print ``message`` on its own line(s) above the bar."""
        self._clear()
        print(message, file=self.stream, flush=True)
        self._draw()

    def close(self) -> None:
        """Remove the bar, leaving the cursor at the start of a clean line."""
        self._clear()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def render(self) -> str:
        """The bar's text, without control characters."""
        filled = _WIDTH * self.done // self.total if self.total else _WIDTH
        elapsed = int(time.monotonic() - self._start)
        width = len(str(self.total))
        bar = "#" * filled + "." * (_WIDTH - filled)
        return f"[{bar}] {self.done:>{width}}/{self.total}  {elapsed // 60}:{elapsed % 60:02d}  {self._label}"

    def _draw(self) -> None:
        if not self.enabled:
            return
        line = self.render()
        # Pad with spaces so a shorter label fully covers the previous, longer one.
        self.stream.write("\r" + line.ljust(self._drawn))
        self.stream.flush()
        self._drawn = len(line)

    def _clear(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0

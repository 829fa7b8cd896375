"""``python -m fxflops``: the same command as the ``fxflops`` console script."""

from __future__ import annotations

from fxflops.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Record FlopCounterMode's count of every zoo model in tests/data/zoo_reference.json.

FlopCounterMode runs as fxflops.crosscheck configures it: fake tensors of a meta clone, the math
SDPA kernel, autograd on. Re-run after a torch upgrade:

    python tests/make_zoo_reference.py            # every model (slow: ~10 minutes on 2 cores)
    python tests/make_zoo_reference.py timm:      # only keys starting with "timm:"
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from zoo_models import all_models

from fxflops.crosscheck import torch_flop_count

REFERENCE = Path(__file__).parent / "data" / "zoo_reference.json"


def main(prefixes: list[str]) -> None:
    data = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {"torch": "", "models": {}}
    data["torch"] = torch.__version__.split("+")[0]
    for model in all_models():
        if prefixes and not any(model.key.startswith(p) for p in prefixes):
            continue
        start = time.perf_counter()
        try:
            module, inputs, kwargs = model.build()
            total, _ = torch_flop_count(module, inputs, kwargs)
        except Exception as e:  # recorded, so the test can say why there is no reference
            print(f"{model.key}: FAILED {type(e).__name__}: {str(e).splitlines()[0][:200]}", flush=True)
            continue
        data["models"][model.key] = total
        print(f"{model.key}: {total:,} ({time.perf_counter() - start:.1f}s)", flush=True)
    data["models"] = dict(sorted(data["models"].items()))
    REFERENCE.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])

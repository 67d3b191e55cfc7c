#!/usr/bin/env python
"""Meta-train on a supervised few-shot family (sinusoid, Omniglot, MiniImagenet).

The ``metarl train supervised`` command under this script's name: the same function, the
same flags (``metarl train supervised --help`` describes them).

Examples::

    python scripts/train_supervised.py --preset sinusoid --k-shot 5 --out-dir runs/sin-k5
    python scripts/train_supervised.py --preset sinusoid --algo fomaml --out-dir runs/fo
    python scripts/train_supervised.py --out-dir runs/sin-k5 --preset sinusoid --resume

Every run writes config.json, checkpoints/, tb/ (TensorBoard), metrics.jsonl, results.json
and PNG plots into --out-dir. See README.md and docs/results.md.
"""

from __future__ import annotations

from metarl.commands import script_main
from metarl.runs.distributed import run_rank

main = script_main("train supervised")

if __name__ == "__main__":
    run_rank(main)  # torchrun ranks skip interpreter finalisation: metarl.runs.distributed

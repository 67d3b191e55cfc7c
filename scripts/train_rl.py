#!/usr/bin/env python
"""Meta-train a policy with MAML-TRPO on a metarl task distribution (MAML section 5.3).

The ``metarl train rl`` command under this script's name: the same function, the same flags
(``metarl train rl --help`` describes them).

Examples::

    python scripts/train_rl.py --preset navigation --out-dir runs/nav-maml
    python scripts/train_rl.py --preset halfcheetah-vel --device cuda --out-dir runs/hc-vel-v1
    python scripts/train_rl.py --preset navigation --out-dir runs/nav-maml --resume
"""

from __future__ import annotations

from metarl.commands import script_main
from metarl.runs.distributed import run_rank

main = script_main("train rl")

if __name__ == "__main__":
    run_rank(main)  # torchrun ranks skip interpreter finalisation: metarl.runs.distributed

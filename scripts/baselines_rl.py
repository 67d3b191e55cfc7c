#!/usr/bin/env python
"""Baselines of the MAML paper's RL comparison (section 5.3, Figure 5), pretrained, random and
oracle, evaluated exactly like MAML (same goals, same adaptation steps and step sizes).

The ``metarl baselines`` command under this script's name: the same function, the same flags
(``metarl baselines --help`` describes them).

Examples::

    python scripts/baselines_rl.py --baseline pretrained --env metarl/Navigation2D-v0 \\
        --ppo-timesteps 500000 --out-dir runs/nav-pretrained
    python scripts/baselines_rl.py --baseline random --env metarl/Navigation2D-v0 \\
        --out-dir runs/nav-random
"""

from __future__ import annotations

from metarl.commands import script_main

main = script_main("baselines")

if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Plot return against adaptation steps for MAML and the baselines (MAML Figure 5).

The ``metarl plot rl`` command under this script's name: the same function, the same flags
(``metarl plot rl --help`` describes them).

Example::

    python scripts/plot_rl.py --results runs/nav-maml/adapt-40goals-seed1 runs/nav-pretrained \\
        runs/nav-random runs/nav-oracle --out figures/navigation.png
"""

from __future__ import annotations

from metarl.commands import script_main

main = script_main("plot rl")

if __name__ == "__main__":
    main()

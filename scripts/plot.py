#!/usr/bin/env python
"""Compare finished runs in one figure (MAML Figure 3 style), and for sinusoid runs also
their predictions on one task before and after adaptation (Figure 2 style).

The ``metarl plot supervised`` command under this script's name: the same function, the same
flags (``metarl plot supervised --help`` describes them).

Example::

    python scripts/plot.py --runs runs/sin-k5-maml runs/sin-k5-pretrained \\
        --labels MAML pretrained --out figures/sinusoid-k5.png
"""

from __future__ import annotations

from metarl.commands import script_main

main = script_main("plot supervised")

if __name__ == "__main__":
    main()

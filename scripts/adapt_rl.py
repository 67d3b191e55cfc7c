#!/usr/bin/env python
"""Adapt a trained policy to new goals and measure it, with the MAML paper's protocol.

The ``metarl adapt`` command under this script's name: the same function, the same flags
(``metarl adapt --help`` describes them).

Examples::

    python scripts/adapt_rl.py --run-dir runs/nav-maml                  # 40 test goals
    python scripts/adapt_rl.py --run-dir runs/nav-maml --goal 0.3 -0.2 --video
    python scripts/adapt_rl.py --run-dir runs/nav-maml --goals-file goals.json
    python scripts/adapt_rl.py --policy runs/nav-pretrained/policy.pt   # a baseline's policy
"""

from __future__ import annotations

from metarl.commands import script_main

main = script_main("adapt")

if __name__ == "__main__":
    main()

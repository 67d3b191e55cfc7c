#!/usr/bin/env python
"""Evaluate a supervised meta-training checkpoint on held-out tasks.

The ``metarl evaluate`` command under this script's name: the same function, the same flags
(``metarl evaluate --help`` describes them).

Example::

    python scripts/evaluate.py --run-dir runs/sin-k5 --steps 10 --tasks 600
"""

from __future__ import annotations

from metarl.commands import script_main

main = script_main("evaluate")

if __name__ == "__main__":
    main()

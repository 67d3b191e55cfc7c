#!/usr/bin/env python
"""Reproduce the MAML paper's sinusoid results (section 5.1, Figures 2-3, appendix Table 2).

The ``metarl sinusoid`` command under this script's name: the same function, the same flags
(``metarl sinusoid --help`` describes them).

Example::

    python scripts/reproduce_sinusoid.py --out-dir runs/sinusoid-paper --compile
"""

from __future__ import annotations

from metarl.commands import script_main

main = script_main("sinusoid")

if __name__ == "__main__":
    main()

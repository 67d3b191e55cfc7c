"""Evaluate a supervised meta-training checkpoint on held-out tasks.

Adapts from the checkpoint's parameters with 0..--steps gradient steps on each of --tasks tasks
and reports the query loss (and accuracy for classification) with a 95% confidence interval.
The result goes to a new JSON file in the run folder, its adaptation curve to a PNG of the same
name (existing files are never overwritten).

Example::

    metarl evaluate --run-dir runs/sin-k5 --steps 10 --tasks 600
"""

from __future__ import annotations

from metarl.commands import run_command
from metarl.supervised.evaluate_run import EvalConfig, evaluate_run


def main(argv: list[str] | None = None) -> None:
    """``metarl evaluate``: :func:`evaluate_run` with the flags of :class:`EvalConfig`."""
    run_command(EvalConfig, evaluate_run, argv, __doc__)

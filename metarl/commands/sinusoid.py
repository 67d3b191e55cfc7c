"""Reproduce the MAML paper's sinusoid results (section 5.1, Figures 2-3, appendix Table 2).

Each algorithm is meta-trained with the paper's settings (one inner step of α = 0.01, Reptile
ten; meta-batch 25, Adam 1e-3, 70,000 iterations) with K = 5, 10 and 20 support points, and
evaluated by fine-tuning on K points of the same 600 held-out tasks, after 0..10 gradient steps
with the same α. ``--train-shots 10`` instead trains one model per algorithm with K = 10 and
evaluates it at every K, as the paper's text describes. The pretrained baseline (joint
training on all tasks) gets a step size tuned on validation tasks for each K. Writes
``summary.json``, ``summary.md`` (the results table) and a comparison figure (Figure 3) and
prediction figure (Figure 2) per K.

Finished runs (a results.json not marked ``"finished": false``) are reused, unfinished ones
resume from their checkpoints, so an interrupted reproduction continues where it stopped.

Example::

    metarl sinusoid --out-dir runs/sinusoid-paper --compile
"""

from __future__ import annotations

from metarl.commands import run_command
from metarl.supervised.reproduce import ReproduceConfig, reproduce_sinusoid


def main(argv: list[str] | None = None) -> None:
    """``metarl sinusoid``: :func:`reproduce_sinusoid` with the flags of
    :class:`ReproduceConfig`."""
    run_command(ReproduceConfig, reproduce_sinusoid, argv, __doc__)

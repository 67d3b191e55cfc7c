"""Compare finished runs in one figure (MAML Figure 3 style), and for sinusoid runs also
their predictions on one task before and after adaptation (Figure 2 style).

Example::

    metarl plot supervised --runs runs/sin-k5-maml runs/sin-k5-pretrained \\
        --labels MAML pretrained --out figures/sinusoid-k5.png
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from metarl.commands import FigureFlags, run_command
from metarl.supervised.compare import plot_runs


@dataclass(kw_only=True)
class PlotConfig(FigureFlags):
    """Plot adaptation curves of several runs against each other."""

    runs: list[Path]
    """Run folders (each with a results.json written by metarl train supervised)."""
    predictions: bool = True
    """Also draw predictions on one task (sinusoid runs only), into
    <out stem>-predictions.png."""


def draw(cfg: PlotConfig) -> None:
    """:func:`plot_runs` of the flags, and the files it wrote."""
    for path in plot_runs(cfg.runs, cfg.out, labels=cfg.labels, title=cfg.title,
                          predictions=cfg.predictions):
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    """``metarl plot supervised``: :func:`draw` with the flags of :class:`PlotConfig`."""
    run_command(PlotConfig, draw, argv, __doc__, heap=False)

"""Plot return against adaptation steps for MAML and the baselines (MAML Figure 5).

Example::

    metarl plot rl --results runs/nav-maml/adapt-40goals-seed1 runs/nav-pretrained \\
        runs/nav-random runs/nav-oracle --out figures/navigation.png
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from metarl.commands import FigureFlags, run_command
from metarl.rl.compare import plot_evaluations


@dataclass(kw_only=True)
class PlotRLConfig(FigureFlags):
    """Compare evaluations written by metarl adapt and metarl baselines."""

    results: list[Path]
    """Folders (or results.json files) of evaluations."""


def draw(cfg: PlotRLConfig) -> None:
    """:func:`plot_evaluations` of the flags, and the file it wrote."""
    print(f"wrote {plot_evaluations(cfg.results, cfg.out, labels=cfg.labels, title=cfg.title)}")


def main(argv: list[str] | None = None) -> None:
    """``metarl plot rl``: :func:`draw` with the flags of :class:`PlotRLConfig`."""
    run_command(PlotRLConfig, draw, argv, __doc__, heap=False)

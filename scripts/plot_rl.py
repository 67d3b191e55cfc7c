#!/usr/bin/env python
"""Plot return against adaptation steps for MAML and the baselines (MAML Figure 5).

Example::

    python scripts/plot_rl.py --results runs/nav-maml/adapt-40goals-seed1 runs/nav-pretrained \\
        runs/nav-random runs/nav-oracle --out figures/navigation.png
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tyro

from metarl.errors import require
from metarl.rl.evaluation import load_evaluations
from metarl.runs.cli import cli_errors
from metarl.runs.io import output_file
from metarl.runs.plotting import plot_adaptation_curves


@dataclass
class PlotRLConfig:
    """Compare evaluations written by adapt_rl.py and baselines_rl.py."""

    results: list[Path]
    """Folders (or results.json files) of evaluations."""
    out: Path
    """Output PNG."""
    labels: list[str] = field(default_factory=list)
    """Legend labels (default: each evaluation's own label)."""
    title: str = ""
    """Figure title (default: the env id)."""


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(PlotRLConfig, args=argv, description=__doc__)
    loaded = load_evaluations(cfg.results, cfg.labels)
    envs = {r["env"] for r in loaded}
    require(len(envs) == 1, f"evaluations of different envs in one plot: {sorted(envs)}")
    output_file(cfg.out)  # after the inputs are checked: a bad input leaves no new folder
    labels = cfg.labels or [r["label"] for r in loaded]
    plot_adaptation_curves(list(zip(labels, loaded)), cfg.out, metric="returns",
                           ylabel="average return", title=cfg.title or envs.pop())
    print(f"wrote {cfg.out}")


if __name__ == "__main__":
    main()

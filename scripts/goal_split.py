#!/usr/bin/env python
"""Split evaluations' returns into near and far goals (distance from the start).

An evaluation's mean over goals can hide where it loses: for 2D navigation the goals far
from the start need a longer move than one or two adaptation steps make (docs/results.md).
This prints, per evaluation of adapt_rl.py / baselines_rl.py, the mean return (± 95% CI)
after each adaptation step over the goals nearer than --distance and over the rest, and the
median goal; --out also writes it as JSON.

Example::

    python scripts/goal_split.py --results runs/nav-a05/adapt-goals-maml-paper-goals \\
        runs/nav-a05-s1/adapt-goals-maml-paper-goals --distance 0.45
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro

from metarl.errors import cli_errors, require
from metarl.io import atomic_write_json
from metarl.rl_eval import load_evaluation, split_by_goal_distance


@dataclass
class GoalSplitConfig:
    """Near / far goal breakdown of evaluations."""

    results: list[Path]
    """Folders (or results.json files) of evaluations."""
    distance: float = 0.45
    """Goals with ‖task‖ below this are "near" (navigation: distance from the start)."""
    out: Path | None = None
    """Also write the breakdowns as JSON here (a list, one entry per evaluation)."""


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(GoalSplitConfig, args=argv, description=__doc__)
    require(cfg.distance > 0, f"--distance must be positive, got {cfg.distance}")
    rows = []
    for path in cfg.results:
        split = split_by_goal_distance(load_evaluation(path), cfg.distance)
        rows.append({"results": str(path), **split})
        print(f"{path}: {split['near']['count']} goals nearer than {cfg.distance:g}, "
              f"{split['far']['count']} farther")
        for i, k in enumerate(split["steps"]):
            near, far = split["near"], split["far"]
            print(f"  after {k} step(s): near {near['mean'][i]:8.2f} ± {near['ci95'][i]:.2f}"
                  f"   far {far['mean'][i]:8.2f} ± {far['ci95'][i]:.2f}"
                  f"   median goal {split['median'][i]:8.2f}")
    if cfg.out is not None:
        atomic_write_json(cfg.out, rows)
        print(f"wrote {cfg.out}")


if __name__ == "__main__":
    main()

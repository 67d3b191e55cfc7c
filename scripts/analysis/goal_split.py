#!/usr/bin/env python
"""Split evaluations' returns by goal: near / far goals, or per distinct task value.

An evaluation's mean over goals can hide where it loses or where it comes from. For 2D
navigation the goals far from the start need a longer move than one or two adaptation steps
make; for the direction tasks a pre-update policy that favours one direction makes the
0-step mean depend on the draw's mix of directions. Per evaluation of
adapt_rl.py / baselines_rl.py this prints the mean return (± 95% CI) after each adaptation
step: with ``--by distance`` over the goals nearer than --distance and over the rest, and the
median goal; with ``--by task`` per distinct task (e.g. direction −1 and +1) and the mean of
those means, each task weighted equally. With ``--terms`` it also prints, per group and
step, each reward term's mean per environment step and the fraction of episodes the env
ended (AntVel's ``reward_forward`` is the speed error ``-|vₓ - v*|``; a fall ends an Ant
episode), for evaluations that recorded them. --out also writes it all as JSON.

Examples::

    python scripts/analysis/goal_split.py --results runs/nav-a05/adapt-goals-maml-paper-goals \\
        runs/nav-a05-s1/adapt-goals-maml-paper-goals --distance 0.45
    python scripts/analysis/goal_split.py --by task --results docs/evals/hc-dir-v1-maml-best.json
    python scripts/analysis/goal_split.py --terms --distance 2 \\
        --results runs/ant-vel/adapt-40goals-seed1
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tyro

from metarl.errors import require
from metarl.rl.evaluation import load_evaluation, split_by_goal_distance, split_by_task_value
from metarl.runs.cli import cli_errors
from metarl.runs.io import atomic_write_json


@dataclass
class GoalSplitConfig:
    """Near / far or per-task breakdown of evaluations."""

    results: list[Path]
    """Folders (or results.json files) of evaluations."""
    by: Literal["distance", "task"] = "distance"
    """"distance": near / far goals (continuous task spaces); "task": per distinct task value
    (discrete ones, e.g. the direction tasks)."""
    distance: float = 0.45
    """Goals with ‖task‖ below this are "near" (navigation: distance from the start)."""
    terms: bool = False
    """Also print each reward term's mean per step and the fraction of episodes the env ended,
    per group and adaptation step (evaluations that recorded them)."""
    out: Path | None = None
    """Also write the breakdowns as JSON here (a list, one entry per evaluation)."""


def _print_distance(path: Path, split: dict[str, Any], distance: float) -> None:
    near, far = split["near"], split["far"]
    print(f"{path}: {near['count']} goals nearer than {distance:g}, {far['count']} farther")
    def cell(group: dict[str, Any], i: int) -> str:  # an empty group has no mean
        if group["count"] == 0:
            return f"{'(none)':>8}" + " " * 7
        return f"{group['mean'][i]:8.2f} ± {group['ci95'][i]:.2f}".ljust(15)

    for i, k in enumerate(split["steps"]):
        print(f"  after {k} step(s): near {cell(near, i)}   far {cell(far, i)}"
              f"   median goal {split['median'][i]:8.2f}")


def _print_task(path: Path, split: dict[str, Any]) -> None:
    groups = split["groups"]
    print(f"{path}: " + ", ".join(f"{g['count']} goals with task {g['task']}" for g in groups))
    for i, k in enumerate(split["steps"]):
        cells = "   ".join(f"{g['task']} {g['mean'][i]:8.2f} ± {g['ci95'][i]:.2f}" for g in groups)
        print(f"  after {k} step(s): {cells}   balanced {split['balanced_mean'][i]:8.2f}")


def _print_terms(steps: list[int], groups: list[tuple[str, dict[str, Any]]]) -> None:
    """Per step and group: the reward terms' means per step and the terminated fraction."""
    if not any("terms" in g or "terminated" in g for _, g in groups):
        print("  (no reward terms recorded: evaluated before they were; evaluate again)")
        return
    for i, k in enumerate(steps):
        for name, group in groups:
            cells = [f"{term.removeprefix('reward_')} {v[i]:.3f}"
                     for term, v in group.get("terms", {}).items()]
            if "terminated" in group:
                cells.append(f"terminated {group['terminated'][i]:.2f}")
            print(f"    after {k} step(s), {name}: " + ", ".join(cells))


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(GoalSplitConfig, args=argv, description=__doc__)
    require(cfg.distance > 0, f"--distance must be positive, got {cfg.distance}")
    rows = []
    for path in cfg.results:
        result = load_evaluation(path)
        if cfg.by == "task":
            split = split_by_task_value(result)
            _print_task(path, split)
            named = [(f"task {g['task']}", g) for g in split["groups"]]
        else:
            split = split_by_goal_distance(result, cfg.distance)
            _print_distance(path, split, cfg.distance)
            named = [("near", split["near"]), ("far", split["far"])]
        if cfg.terms:
            _print_terms(split["steps"], named)
        rows.append({"results": str(path), "by": cfg.by, **split})
    if cfg.out is not None:
        atomic_write_json(cfg.out, rows)
        print(f"wrote {cfg.out}")


if __name__ == "__main__":
    main()

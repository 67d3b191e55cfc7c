#!/usr/bin/env python
"""Spread of adaptation returns across independently trained policies (training seeds).

One meta-RL training run is one draw; whether a paper's number is reached is a statement
about the distribution over training seeds, not one run's confidence interval over goals.
Given evaluations of several training seeds' policies on the same goals (adapt_rl.py with
the same --seed/--num-tasks or --goals-file), this prints each seed's mean return after every
adaptation step and their mean, standard deviation, median, min and max; with --reference
(one value per step from step 0, e.g. the paper's) also how many seeds reach it. Writes
``summary.json`` (machine-readable) and ``seeds.png`` (every seed and the mean) to --out-dir.

Example::

    python scripts/analysis/seed_summary.py --results runs/nav-a05/adapt-40goals-seed1 \\
        runs/nav-a05-s1/adapt-40goals-seed1 runs/nav-a05-s2/adapt-40goals-seed1 \\
        --reference -40.4 -11.7 -3.3 --out-dir runs/nav-seeds
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tyro

from metarl.errors import require
from metarl.rl.evaluation import load_evaluations, summarize_seeds
from metarl.runs.cli import cli_errors
from metarl.runs.io import atomic_write_json, output_folder
from metarl.runs.plotting import plot_seed_spread
from metarl.runs.rundir import check_writable


@dataclass
class SeedSummaryConfig:
    """Across-seed summary of adapt_rl.py evaluations."""

    results: list[Path]
    """Evaluation folders (or results.json files), one per training seed, same goals."""
    out_dir: Path
    """Where summary.json and seeds.png go."""
    labels: list[str] = field(default_factory=list)
    """A name per evaluation (default: the folder of the run it evaluated)."""
    reference: list[float] = field(default_factory=list)
    """Values to compare with, one per adaptation step from step 0 (e.g. -40.4 -11.7 -3.3)."""
    title: str = ""
    """Figure title (default: the env id)."""


def _default_label(path: Path, result: dict) -> str:
    """The training run's folder name (…/<run>/adapt-…), or the evaluation's own folder."""
    folder = path if path.is_dir() else path.parent
    source = (result.get("policy") or {}).get("source")
    if source and Path(source).parent.name == "checkpoints":
        return Path(source).parent.parent.name
    return folder.name


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(SeedSummaryConfig, args=argv, description=__doc__)
    written = [cfg.out_dir / "summary.json", cfg.out_dir / "seeds.png"]
    require(not any(p.exists() for p in written),
            f"{cfg.out_dir} already holds a seed summary; choose another --out-dir "
            "(nothing was overwritten)")
    output_folder(cfg.out_dir)
    loaded = load_evaluations(cfg.results, cfg.labels)
    labels = cfg.labels or [_default_label(p, r) for p, r in zip(cfg.results, loaded)]
    summary = summarize_seeds(loaded, cfg.reference or None)
    summary["labels"] = labels
    summary["results"] = [str(p) for p in cfg.results]
    steps = summary["steps"]
    width = max(len(label) for label in [*labels, "reference"])
    print(f"{summary['num_seeds']} seeds, {summary['num_goals']} goals, {summary['env']}")
    print(" " * width + "".join(f"{f'{k} steps':>10}" for k in steps))
    for label, row in zip(labels, summary["per_seed"]):
        print(f"{label:<{width}}" + "".join(f"{v:10.2f}" for v in row))
    for name in ("mean", "std", "median", "min", "max"):
        print(f"{name:<{width}}" + "".join(f"{v:10.2f}" for v in summary[name]))
    if cfg.reference:
        print(f"{'reference':<{width}}" + "".join(f"{v:10.2f}" for v in cfg.reference))
        print(f"{'reached':<{width}}" + "".join(
            f"{f'{c}/{len(loaded)}':>10}" for c in summary["seeds_reaching_reference"]))
    check_writable(cfg.out_dir)  # creates it
    atomic_write_json(cfg.out_dir / "summary.json", summary)
    plot_seed_spread(summary, labels, cfg.out_dir / "seeds.png",
                     title=cfg.title or summary["env"])
    print(f"wrote {cfg.out_dir / 'summary.json'} and {cfg.out_dir / 'seeds.png'}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Compare two evaluations on the same goals, goal for goal.

A gap between two evaluations' mean returns means little next to their 95% CIs over goals,
but most of that width is the goals' own spread (a far navigation goal costs every policy
more than a near one). On the same goals the per-goal differences cancel it: this prints,
after each adaptation step both evaluations have, their means over the goals, the mean
per-goal difference (first − second) with its 95% CI, and on how many goals the first is
higher. A CI that contains 0 means the goals cannot tell the two apart.

The second evaluation can be any results.json with ``steps``, ``tasks`` and
``returns_per_task``: e.g. the MAML paper's per-goal Figure 5 data (converted into such a
file), against adapt_rl.py run with ``--goals-file`` on the same goals.
--out also writes the comparison as JSON.

Example::

    python scripts/analysis/paired_compare.py \\
        --results docs/evals/nav-maml-cut-s0-it90-paper-goals.json \\
        docs/evals/nav-paper-figure5-maml.json --labels ours paper
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tyro

from metarl.errors import require
from metarl.rl.evaluation import load_evaluations, paired_difference
from metarl.runs.cli import cli_errors
from metarl.runs.io import atomic_write_json


@dataclass
class PairedCompareConfig:
    """Goal-for-goal difference of two evaluations."""

    results: list[Path]
    """Two evaluation folders (or results.json files) made on the same goals."""
    labels: list[str] = field(default_factory=list)
    """A name for each (default: "first" and "second")."""
    out: Path | None = None
    """Also write the comparison as JSON here (never over an existing file)."""


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(PairedCompareConfig, args=argv, description=__doc__)
    require(len(cfg.results) == 2,
            f"give exactly two evaluations to --results, got {len(cfg.results)}")
    require(cfg.out is None or not cfg.out.exists(),
            f"{cfg.out} already exists; choose another --out (nothing was overwritten)")
    a, b = load_evaluations(cfg.results, cfg.labels)
    first, second = cfg.labels or ["first", "second"]
    out = paired_difference(a, b)
    out["labels"] = [first, second]
    out["results"] = [str(p) for p in cfg.results]
    out["step_sizes"] = [a.get("step_sizes"), b.get("step_sizes")]
    print(f"{out['num_goals']} shared goals; step sizes: {first} {out['step_sizes'][0]}, "
          f"{second} {out['step_sizes'][1]}")
    width = max(len(first), len(second))
    for i, k in enumerate(out["steps"]):
        print(f"after {k} step(s): {first:>{width}} {out['mean_a'][i]:8.2f}   "
              f"{second:>{width}} {out['mean_b'][i]:8.2f}   difference "
              f"{out['difference'][i]:+7.2f} ± {out['difference_ci95'][i]:.2f}   "
              f"{first} higher on {out['a_higher'][i]} of {out['num_goals']} goals")
    if cfg.out is not None:
        atomic_write_json(cfg.out, out)
        print(f"wrote {cfg.out}")


if __name__ == "__main__":
    main()

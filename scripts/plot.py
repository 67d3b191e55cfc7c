#!/usr/bin/env python
"""Compare finished runs in one figure (MAML Figure 3 style), and for sinusoid runs also
their predictions on one task before and after adaptation (Figure 2 style).

Example::

    python scripts/plot.py --runs runs/sin-k5-maml runs/sin-k5-pretrained \\
        --labels MAML pretrained --out figures/sinusoid-k5.png
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tyro

from metarl.core.functional import params_of
from metarl.errors import MetaRLError, require
from metarl.runs.cli import cli_errors
from metarl.runs.io import output_file, read_json
from metarl.runs.plotting import plot_adaptation_curves
from metarl.runs.rundir import is_finished
from metarl.supervised.plots import plot_sinusoid_predictions
from metarl.supervised.runner import load_run


@dataclass
class PlotConfig:
    """Plot adaptation curves of several runs against each other."""

    runs: list[Path]
    """Run folders (each with a results.json written by train_supervised.py)."""
    out: Path
    """Output PNG of the adaptation curves; predictions go to <out stem>-predictions.png."""
    labels: list[str] = field(default_factory=list)
    """Legend labels, one per run (default: each run's algorithm)."""
    title: str = ""
    """Figure title."""
    predictions: bool = True
    """Also draw predictions on one task (sinusoid runs only)."""


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(PlotConfig, args=argv, description=__doc__)
    require(not cfg.labels or len(cfg.labels) == len(cfg.runs),
            f"got {len(cfg.labels)} --labels for {len(cfg.runs)} --runs; give one per run")
    results = []
    runs = [run.parent if run.name == "results.json" else run for run in cfg.runs]
    for run in runs:
        path = run / "results.json"
        if not path.is_file():
            raise MetaRLError(f"{run} has no results.json; is the run finished?")
        result = read_json(path, "a train_supervised.py results.json")
        if not isinstance(result, dict) or "family" not in result:
            raise MetaRLError(
                f"{run} is not a train_supervised.py run; a train_rl.py run's adaptation is "
                "plotted with plot_rl.py --results <its adapt-* folder>")
        if not is_finished(result):
            raise MetaRLError(
                f"{run} was stopped at iteration {result.get('iterations')} and has no test "
                "evaluation; finish it with train_supervised.py --resume, or evaluate a "
                "checkpoint with evaluate.py")
        results.append(result)
    labels = cfg.labels or [r["algo"] for r in results]
    families = {r["family"] for r in results}
    require(len(families) == 1, f"runs of different families ({sorted(families)}) in one plot")
    output_file(cfg.out)  # after the inputs are checked: a bad input leaves no new folder
    classification = "accuracy_mean" in results[0]["test"]
    metric = "accuracy" if classification else "loss"
    ylabel = "test accuracy" if classification else "mean squared error"
    written = [plot_adaptation_curves(list(zip(labels, (r["test"] for r in results))), cfg.out,
                                      metric=metric, ylabel=ylabel, title=cfg.title)]
    if cfg.predictions and families == {"sinusoid"}:
        loaded = [load_run(run) for run in runs]
        k_shots = {c.k_shot for c, _, _ in loaded}
        require(len(k_shots) == 1, "sinusoid runs with different --k-shot in one plot")
        models = [(lab, prob, params_of(prob.model)) for lab, (_, prob, _) in zip(labels, loaded)]
        lrs = [r["test"]["inner_lr"] for r in results]
        written.append(plot_sinusoid_predictions(
            models, cfg.out.with_name(cfg.out.stem + "-predictions.png"),
            k_shot=k_shots.pop(), lr=lrs))
    for p in written:
        print(f"wrote {p}")


if __name__ == "__main__":
    main()

"""Finished supervised runs compared in one figure: what ``metarl plot supervised`` draws.

The test curves of several runs of one family (MAML Figure 3 style) and, for sinusoid runs,
their predictions on one task before and after adaptation (Figure 2 style).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from metarl.core.functional import params_of
from metarl.errors import MetaRLError, require
from metarl.runs.io import output_file, read_json
from metarl.runs.plotting import plot_adaptation_curves
from metarl.runs.rundir import is_finished
from metarl.supervised.plots import plot_sinusoid_predictions
from metarl.supervised.runner import load_run


def finished_results(run: Path) -> dict:
    """The results.json of a finished train_supervised.py run, or one clear error naming what
    the folder is instead (no results, an RL run, a run stopped before its test)."""
    path = run / "results.json"
    if not path.is_file():
        raise MetaRLError(f"{run} has no results.json; is the run finished?")
    result = read_json(path, "a `metarl train supervised` results.json")
    if not isinstance(result, dict) or "family" not in result:
        raise MetaRLError(
            f"{run} is not a `metarl train supervised` run; a `metarl train rl` run's adaptation "
            "is plotted with `metarl plot rl --results <its adapt-* folder>`")
    if not is_finished(result):
        raise MetaRLError(
            f"{run} was stopped at iteration {result.get('iterations')} and has no test "
            "evaluation; finish it with `metarl train supervised --resume`, or evaluate a "
            "checkpoint with `metarl evaluate`")
    return result


def plot_runs(runs: Sequence[Path], out: Path, *, labels: Sequence[str] = (), title: str = "",
              predictions: bool = True) -> list[Path]:
    """Draw the test curves of ``runs`` (run folders or their results.json) into ``out``,
    labelled with ``labels`` (default: each run's algorithm); for sinusoid runs with
    ``predictions`` also their predictions on one task into ``<out stem>-predictions.png``.
    Every input is checked before anything is written; returns the files written."""
    require(not labels or len(labels) == len(runs),
            f"got {len(labels)} --labels for {len(runs)} --runs; give one per run")
    folders = [run.parent if run.name == "results.json" else run for run in runs]
    results = [finished_results(run) for run in folders]
    labels = list(labels) or [r["algo"] for r in results]
    families = {r["family"] for r in results}
    require(len(families) == 1, f"runs of different families ({sorted(families)}) in one plot")
    output_file(out)  # after the inputs are checked: a bad input leaves no new folder
    classification = "accuracy_mean" in results[0]["test"]
    metric = "accuracy" if classification else "loss"
    ylabel = "test accuracy" if classification else "mean squared error"
    written = [plot_adaptation_curves(list(zip(labels, (r["test"] for r in results))), out,
                                      metric=metric, ylabel=ylabel, title=title)]
    if predictions and families == {"sinusoid"}:
        loaded = [load_run(run) for run in folders]
        k_shots = {c.k_shot for c, _, _ in loaded}
        require(len(k_shots) == 1, "sinusoid runs with different --k-shot in one plot")
        models = [(lab, prob, params_of(prob.model)) for lab, (_, prob, _) in zip(labels, loaded)]
        written.append(plot_sinusoid_predictions(
            models, out.with_name(out.stem + "-predictions.png"), k_shot=k_shots.pop(),
            lr=[r["test"]["inner_lr"] for r in results]))
    return written

"""Evaluations of MAML and the baselines compared in one figure: what ``metarl plot rl`` draws
(MAML Figure 5: the mean return against adaptation steps)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from metarl.errors import require
from metarl.rl.evaluation import load_evaluations
from metarl.runs.io import output_file
from metarl.runs.plotting import plot_adaptation_curves


def plot_evaluations(results: Sequence[Path], out: Path, *, labels: Sequence[str] = (),
                     title: str = "") -> Path:
    """Draw the evaluations at ``results`` (folders or results.json files written by the adapt
    and baselines commands) into ``out``, labelled with ``labels`` (default: each one's own
    label), titled ``title`` (default: the env id). They must be of one env; every input is
    checked before anything is written. Returns ``out``."""
    loaded = load_evaluations(results, labels)
    envs = {r["env"] for r in loaded}
    require(len(envs) == 1, f"evaluations of different envs in one plot: {sorted(envs)}")
    output_file(out)  # after the inputs are checked: a bad input leaves no new folder
    names = list(labels) or [r["label"] for r in loaded]
    return plot_adaptation_curves(list(zip(names, loaded)), out, metric="returns",
                                  ylabel="average return", title=title or envs.pop())

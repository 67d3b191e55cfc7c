"""Evaluating a checkpoint of a supervised run on held-out tasks: what ``metarl evaluate`` runs.

From the checkpoint's parameters, 0..``steps`` gradient steps on each of ``tasks`` tasks of a
split, with the query loss (and accuracy for classification) and its 95% confidence interval
after each; the result goes to a new JSON file in the run folder (or ``--out``) and its
adaptation curve to a PNG of the same name. Existing files are never overwritten.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarl.core.functional import detach, params_of
from metarl.errors import MetaRLError, require, require_positive_number, require_seed
from metarl.runs.io import atomic_write_json, output_file, output_folder, read_json
from metarl.runs.plotting import plot_adaptation_curves
from metarl.runs.rundir import unique_path
from metarl.supervised import evaluation
from metarl.supervised.config import SupervisedConfig
from metarl.supervised.runner import load_run


@dataclass
class EvalConfig:
    """Evaluate a checkpoint of a supervised run."""

    run_dir: Path
    """The run folder written by metarl train supervised (holds config.json and checkpoints/)."""
    checkpoint: Path | None = None
    """A checkpoint file to evaluate (default: the run's newest valid checkpoint)."""
    steps: int = 10
    """Report results after 0, 1, ..., this many adaptation steps."""
    tasks: int = 600
    """Number of held-out tasks (the paper uses 600)."""
    split: str = "test"
    """Which split's tasks to draw: test, val or train."""
    inner_lr: float | None = None
    """Adaptation step size (default: the run's evaluation step size; for a pretrained
    baseline, the one its training tuned on validation, as its results.json records)."""
    k_shot: int | None = None
    """Evaluate with a different number of support examples than the run trained with."""
    seed: int | None = None
    """Seed of the task draw (default: the run's eval seed, shared by all runs)."""
    device: str | None = None
    """cpu or cuda (default: the run's device)."""
    data_root: Path | None = None
    """Dataset folder, if it has moved since training (default: the run's); it must hold the
    data the run was trained on (checked by the digest in the run's config.json)."""
    out: Path | None = None
    """Output JSON (default: <run-dir>/eval-<split>-<steps>steps-<tasks>tasks.json); a folder
    gets the file of that default name."""


def step_size(cfg: EvalConfig, run_cfg: SupervisedConfig) -> tuple[float, str]:
    """The adaptation step size and where it came from: --inner-lr, else the run's
    --eval-inner-lr, else for a pretrained baseline the step size its training tuned on
    validation (results.json; the baseline's training step size is no adaptation step size),
    else the run's inner step size."""
    if cfg.inner_lr is not None:
        return cfg.inner_lr, "--inner-lr"
    if run_cfg.eval_inner_lr is not None:
        return run_cfg.eval_inner_lr, "the run's --eval-inner-lr"
    if run_cfg.algo == "pretrained":
        results = cfg.run_dir / "results.json"
        try:
            tuned = read_json(results, "a results.json")["step_size_tuning"]["chosen"]
        except (MetaRLError, KeyError, TypeError):
            print(f"warning: {results} holds no tuned step size (the run has not finished); "
                  f"adapting with its --inner-lr {run_cfg.inner_lr:g} (give --inner-lr to "
                  "choose)", file=sys.stderr)
        else:
            return float(tuned), "tuned on validation at the end of training (results.json)"
    return run_cfg.inner_lr, "the run's --inner-lr"


def output_paths(cfg: EvalConfig) -> tuple[Path, Path]:
    """The result's JSON file and its figure, known writable before the evaluation runs (an
    evaluation of 600 tasks should not be lost to a read-only folder). --out names the JSON
    (an existing folder gets the default name inside it), else it goes into the run folder;
    the figure goes beside it as .png. Neither overwrites an existing file
    (:func:`unique_path`)."""
    name = f"eval-{cfg.split}-{cfg.steps}steps-{cfg.tasks}tasks.json"
    if cfg.out is None:
        out = output_folder(cfg.run_dir, "--out", default=True) / name
    else:
        out = output_file(cfg.out / name if cfg.out.is_dir() else cfg.out)
        require(out.suffix.lower() != ".png",
                f"--out {out} would be the figure's name; give the JSON file's, e.g. "
                f"{out.with_suffix('.json')} (the figure goes beside it)")
    out = unique_path(out)
    return out, unique_path(out.with_suffix(".png"))



def evaluate_run(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate the checkpoint ``cfg`` names and write the result and its figure; returns the
    result as its JSON file holds it. The inputs and the output files are checked before the
    evaluation runs."""
    require(cfg.steps >= 0, f"--steps must be >= 0, got {cfg.steps}")
    require(cfg.tasks >= 1, f"--tasks must be at least 1, got {cfg.tasks}")
    require_positive_number(cfg.inner_lr, "--inner-lr")
    require_seed(cfg.seed, "--seed")
    run_cfg, problem, ckpt = load_run(cfg.run_dir, cfg.checkpoint, cfg.device,
                                      k_shot=cfg.k_shot, data_root=cfg.data_root)
    require(cfg.split in problem.splits,
            f"unknown --split {cfg.split!r}; choose one of {', '.join(problem.splits)}")
    lr, lr_source = step_size(cfg, run_cfg)
    out, figure = output_paths(cfg)
    offset = {"train": 0, "val": 1, "test": 2}[cfg.split]
    seed = cfg.seed if cfg.seed is not None else run_cfg.eval_seed + offset
    view = problem.inner_view(detach(params_of(problem.model)))  # adapts the fast weights only
    # looked up in its module at call time, so that a test may stand in for the evaluation
    result = evaluation.evaluate(view.loss_fn, view.metric_fn, view.fast,
                                 problem.splits[cfg.split], n_tasks=cfg.tasks, steps=cfg.steps,
                                 lr=lr, seed=seed, chunk=run_cfg.eval_chunk,
                                 vectorize=run_cfg.task_batching != "loop")
    result["inner_lr_source"] = lr_source
    metric = "accuracy" if "accuracy_mean" in result else "loss"
    plot_adaptation_curves([(f"{run_cfg.algo}, {cfg.split} split", result)], figure,
                           metric=metric, ylabel=f"{cfg.split} {metric}",
                           title=f"{cfg.run_dir.name}: {cfg.tasks} tasks, α = {lr:g}")
    written = {"checkpoint": str(ckpt), "split": cfg.split, "seed": seed,
               "k_shot": run_cfg.k_shot, **result, "plots": [figure.name]}
    atomic_write_json(out, written)
    print(f"{ckpt}: {metric} on {cfg.tasks} {cfg.split} tasks (α={lr:g}: {lr_source})")
    for s in result["steps"]:
        mean, ci = result[f"{metric}_mean"][s], result[f"{metric}_ci95"][s]
        print(f"  {s:2d} steps: {mean:.4f} ± {ci:.4f}")
    print(f"written to {out} and {figure}")
    return written

"""The MAML paper's sinusoid results reproduced (section 5.1, Figures 2-3, appendix Table 2):
what ``metarl sinusoid`` runs.

Each algorithm is meta-trained with the paper's settings (one inner step of α = 0.01, Reptile
ten; meta-batch 25, Adam 1e-3, 70,000 iterations) with K = 5, 10 and 20 support points, and
evaluated by fine-tuning on K points of the same 600 held-out tasks, after 0..10 gradient steps
with the same α; or, with ``train_shots``, one model per algorithm trained with that K and
evaluated at every K, as the paper's text describes. The pretrained baseline (joint training
on all tasks) gets a step size tuned on validation tasks for each K. Finished runs are reused
and unfinished ones resumed, so an interrupted reproduction continues where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from metarl.core.functional import params_of
from metarl.errors import require
from metarl.runs.io import atomic_write_bytes, atomic_write_json
from metarl.runs.plotting import plot_adaptation_curves
from metarl.runs.rundir import completed_results
from metarl.supervised.config import SupervisedConfig, apply_preset
from metarl.supervised.evaluation import evaluate, tune_step_size
from metarl.supervised.plots import plot_sinusoid_predictions
from metarl.supervised.runner import load_run, train

# Per-algorithm settings on top of the paper preset. Reptile (Nichol et al., 2018) needs
# several inner steps to differ from joint training: 10 steps of α = 0.01 on the task's
# support and query points (a short sweep is in docs/results.md).
ALGO_SETTINGS: dict[str, dict[str, Any]] = {
    "maml": {},
    "fomaml": {},
    "reptile": {"inner_steps": 10},
    "pretrained": {},
}
REPORT_STEPS = (0, 1, 5, 10)
TUNING_GRID = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


@dataclass
class ReproduceConfig:
    """Train each algorithm once, evaluate it at every K on the same held-out tasks."""

    out_dir: Path = Path("runs/sinusoid-paper")
    """Folder holding one run folder per algorithm plus the summary and figures."""
    algos: tuple[str, ...] = ("maml", "fomaml", "reptile", "pretrained")
    """Algorithms to compare."""
    train_shots: int | None = None
    """K used for meta-training (default: the K being evaluated; the paper's text: 10)."""
    eval_shots: tuple[int, ...] = (5, 10, 20)
    """Values of K to evaluate with (the paper: 5, 10, 20)."""
    iterations: int = 70000
    """Meta-training iterations per run (the paper's code: 70,000)."""
    test_tasks: int = 600
    """Held-out tasks per evaluation."""
    compile: bool = False
    """torch.compile the meta-objective (faster on CPU after about a minute of compiling)."""
    seed: int = 0
    """Training seed of every run."""


def _evaluated_checkpoint(run_dir: Path) -> Path | None:
    """best.pt when the run selected its checkpoint on validation, else the newest one."""
    best = run_dir / "checkpoints" / "best.pt"
    return best if best.is_file() else None


def _row(label: str, test: dict) -> str:
    cells = [f"{test['loss_mean'][s]:.3f} ± {test['loss_ci95'][s]:.3f}" for s in REPORT_STEPS]
    return f"| {label} | " + " | ".join(cells) + " |"


def reproduce_sinusoid(cfg: ReproduceConfig) -> dict[str, Any]:
    """Train (or reuse, or resume) every run ``cfg`` asks for, evaluate each at every K on the
    same held-out tasks, and write summary.json, summary.md and the figures into
    ``cfg.out_dir``; returns the summary as summary.json holds it."""
    unknown = set(cfg.algos) - set(ALGO_SETTINGS)
    require(not unknown, f"unknown algorithm(s) {sorted(unknown)}; choose from "
                         f"{', '.join(ALGO_SETTINGS)}")
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    train_seconds: dict[str, float] = {}

    def run_dir_for(k: int, algo: str) -> Path:
        k_train = cfg.train_shots or k
        run_dir = cfg.out_dir / f"k{k_train}-{algo}"
        if completed_results(run_dir, cfg.iterations) is None:  # new, stopped, or shorter
            run = apply_preset(SupervisedConfig(), "sinusoid")
            run = replace(run, k_shot=k_train, algo=algo, iterations=cfg.iterations,
                          compile=cfg.compile, seed=cfg.seed, out_dir=run_dir,
                          test_tasks=cfg.test_tasks,
                          resume=(run_dir / "config.json").is_file(), **ALGO_SETTINGS[algo])
            print(f"== K={k_train} {algo}: training into {run_dir}", flush=True)
            tic = time.perf_counter()
            train(run)
            print(f"   done in {time.perf_counter() - tic:.0f} s", flush=True)
        res = json.loads((run_dir / "results.json").read_text())
        train_seconds[run_dir.name] = res["train_seconds"]
        return run_dir

    summary: dict[str, Any] = {"train_shots": cfg.train_shots or "same as evaluated",
                               "train_seconds": train_seconds, "test_tasks": cfg.test_tasks,
                               "runs": {}}
    lines = ["| K / algorithm | " + " | ".join(f"{s} steps" for s in REPORT_STEPS) + " |",
             "| --- |" + " --- |" * len(REPORT_STEPS)]
    checks = []
    for k in cfg.eval_shots:
        per_algo: dict[str, Any] = {}
        loaded = {}
        for algo in cfg.algos:
            run_dir = run_dir_for(k, algo)
            run_cfg, problem, ckpt = load_run(run_dir, checkpoint=_evaluated_checkpoint(run_dir),
                                              k_shot=k)
            loaded[algo] = problem
            params = params_of(problem.model)
            lr: float = run_cfg.inner_lr
            entry: dict[str, Any] = {"run": str(run_dir), "checkpoint": str(ckpt)}
            if algo == "pretrained":
                lr, scores = tune_step_size(problem.loss_fn, params, problem.splits["val"],
                                            candidates=TUNING_GRID, n_tasks=200, steps=10,
                                            seed=run_cfg.eval_seed + 7)
                entry["step_size_tuning"] = {str(a): s for a, s in scores.items()}
            entry["test"] = evaluate(problem.loss_fn, None, params, problem.splits["test"],
                                     n_tasks=cfg.test_tasks, steps=10, lr=lr,
                                     seed=run_cfg.eval_seed + 2)
            per_algo[algo] = entry
            lines.append(_row(f"K={k} {algo}" + (f" (α={lr:g})" if algo == "pretrained" else ""),
                              entry["test"]))
        summary["runs"][str(k)] = per_algo
        plot_adaptation_curves([(a, per_algo[a]["test"]) for a in cfg.algos],
                               cfg.out_dir / f"sinusoid-k{k}.png", ylabel="mean squared error",
                               title=f"sinusoid regression, K={k} ({cfg.test_tasks} test tasks)")
        shown = [a for a in ("maml", "pretrained") if a in cfg.algos]
        plot_sinusoid_predictions(
            [(a, loaded[a], params_of(loaded[a].model)) for a in shown],
            cfg.out_dir / f"sinusoid-k{k}-predictions.png", k_shot=k,
            lr=[per_algo[a]["test"]["inner_lr"] for a in shown])
        if {"maml", "pretrained"} <= set(cfg.algos):
            m = per_algo["maml"]["test"]["loss_mean"]
            p = per_algo["pretrained"]["test"]["loss_mean"]
            beats = all(a < b for a, b in zip(m[1:], p[1:]))
            checks.append(f"K={k}: MAML below pretrained after every step 1..10: {beats}")
    summary["checks"] = checks
    table = "\n".join(lines)
    atomic_write_json(cfg.out_dir / "summary.json", summary)
    text = table + "\n\n" + "\n".join(checks) + "\n"
    atomic_write_bytes(cfg.out_dir / "summary.md", text.encode())
    print(table)
    print("\n".join(checks))
    print(f"summary: {cfg.out_dir / 'summary.md'}")
    return summary


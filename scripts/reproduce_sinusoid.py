#!/usr/bin/env python
"""Reproduce the MAML paper's sinusoid results (section 5.1, Figures 2-3, appendix Table 2).

Trains MAML, FOMAML, Reptile and the pretrained baseline for K = 5, 10, 20 with the paper's
settings (preset ``sinusoid``), evaluates each on the same 600 held-out tasks after 0..10
gradient steps, and writes ``summary.json``, ``summary.md`` (the table in docs/results.md)
and one comparison figure per K. Runs that already have a results.json are not retrained, so
an interrupted reproduction continues where it stopped (unfinished runs resume from their
checkpoints).

Example::

    python scripts/reproduce_sinusoid.py --out-dir runs/sinusoid-paper --compile
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import tyro

from metarl.errors import cli_errors
from metarl.functional import params_of
from metarl.io import atomic_write_bytes, atomic_write_json
from metarl.plotting import plot_adaptation_curves
from metarl.supervised.config import SupervisedConfig, apply_preset
from metarl.supervised.plots import plot_sinusoid_predictions
from metarl.supervised.runner import load_run, train

# Per-algorithm settings on top of the paper preset. Reptile (Nichol et al., 2018) needs
# several inner steps to differ from joint training; 10 steps of α = 0.01 on the task's
# support and query points, chosen on a short sweep (docs/results.md).
ALGO_SETTINGS: dict[str, dict[str, object]] = {
    "maml": {},
    "fomaml": {},
    "reptile": {"inner_steps": 10},
    "pretrained": {},
}
REPORT_STEPS = (0, 1, 5, 10)


@dataclass
class ReproduceConfig:
    """Train and evaluate every (K, algorithm) pair of the sinusoid comparison."""

    out_dir: Path = Path("runs/sinusoid-paper")
    """Folder holding one run folder per (K, algorithm) plus the summary and figures."""
    shots: tuple[int, ...] = (5, 10, 20)
    """Values of K to train and evaluate."""
    algos: tuple[str, ...] = ("maml", "fomaml", "reptile", "pretrained")
    """Algorithms to compare."""
    iterations: int = 70000
    """Meta-training iterations per run (the paper's code: 70,000)."""
    compile: bool = False
    """torch.compile the meta-objective (faster on CPU after ~1 minute of compilation)."""
    seed: int = 0
    """Training seed of every run."""


def _row(label: str, test: dict) -> str:
    cells = [f"{test['loss_mean'][s]:.3f} ± {test['loss_ci95'][s]:.3f}" for s in REPORT_STEPS]
    return f"| {label} | " + " | ".join(cells) + " |"


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(ReproduceConfig, args=argv, description=__doc__)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict[str, dict]] = {}
    for k in cfg.shots:
        for algo in cfg.algos:
            run_dir = cfg.out_dir / f"k{k}-{algo}"
            results_path = run_dir / "results.json"
            if not results_path.is_file():
                run = apply_preset(SupervisedConfig(), "sinusoid")
                run = replace(run, k_shot=k, algo=algo, iterations=cfg.iterations,
                              compile=cfg.compile, seed=cfg.seed, out_dir=run_dir,
                              resume=(run_dir / "config.json").is_file(),
                              **ALGO_SETTINGS[algo])  # type: ignore[arg-type]
                print(f"== K={k} {algo}: training into {run_dir}", flush=True)
                tic = time.perf_counter()
                train(run)
                print(f"   done in {time.perf_counter() - tic:.0f} s", flush=True)
            res = json.loads(results_path.read_text())
            summary.setdefault(str(k), {})[algo] = {
                "test": res["test"], "train_seconds": res["train_seconds"],
                "iterations": res["iterations"], "inner_lr_eval": res["test"]["inner_lr"],
            }
        curves = [(a, summary[str(k)][a]["test"]) for a in cfg.algos]
        plot_adaptation_curves(curves, cfg.out_dir / f"sinusoid-k{k}.png",
                               ylabel="mean squared error",
                               title=f"sinusoid regression, K={k} (600 test tasks)")
        shown = [a for a in ("maml", "pretrained") if a in cfg.algos]
        loaded = [load_run(cfg.out_dir / f"k{k}-{a}") for a in shown]
        plot_sinusoid_predictions(
            [(a, prob, params_of(prob.model)) for a, (_, prob, _) in zip(shown, loaded)],
            cfg.out_dir / f"sinusoid-k{k}-predictions.png", k_shot=k,
            lr=[summary[str(k)][a]["inner_lr_eval"] for a in shown])

    lines = ["| K / algorithm | " + " | ".join(f"{s} steps" for s in REPORT_STEPS) + " |",
             "| --- |" + " --- |" * len(REPORT_STEPS)]
    checks = []
    for k in cfg.shots:
        for algo in cfg.algos:
            lines.append(_row(f"K={k} {algo}", summary[str(k)][algo]["test"]))
        if {"maml", "pretrained"} <= set(cfg.algos):
            m = summary[str(k)]["maml"]["test"]["loss_mean"]
            p = summary[str(k)]["pretrained"]["test"]["loss_mean"]
            beats = all(a < b for a, b in zip(m[1:], p[1:]))
            checks.append(f"K={k}: MAML below pretrained after every step 1..10: {beats}")
    table = "\n".join(lines)
    atomic_write_json(cfg.out_dir / "summary.json", {"runs": summary, "checks": checks})
    text = table + "\n\n" + "\n".join(checks) + "\n"
    atomic_write_bytes(cfg.out_dir / "summary.md", text.encode())
    print(table)
    print("\n".join(checks))
    print(f"summary: {cfg.out_dir / 'summary.md'}")


if __name__ == "__main__":
    main()

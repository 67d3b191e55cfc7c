#!/usr/bin/env python
"""Meta-train a policy with MAML-TRPO on a metarl task distribution (MAML section 5.3).

Examples::

    python scripts/train_rl.py --preset navigation --out-dir runs/nav-maml
    python scripts/train_rl.py --preset halfcheetah-vel --device cuda --out-dir runs/hc-vel-v1
    python scripts/train_rl.py --preset navigation --out-dir runs/nav-maml --resume

The run folder gets config.json, checkpoints/ (the newest ones, and best.pt: the policy
selected by --select-best, which adapt_rl.py evaluates), tb/ (TensorBoard), metrics.jsonl,
results.json and training.png (returns before and after adaptation, validation returns, KL,
line search, against the iteration; the time split into sampling / inner / outer is in
metrics.jsonl and TensorBoard).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from metarl.rl.config import SETTINGS_ADDED_LATER, RLConfig, apply_rl_preset
from metarl.rl.trainer import MetaRLTrainer
from metarl.runs.allocator import keep_freed_memory
from metarl.runs.cli import cli_errors, parse_with_preset
from metarl.runs.distributed import DistContext, init_distributed, process_group, run_rank
from metarl.runs.io import atomic_write_json
from metarl.runs.logger import read_metrics
from metarl.runs.plotting import plot_training_curves
from metarl.runs.rundir import open_run_dir, start_resumed_leg


def summarise(trainer: MetaRLTrainer, last: int = 10) -> dict:
    """Means over the last ``last`` iterations of the logged quantities."""
    recent = trainer.history[-last:]
    keys = [k for k in recent[0] if k != "iteration"] if recent else []
    return {k: float(np.mean([h[k] for h in recent])) for k in keys}


def write_results(cfg: RLConfig, trainer: MetaRLTrainer, run_dir: Path, *,
                  finished: bool) -> dict:
    """results.json of the run as it stands; ``finished`` is False when it was stopped before
    ``cfg.iterations`` (a stale file from an earlier, shorter leg of a resumed run is never
    left behind). Returns the last-10-iteration summary."""
    summary = summarise(trainer)
    results = {"env": cfg.env, "algo": "maml-trpo", "iterations": trainer.iteration,
               "finished": finished, "train_seconds": trainer.train_seconds,
               "last_10_iterations": summary, "config": cfg.identity(),
               "checkpoint": str(trainer.checkpoints.upto(trainer.iteration)[-1][1]),
               "best": trainer.best, "validation": trainer.val_history}
    atomic_write_json(run_dir / "results.json", results)
    return summary


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = parse_with_preset(RLConfig, apply_rl_preset, argv, __doc__)
    keep_freed_memory()  # large tensors reuse freed heap memory (metarl/runs/allocator.py)
    cfg.validate()
    with process_group(init_distributed(cfg.device)) as ctx:
        run(cfg, ctx)


def run(cfg: RLConfig, ctx: DistContext) -> None:
    """Train on this rank's shard; rank 0 then writes results.json and the plot."""
    if ctx.enabled and cfg.device.startswith("cuda"):
        cfg = replace(cfg, device=f"cuda:{ctx.local_rank}")
    ctx.shard(cfg.meta_batch)
    done = open_run_dir(ctx, cfg.out_dir, cfg.identity(), iterations=cfg.iterations,
                        resume=cfg.resume, added=SETTINGS_ADDED_LATER)
    run_dir = Path(cfg.out_dir)
    if done is not None:
        if ctx.is_main:
            print(f"evaluate: python scripts/adapt_rl.py --run-dir {run_dir}")
        return
    trainer = MetaRLTrainer(cfg, run_dir, resume=cfg.resume, dist=ctx)
    if cfg.resume:  # the checkpoint passed every check: only now does the folder change
        start_resumed_leg(ctx, run_dir, cfg.identity())
    # A stop (SIGINT/SIGTERM) ends in SystemExit after the checkpoint and this results.json.
    trainer.train(on_stop=lambda: write_results(cfg, trainer, run_dir, finished=False))
    if not ctx.is_main:  # rank 0 alone writes the results
        return
    summary = write_results(cfg, trainer, run_dir, finished=True)
    records = read_metrics(run_dir)
    plot_training_curves(records, run_dir / "training.png", title=f"MAML-TRPO on {cfg.env}")
    print(f"\nMAML-TRPO on {cfg.env}: {trainer.iteration} iterations in "
          f"{trainer.train_seconds:.0f} s")
    print(f"  return before adaptation (last 10 iterations): "
          f"{summary['returns/before_adaptation']:.2f}")
    print(f"  return after adaptation  (last 10 iterations): "
          f"{summary['returns/after_adaptation']:.2f}")
    if math.isfinite(trainer.best["score"]):
        print(f"  selected policy (checkpoints/best.pt, by {trainer.best['selected_by']}): "
              f"iteration {trainer.best['iteration']}, score {trainer.best['score']:.2f}")
    print(f"results: {run_dir / 'results.json'}\nplots:   {run_dir / 'training.png'}")
    print(f"evaluate: python scripts/adapt_rl.py --run-dir {run_dir}")


if __name__ == "__main__":
    run_rank(main)  # torchrun ranks skip interpreter finalisation: metarl.runs.distributed

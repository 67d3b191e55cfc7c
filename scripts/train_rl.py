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

from metarl.rl.config import SETTINGS_ADDED_LATER, RLConfig, apply_rl_preset
from metarl.rl.trainer import MetaRLTrainer
from metarl.runs.allocator import keep_freed_memory
from metarl.runs.cli import cli_errors, parse_with_preset
from metarl.runs.distributed import DistContext, init_distributed, process_group, run_rank
from metarl.runs.rundir import open_run_dir, start_resumed_leg


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
    trainer.train(on_stop=lambda: trainer.write_results(trainer.results(finished=False)))
    if not ctx.is_main:  # rank 0 alone writes the results
        return
    summary = trainer.finish()["last_10_iterations"]
    print(f"\nMAML-TRPO on {cfg.env}: {trainer.iteration} iterations in "
          f"{trainer.train_seconds:.0f} s")
    print(f"  return before adaptation (last 10 iterations): "
          f"{summary['returns/before_adaptation']:.2f}")
    print(f"  return after adaptation  (last 10 iterations): "
          f"{summary['returns/after_adaptation']:.2f}")
    best = trainer.best
    if math.isfinite(best.score):
        print(f"  selected policy (checkpoints/best.pt, by {best.selected_by}): "
              f"iteration {best.iteration}, score {best.score:.2f}")
    print(f"results: {run_dir / 'results.json'}\nplots:   {run_dir / 'training.png'}")
    print(f"evaluate: python scripts/adapt_rl.py --run-dir {run_dir}")


if __name__ == "__main__":
    run_rank(main)  # torchrun ranks skip interpreter finalisation: metarl.runs.distributed

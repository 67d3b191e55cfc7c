"""Meta-training one MAML-TRPO run from its settings: what ``metarl train rl`` runs.

The run folder is opened (a new run, a ``--resume``, or a finished run left as it is), the
trainer runs to ``cfg.iterations`` and rank 0 writes results.json and training.png; under
``torchrun`` every rank samples and trains its shard of each meta-batch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from metarl.rl.config import SETTINGS_ADDED_LATER, RLConfig
from metarl.rl.trainer import MetaRLTrainer
from metarl.runs.distributed import DistContext, init_distributed, process_group
from metarl.runs.rundir import open_run_dir, start_resumed_leg


def train(cfg: RLConfig) -> dict[str, Any] | None:
    """Meta-train the run ``cfg`` describes; returns its results.json (rank 0; other ranks
    return None).

    Stopped by SIGINT/SIGTERM, it writes a checkpoint and a results.json marked
    ``"finished": false``, then exits. ``--resume`` on a run that has finished
    ``cfg.iterations`` returns its stored results and changes nothing.
    """
    cfg.validate()
    with process_group(init_distributed(cfg.device)) as ctx:
        return _train_rank(cfg, ctx)


def _train_rank(cfg: RLConfig, ctx: DistContext) -> dict[str, Any] | None:
    """:func:`train`'s work on one rank (all of it without torchrun)."""
    if ctx.enabled and cfg.device.startswith("cuda"):
        cfg = replace(cfg, device=f"cuda:{ctx.local_rank}")
    ctx.shard(cfg.meta_batch)
    done = open_run_dir(ctx, cfg.out_dir, cfg.identity(), iterations=cfg.iterations,
                        resume=cfg.resume, added=SETTINGS_ADDED_LATER)
    if done is not None:  # nothing to train: the finished run is left as it is
        return done if ctx.is_main else None
    run_dir = Path(cfg.out_dir)
    trainer = MetaRLTrainer(cfg, run_dir, resume=cfg.resume, dist=ctx)
    if cfg.resume:  # the checkpoint passed every check: only now does the folder change
        start_resumed_leg(ctx, run_dir, cfg.identity())
    # A stop (SIGINT/SIGTERM) ends in SystemExit after the checkpoint and this results.json.
    trainer.train(on_stop=lambda: trainer.write_results(trainer.results(finished=False)))
    if not ctx.is_main:  # rank 0 alone writes the results
        return None
    return trainer.finish()

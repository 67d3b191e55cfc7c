#!/usr/bin/env python
"""Why did a MAML-TRPO step move the pre-update policy beyond the trust region?

Training warns when one step moves the pre-update policy π_θ by more than 5 δ (the first
sign of a navigation seed that fails). This replays the run's iterations
exactly -- its config.json, from its newest checkpoint before --first (or from the start; a
resumed run draws exactly what the original did) -- in memory: the run's files are only
read, and the results go to a new anatomy-<first>-<last> folder inside it (or --out-dir).
For each iteration from --first to --last it measures the step TRPO proposes
(metarl/rl/analysis.py): the quadratic KL models of the adapted and the pre-update policies,
and the three factors by which π_θ's exceeds the constraint's -- the inner step's Jacobian
undoing part of the step, π_θ sitting at other parameters than π_θ', and π_θ's own states --
then takes the step as training does and records the logged KLs and returns.

Writes results.json (one row per iteration) and anatomy.png (KLs and gains per iteration).

Example (seed 4 of the navigation runs drifts at iteration 4)::

    python scripts/train_rl.py --preset navigation-code --seed 4 --iterations 6 \\
        --out-dir runs/nav-s4
    python scripts/analysis/step_anatomy.py --run-dir runs/nav-s4 --first 1 --last 6
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tyro

from metarl.errors import require
from metarl.rl.analysis import step_anatomy
from metarl.rl.config import config_from_identity
from metarl.rl.maml_trpo import Support
from metarl.rl.pg import PGBatch
from metarl.rl.trainer import KIND, MetaRLTrainer
from metarl.runs.allocator import keep_freed_memory
from metarl.runs.checkpoint import CheckpointDir, check_kind, load_checkpoint
from metarl.runs.cli import cli_errors
from metarl.runs.io import atomic_write_json
from metarl.runs.plotting import plot_step_anatomy
from metarl.runs.rundir import CONFIG_NAME, read_run_config, unique_path


@dataclass
class AnatomyConfig:
    """Replay a MAML-TRPO run and take its TRPO steps apart."""

    run_dir: Path
    """Training run folder (train_rl.py --out-dir): its config.json and checkpoints/."""
    first: int = 1
    """First iteration to measure (1 = the run's first step)."""
    last: int | None = None
    """Last iteration to measure (default: --first)."""
    out_dir: Path | None = None
    """Where results.json and anatomy.png go (default: <run-dir>/anatomy-<first>-<last>; an
    existing folder is never overwritten: a -2, -3 ... suffix is added)."""
    device: str | None = None
    """Where the policy and TRPO run (default: the run's). The replay repeats the logged run
    exactly on the device it was trained on, as one process (a run trained on several
    ranks draws its rollouts per rank, so its replay differs in the digits)."""
    threads: int | None = None
    """Physics threads (default: the run's)."""
    torch_threads: int | None = None
    """torch threads (default: the run's)."""


def replay_trainer(cfg: AnatomyConfig, before: int) -> MetaRLTrainer:
    """The run's trainer at its newest checkpoint ≤ ``before`` (or at the start)."""
    config_path = cfg.run_dir / CONFIG_NAME
    require(config_path.is_file(), f"{cfg.run_dir} holds no training run (no {CONFIG_NAME}); "
            "pass the --out-dir of scripts/train_rl.py")
    run_cfg = config_from_identity(read_run_config(cfg.run_dir, "replay it"))
    run_cfg = replace(run_cfg, device=cfg.device or run_cfg.device,
                      threads=cfg.threads or run_cfg.threads,
                      torch_threads=cfg.torch_threads or run_cfg.torch_threads)
    trainer = MetaRLTrainer(run_cfg, cfg.run_dir, progress=False)
    usable = [(it, p) for it, p in CheckpointDir(cfg.run_dir / "checkpoints").list()
              if it <= before]
    if usable:
        it, path = usable[-1]
        state = load_checkpoint(path)
        check_kind(state, path, KIND)
        trainer.restore(state, path)
        print(f"replaying from {path} (iteration {it})")
    else:
        print("replaying from the start (no checkpoint at or before iteration "
              f"{before}; train with --checkpoint-every 1 --keep-checkpoints N to skip this)")
    return trainer


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(AnatomyConfig, args=argv, description=__doc__)
    last = cfg.first if cfg.last is None else cfg.last
    require(1 <= cfg.first <= last, f"need 1 <= --first <= --last, got {cfg.first} and {last}")
    keep_freed_memory()
    trainer = replay_trainer(cfg, cfg.first - 1)
    out_dir = unique_path(cfg.out_dir or cfg.run_dir / f"anatomy-{cfg.first}-{last}",
                          folder=True)
    measured: dict[str, Any] = {}

    def measure(support: Support, query: PGBatch) -> None:
        if trainer.iteration + 1 >= cfg.first:
            measured.update(step_anatomy(trainer.learner, support, query))

    trainer.before_outer = measure
    rows = []
    while trainer.iteration < last:
        t0 = time.perf_counter()
        measured.clear()
        scalars, _ = trainer.step()
        trainer.iteration += 1
        if not measured:
            print(f"iteration {trainer.iteration}: replayed ({time.perf_counter() - t0:.1f} s)")
            continue
        row = {"iteration": trainer.iteration, **measured,
               **{k: v for k, v in scalars.items() if k.startswith(("trpo/", "returns/"))}}
        row["kl_initial"] = row["trpo/kl_initial"]
        rows.append(row)
        print(f"iteration {trainer.iteration}: constraint {row['kl_adapted']:.4f}, pre-update "
              f"policy {row['kl_initial_support']:.4f} (gain {row['total_gain']:.1f} = Jacobian "
              f"{row['jacobian_gain']:.2f} × parameters {row['parameter_gain']:.2f} × states "
              f"{row['observation_gain']:.2f}); after the line search kl_initial "
              f"{row['kl_initial']:.4f}; returns {row['returns/before_adaptation']:.1f} / "
              f"{row['returns/after_adaptation']:.1f} ({time.perf_counter() - t0:.1f} s)")
    max_kl = trainer.cfg.trpo.max_kl
    out_dir.mkdir(parents=True)
    atomic_write_json(out_dir / "results.json", {"run_dir": str(cfg.run_dir), "max_kl": max_kl,
                                                 "iterations": rows})
    plot_step_anatomy(rows, out_dir / "anatomy.png", max_kl=max_kl,
                      title=f"TRPO steps of {cfg.run_dir}")
    print(f"results: {out_dir / 'results.json'}\nplot:    {out_dir / 'anatomy.png'}")


if __name__ == "__main__":
    main()

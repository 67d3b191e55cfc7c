#!/usr/bin/env python
"""Baselines of the MAML paper's RL comparison (section 5.3, Figure 5), evaluated exactly
like MAML (same goals, same adaptation steps and step sizes):

* pretrained: one policy trained with Stable-Baselines3 PPO on the task mixture (a new task at
  every episode, no task information), its weights mapped into our Gaussian policy;
* random: a freshly initialised policy;
* oracle: PPO with the task parameters in the observation.

Examples::

    python scripts/baselines_rl.py --baseline pretrained --env metarl/Navigation2D-v0 \\
        --ppo-timesteps 500000 --out-dir runs/nav-pretrained
    python scripts/baselines_rl.py --baseline random --env metarl/Navigation2D-v0 \\
        --out-dir runs/nav-random
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import torch
import tyro

from metarl.errors import require, require_seed
from metarl.rl.evaluation import (
    EvalSettings,
    chosen_goals,
    draw_tasks,
    make_meta_env,
    policy_spec,
    run_evaluation,
    summary_lines,
)
from metarl.runs.allocator import keep_freed_memory
from metarl.runs.checkpoint import POLICY, save_checkpoint
from metarl.runs.cli import cli_errors
from metarl.runs.rundir import prepare_run_dir

BASELINES = ("pretrained", "random", "oracle")


@dataclass
class BaselineConfig:
    """Train (pretrained, oracle) or initialise (random) a baseline policy and evaluate it."""

    baseline: str
    """pretrained, random or oracle."""
    env: str = "metarl/Navigation2D-v0"
    """Registered task distribution."""
    out_dir: Path = Path("runs/nav-pretrained")
    """New folder for policy.pt and the evaluation (results.json, returns.csv)."""
    ppo_timesteps: int = 500_000
    """PPO environment steps (pretrained and oracle)."""
    ppo_envs: int = 8
    """Parallel environments for PPO."""
    hidden_sizes: tuple[int, ...] = (100, 100)
    """Policy hidden layers (as the MAML policy)."""
    activation: str = "relu"
    """Policy activation (as the MAML policy)."""
    alpha: float = 0.1
    """First adaptation step size at evaluation (later ones α/2); use the MAML run's."""
    num_tasks: int = 40
    """Test goals (the same seed gives the same goals as adapt_rl.py)."""
    seed: int = 1
    """Seed of the test goals and rollouts (as adapt_rl.py's)."""
    goals_file: Path | None = None
    """Evaluate on the goals in this file instead (as adapt_rl.py --goals-file)."""
    train_seed: int = 0
    """Seed of PPO / the random initialisation."""
    steps: int = 3
    """Adaptation steps at evaluation."""
    timesteps: int = 4000
    """Environment steps per adaptation step and goal at evaluation."""
    batch: str = "steps"
    """steps: each adaptation step samples --timesteps environment steps per goal, episodes
    that end early followed by new ones (the paper's protocol, rllab's sampler); episodes:
    --timesteps / horizon episodes, however short."""
    repeats: int = 1
    """Independent draws per goal (rollouts and adaptation), averaged per goal; results.json
    then also has each draw's mean over the goals (returns_mean_per_draw)."""
    threads: int | None = None
    """Physics threads for the evaluation."""
    torch_threads: int = 1
    """torch intra-op threads for PPO and the evaluation (1 is fastest for these small
    networks and does not fight other jobs for the cores)."""
    progress: bool = True
    """Show PPO's progress bar."""


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(BaselineConfig, args=argv, description=__doc__)
    keep_freed_memory()  # large tensors reuse freed heap memory (metarl/runs/allocator.py)
    require(cfg.baseline in BASELINES,
            f"unknown --baseline {cfg.baseline!r}; choose one of {', '.join(BASELINES)}")
    require(cfg.ppo_timesteps >= 1, f"--ppo-timesteps must be positive, got {cfg.ppo_timesteps}")
    require_seed(cfg.train_seed, "--train-seed")  # --seed and --alpha: by EvalSettings
    meta_env = make_meta_env(cfg.env)
    settings = EvalSettings(env=cfg.env, num_tasks=cfg.num_tasks, seed=cfg.seed, steps=cfg.steps,
                            alpha=cfg.alpha, timesteps=cfg.timesteps, batch=cfg.batch,
                            threads=cfg.threads, repeats=cfg.repeats)
    goals, source, _ = chosen_goals(settings, goals_file=cfg.goals_file)
    tasks = draw_tasks(meta_env, settings, goals)  # bad goals fail before any training
    if cfg.baseline != "random":
        from metarl.rl.pretrain import check_ppo_dependencies

        check_ppo_dependencies(cfg.progress)  # before the run folder exists
    torch.set_num_threads(cfg.torch_threads)
    config = {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
              for k, v in vars(cfg).items()}
    out = prepare_run_dir(cfg.out_dir, config, resume=False)
    oracle = cfg.baseline == "oracle"
    tic = time.perf_counter()
    extra: dict[str, float] = {}
    if cfg.baseline == "random":
        from metarl.rl.policies import GaussianMLPPolicy

        env = gym.make(cfg.env)
        torch.manual_seed(cfg.train_seed)
        obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
        assert obs_shape is not None and act_shape is not None  # Box spaces
        policy = GaussianMLPPolicy(obs_shape[0], act_shape[0],
                                   cfg.hidden_sizes, cfg.activation)
    else:
        from metarl.rl.pretrain import train_ppo

        policy, extra = train_ppo(cfg.env, oracle=oracle, timesteps=cfg.ppo_timesteps,
                                  seed=cfg.train_seed, hidden_sizes=cfg.hidden_sizes,
                                  activation=cfg.activation, n_envs=cfg.ppo_envs,
                                  progress=cfg.progress)
    train_seconds = time.perf_counter() - tic
    save_checkpoint(out / "policy.pt", {
        "kind": POLICY, "policy": policy.state_dict(), "policy_spec": policy_spec(policy),
        "env": cfg.env, "oracle": oracle, "inner_lr": cfg.alpha, "label": cfg.baseline})
    result = run_evaluation(policy, settings, out, label=cfg.baseline, oracle=oracle,
                            tasks=tasks, extra={"train_seconds": train_seconds, "goals": source,
                                                **extra})
    print(f"{cfg.baseline} on {cfg.env} (trained in {train_seconds:.0f} s): mean return")
    print("\n".join(summary_lines(result)))
    print(f"policy: {out / 'policy.pt'}\nresults: {out / 'results.json'}")


if __name__ == "__main__":
    main()

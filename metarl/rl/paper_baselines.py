"""The baselines of the MAML paper's RL comparison (section 5.3, Figure 5) as one run each:
what ``metarl baselines`` runs.

* pretrained: one policy trained with Stable-Baselines3 PPO on the task mixture (a new task at
  every episode, no task information), its weights mapped into our Gaussian policy
  (:mod:`metarl.rl.pretrain`);
* random: a freshly initialised policy;
* oracle: PPO with the task parameters in the observation.

Each is saved as a policy file (``policy.pt``, which ``metarl adapt --policy`` reads) and
evaluated exactly like MAML: the same goals, adaptation steps and step sizes
(:class:`~metarl.rl.adaptation.ProtocolFlags`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from metarl.errors import require, require_seed
from metarl.rl import evaluation
from metarl.rl.adaptation import ProtocolFlags
from metarl.rl.evaluation import chosen_goals, draw_tasks, make_meta_env, policy_spec, summary_lines
from metarl.runs.checkpoint import POLICY, save_checkpoint
from metarl.runs.rundir import prepare_run_dir

BASELINES = ("pretrained", "random", "oracle")


@dataclass
class BaselineChoice:
    """Which baseline, of which task distribution, into which folder."""

    baseline: str
    """pretrained, random or oracle."""
    env: str = "metarl/Navigation2D-v0"
    """Registered task distribution."""
    out_dir: Path = Path("runs/nav-pretrained")
    """New folder for policy.pt and the evaluation (results.json, returns.csv)."""


@dataclass
class BaselineConfig(ProtocolFlags, BaselineChoice):  # fields: BaselineChoice's first
    """Train (pretrained, oracle) or initialise (random) a baseline policy and evaluate it."""

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
    train_seed: int = 0
    """Seed of PPO / the random initialisation."""
    torch_threads: int = 1
    """torch intra-op threads for PPO and the evaluation (1 is fastest for these small
    networks and does not fight other jobs for the cores)."""
    progress: bool = True
    """Show PPO's progress bar."""


def train_baseline(cfg: BaselineConfig) -> dict[str, Any]:
    """Train or initialise the baseline ``cfg`` names, save it as ``policy.pt`` in a new run
    folder and evaluate it there; returns the evaluation as results.json holds it. The goals
    and PPO's dependencies are checked before the folder is made or anything is trained."""
    require(cfg.baseline in BASELINES,
            f"unknown --baseline {cfg.baseline!r}; choose one of {', '.join(BASELINES)}")
    require(cfg.ppo_timesteps >= 1, f"--ppo-timesteps must be positive, got {cfg.ppo_timesteps}")
    require_seed(cfg.train_seed, "--train-seed")  # --seed and --alpha: by EvalSettings
    cfg.check()
    meta_env = make_meta_env(cfg.env)
    settings = cfg.settings(cfg.env, cfg.alpha)
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
    # looked up in its module at call time, so that a test may stand in for the evaluation
    result = evaluation.run_evaluation(policy, settings, out, label=cfg.baseline, oracle=oracle,
                                       tasks=tasks, extra={"train_seconds": train_seconds,
                                                           "goals": source, **extra})
    print(f"{cfg.baseline} on {cfg.env} (trained in {train_seconds:.0f} s): mean return")
    print("\n".join(summary_lines(result)))
    print(f"policy: {out / 'policy.pt'}\nresults: {out / 'results.json'}")
    return result

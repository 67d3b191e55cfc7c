#!/usr/bin/env python
"""Adapt a trained policy to new goals and measure it, with the MAML paper's protocol.

For each goal (one given with --goal, a --goals-file, or --num-tasks goals drawn with --seed)
the policy rolls out --timesteps steps of episodes, takes a REINFORCE step (α, then α/2), and
so on for --steps steps. A meta-trained policy is adapted with its run's own inner update
(inner loss, discounting, GAE λ, advantage normalisation, horizon: the step it was trained
for); a baseline's policy with the paper's. Returns per goal and step go to results.json
(with each reward term's mean per step and the share of episodes the env ended) and
returns.csv, the curve of the mean return against gradient steps to returns.png, the adapted
policies to adapted_policy.pt, and with --video a before/after animation (GIF) of the first
goal.

Examples::

    python scripts/adapt_rl.py --run-dir runs/nav-maml                  # 40 test goals
    python scripts/adapt_rl.py --run-dir runs/nav-maml --goal 0.3 -0.2 --video
    python scripts/adapt_rl.py --run-dir runs/nav-maml --goals-file goals.json
    python scripts/adapt_rl.py --policy runs/nav-pretrained/policy.pt   # a baseline's policy
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import tyro

from metarl.errors import CheckpointError, MetaRLError, require
from metarl.rl.evaluation import (
    EvalSettings,
    chosen_goals,
    draw_tasks,
    inner_update_of,
    make_meta_env,
    policy_from_spec,
    run_evaluation,
    summary_lines,
)
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.rendering import prepare_rendering
from metarl.rl.video import render_episode, save_gif
from metarl.runs.allocator import keep_freed_memory
from metarl.runs.checkpoint import MAML_TRPO, POLICY, CheckpointDir, check_kind, load_checkpoint
from metarl.runs.cli import cli_errors
from metarl.runs.io import output_folder
from metarl.runs.loop import load_latest_state
from metarl.runs.rundir import unique_path


@dataclass
class AdaptConfig:
    """Adapt a meta-trained (or baseline) policy to new goals."""

    run_dir: Path | None = None
    """A train_rl.py run folder: its selected policy (checkpoints/best.pt, see train_rl.py
    --select-best) or, with --last or when it has none, its newest valid checkpoint."""
    last: bool = False
    """With --run-dir: evaluate the newest checkpoint instead of the selected one."""
    checkpoint: Path | None = None
    """A specific checkpoint of a train_rl.py run."""
    policy: Path | None = None
    """A policy file written by baselines_rl.py (pretrained, random or oracle)."""
    goal: tuple[float, ...] | None = None
    """One goal given on the command line (e.g. --goal 0.3 -0.2 for navigation, --goal 1.5
    for a velocity); default: --num-tasks goals drawn with --seed."""
    goals_file: Path | None = None
    """A file of goals to evaluate on (a JSON list such as [[0.1, -0.3], [0.2, 0.4]], or one
    goal per line), e.g. a fixed benchmark set; replaces --num-tasks/--seed's goals."""
    num_tasks: int = 40
    """Number of test goals to draw (the paper: 40)."""
    seed: int = 1
    """Seed of the test goals and rollouts (the same for every policy compared)."""
    steps: int = 3
    """Adaptation steps; returns are reported after 0..steps steps."""
    alpha: float | None = None
    """First step size (later ones are α/2); default: the run's inner step size."""
    timesteps: int = 4000
    """Environment steps sampled per adaptation step and goal (the paper: 4000)."""
    batch: str = "steps"
    """steps: each adaptation step samples --timesteps environment steps per goal, episodes
    that end early followed by new ones (the paper's protocol, rllab's sampler); episodes:
    --timesteps / horizon episodes, however short."""
    repeats: int = 1
    """Independent draws per goal (rollouts and adaptation), averaged per goal; results.json
    then also has each draw's mean over the goals (returns_mean_per_draw)."""
    device: str = "cpu"
    """cpu or cuda."""
    threads: int | None = None
    """Physics threads (default: all CPUs)."""
    video: bool = False
    """Render a before/after animation (GIF) of the first goal, captioned with the goal, the
    adaptation step and the return, the camera following the agent. OpenGL is checked first:
    without MUJOCO_GL, EGL and then OSMesa are tried."""
    label: str | None = None
    """Name of this policy in results.json and plots."""
    out_dir: Path | None = None
    """Where to write (default: a new adapt-* folder in the run folder or beside the policy)."""


class LoadedPolicy(NamedTuple):
    """A policy to adapt and what the evaluation needs to know about it."""

    policy: GaussianMLPPolicy
    env: str
    """The env id it was trained on."""
    oracle: bool
    """Whether it sees the task in its observation (the oracle baseline)."""
    alpha: float
    """Its default first step size: a run's inner step size, a baseline's --alpha."""
    label: str
    """Its name in results.json and plots."""
    where: Path
    """The folder to write the evaluation beside."""
    loaded: dict[str, Any]
    """What was loaded (file, iteration, how it was selected), recorded in results.json."""
    inner: dict[str, Any]
    """The inner update to adapt it with: a run's own (:func:`inner_update_of`); empty for a
    baseline's policy file (the paper's)."""


def load_policy(cfg: AdaptConfig) -> LoadedPolicy:
    """The policy given by --run-dir, --checkpoint or --policy, with what its evaluation needs."""
    given = [p for p in (cfg.run_dir, cfg.checkpoint, cfg.policy) if p is not None]
    require(len(given) == 1, "give exactly one of --run-dir, --checkpoint or --policy")
    if cfg.policy is not None:
        state = load_checkpoint(cfg.policy, map_location=cfg.device)
        check_kind(state, cfg.policy, POLICY)
        policy = policy_from_spec(state["policy_spec"], state["policy"])
        return LoadedPolicy(policy, state["env"], bool(state["oracle"]), float(state["inner_lr"]),
                            state.get("label", "policy"), cfg.policy.parent,
                            {"source": str(cfg.policy)}, {})
    if cfg.run_dir is not None:
        if not (cfg.run_dir / "config.json").is_file():
            raise MetaRLError(f"{cfg.run_dir} holds no run (no config.json); pass a run folder")
        best = cfg.run_dir / "checkpoints" / "best.pt"
        source = best
        if best.is_file() and not cfg.last:
            state = load_checkpoint(best, map_location=cfg.device)
            check_kind(state, best, MAML_TRPO)
            print(f"using {best}: iteration {state['iteration']}, selected by "
                  f"{state['best']['selected_by']} (--last for the newest checkpoint)")
        else:
            found = load_latest_state(CheckpointDir(cfg.run_dir / "checkpoints"), MAML_TRPO,
                                      cfg.device)  # reports damaged newer checkpoints
            if found is None:
                raise CheckpointError(f"{cfg.run_dir}/checkpoints holds no checkpoint")
            source, state = found
        where = cfg.run_dir
    else:
        assert cfg.checkpoint is not None
        state = load_checkpoint(cfg.checkpoint, map_location=cfg.device)
        where, source = cfg.checkpoint.parent.parent, cfg.checkpoint
    check_kind(state, source, MAML_TRPO)
    policy = policy_from_spec(state["policy_spec"], state["policy"])
    config = state["config"]
    loaded = {"source": str(source), "iteration": int(state["iteration"]),
              "selected_by": state.get("best", {}).get("selected_by") if source.name == "best.pt"
              else "checkpoint"}
    return LoadedPolicy(policy, config["env"], False, float(config["inner_lr"]), "maml", where,
                        loaded, inner_update_of(config))


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(AdaptConfig, args=argv, description=__doc__)
    keep_freed_memory()  # large tensors reuse freed heap memory (metarl/runs/allocator.py)
    require(cfg.steps >= 0, f"--steps must be >= 0, got {cfg.steps}")
    require(cfg.num_tasks >= 1, f"--num-tasks must be at least 1, got {cfg.num_tasks}")
    require(cfg.timesteps >= 1, f"--timesteps must be at least 1, got {cfg.timesteps}")
    if cfg.device.startswith("cuda"):
        require(torch.cuda.is_available(), "--device cuda asked for but no GPU; use cpu")
    chosen = load_policy(cfg)
    policy, env_id, oracle = chosen.policy, chosen.env, chosen.oracle
    policy.to(cfg.device)
    settings = EvalSettings(env=env_id, num_tasks=cfg.num_tasks, seed=cfg.seed, steps=cfg.steps,
                            alpha=cfg.alpha if cfg.alpha is not None else chosen.alpha,
                            timesteps=cfg.timesteps, batch=cfg.batch, device=cfg.device,
                            repeats=cfg.repeats,
                            threads=cfg.threads, **chosen.inner)
    goals, source, name = chosen_goals(settings, cfg.goal, cfg.goals_file)
    if cfg.video:  # an OpenGL back-end that works here, found (and set) before any rollout
        backend = prepare_rendering(env_id)
        if backend is not None:
            print(f"video: rendering with MUJOCO_GL={backend}")
    # The output folder is checked before any rollout: an hour of evaluation is not to be
    # lost to a folder it cannot write.
    if cfg.out_dir is None:
        out = output_folder(unique_path(chosen.where / name, folder=True), default=True)
    else:
        out = output_folder(cfg.out_dir)
        if out.exists() and any(out.iterdir()):
            raise MetaRLError(f"{out} is not empty; choose another --out-dir (nothing "
                              "overwritten)")
    env = make_meta_env(env_id)
    tasks = draw_tasks(env, settings, goals)  # checks a given goal before any work is done
    result = run_evaluation(policy, settings, out, label=cfg.label or chosen.label, oracle=oracle,
                            tasks=tasks, extra={"policy": chosen.loaded, "goals": source})
    print(f"{result['label']} on {env_id}: mean return over {result['num_tasks']} goal(s) "
          f"(evaluated in {result['eval_seconds']:.0f} s)")
    print("\n".join(summary_lines(result)))
    if cfg.video:
        state = load_checkpoint(out / "adapted_policy.pt", map_location=cfg.device)
        after = {k: v[0] for k, v in state["params"].items()}
        before = {k: v.detach() for k, v in policy.named_parameters()}
        stages = {"before": "before adaptation",
                  "after": f"after {cfg.steps} adaptation step{'s' * (cfg.steps != 1)}"}
        for tag, params in (("before", before), ("after", after)):
            frames = render_episode(env_id, tasks[0], policy, params, oracle=oracle,
                                    stage=stages[tag])
            print(f"video: {save_gif(frames, out / f'video-{tag}.gif')}")
    print(f"results: {out / 'results.json'} (also returns.csv, returns.png, adapted_policy.pt)")


if __name__ == "__main__":
    main()

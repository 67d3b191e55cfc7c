"""Adapting a trained policy to new goals and measuring it: what ``metarl adapt`` runs.

The policy comes from a training run's folder (its selected ``checkpoints/best.pt``, or the
newest checkpoint), a pretrained run shipped with metarl (:mod:`metarl.rl.pretrained`), one
checkpoint file, or a baseline's policy file. It is adapted to each goal with the paper's
protocol (:func:`metarl.rl.evaluation.run_evaluation`): a meta-trained policy with its run's
own inner update, the step it was trained for; a baseline's policy with the paper's. The flags
of the protocol (:class:`ProtocolFlags`) are shared with the baselines' command, so that
MAML and every baseline are measured the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import torch

from metarl.errors import CheckpointError, MetaRLError, require
from metarl.rl import evaluation
from metarl.rl.evaluation import (
    EvalSettings,
    chosen_goals,
    draw_tasks,
    inner_update_of,
    make_meta_env,
    policy_from_spec,
    summary_lines,
)
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.pretrained import PRETRAINED, pretrained_run
from metarl.rl.rendering import prepare_rendering
from metarl.rl.video import render_episode, save_gif
from metarl.runs.checkpoint import MAML_TRPO, POLICY, CheckpointDir, check_kind, load_checkpoint
from metarl.runs.io import output_folder
from metarl.runs.loop import load_latest_state
from metarl.runs.rundir import unique_path

if TYPE_CHECKING:
    PretrainedName = str
else:  # the names as a Literal, so that --help lists them and tyro refuses any other
    PretrainedName = Literal[PRETRAINED] if PRETRAINED else str


@dataclass
class ProtocolFlags:
    """The test goals and the adaptation protocol (defaults: the paper's), the same for every
    policy compared."""

    num_tasks: int = 40
    """Number of test goals to draw (the paper: 40); the same --seed draws the same goals for
    every policy."""
    seed: int = 1
    """Seed of the test goals and rollouts (the same for every policy compared)."""
    goals_file: Path | None = None
    """A file of goals to evaluate on (a JSON list such as [[0.1, -0.3], [0.2, 0.4]], or one
    goal per line), e.g. a fixed benchmark set; replaces --num-tasks/--seed's goals."""
    steps: int = 3
    """Adaptation steps; returns are reported after 0..steps steps."""
    timesteps: int = 4000
    """Environment steps sampled per adaptation step and goal (the paper: 4000)."""
    batch: str = "steps"
    """steps: each adaptation step samples --timesteps environment steps per goal, episodes
    that end early followed by new ones (the paper's protocol, rllab's sampler); episodes:
    --timesteps / horizon episodes, however short."""
    repeats: int = 1
    """Independent draws per goal (rollouts and adaptation), averaged per goal; results.json
    then also has each draw's mean over the goals (returns_mean_per_draw)."""
    threads: int | None = None
    """Physics threads (default: all CPUs)."""

    def check(self) -> None:
        """Refuse counts no evaluation can run with, before anything is loaded (the batch,
        repeats, seed and step size are checked by :class:`EvalSettings`)."""
        require(self.steps >= 0, f"--steps must be >= 0, got {self.steps}")
        require(self.num_tasks >= 1, f"--num-tasks must be at least 1, got {self.num_tasks}")
        require(self.timesteps >= 1, f"--timesteps must be at least 1, got {self.timesteps}")

    def settings(self, env: str, alpha: float, *, device: str = "cpu",
                 **inner: Any) -> EvalSettings:
        """The protocol for a policy of ``env`` with first step size ``alpha``; ``inner``: the
        inner update of a meta-trained policy's run (:func:`inner_update_of`)."""
        return EvalSettings(env=env, num_tasks=self.num_tasks, seed=self.seed, steps=self.steps,
                            alpha=alpha, timesteps=self.timesteps, batch=self.batch,
                            device=device, repeats=self.repeats, threads=self.threads, **inner)


@dataclass
class PolicySource:
    """Which policy to adapt: give exactly one of --run-dir, --pretrained, --checkpoint and
    --policy."""

    run_dir: Path | None = None
    """A metarl train rl run folder: its selected policy (checkpoints/best.pt, see metarl
    train rl --select-best) or, with --last or when it has none, its newest valid checkpoint."""
    pretrained: PretrainedName | None = None
    """A meta-trained policy shipped with metarl, by name (a run folder like --run-dir's)."""
    last: bool = False
    """With --run-dir: evaluate the newest checkpoint instead of the selected one."""
    checkpoint: Path | None = None
    """A specific checkpoint of a metarl train rl run."""
    policy: Path | None = None
    """A policy file written by metarl baselines (pretrained, random or oracle)."""


@dataclass
class AdaptConfig(ProtocolFlags, PolicySource):  # fields: PolicySource's first (in --help too)
    """Adapt a meta-trained (or baseline) policy to new goals."""

    goal: tuple[float, ...] | None = None
    """One goal given on the command line (e.g. --goal 0.3 -0.2 for navigation, --goal 1.5
    for a velocity); default: --num-tasks goals drawn with --seed."""
    alpha: float | None = None
    """First step size (later ones are α/2); default: the run's inner step size."""
    device: str = "cpu"
    """cpu or cuda."""
    video: bool = False
    """Render a before/after animation (GIF) of the first goal, captioned with the goal, the
    adaptation step and the return, the camera following the agent. OpenGL is checked first:
    without MUJOCO_GL, EGL and then OSMesa are tried."""
    label: str | None = None
    """Name of this policy in results.json and plots."""
    out_dir: Path | None = None
    """Where to write (default: a new adapt-* folder in the run folder or beside the policy;
    for --pretrained, in runs/pretrained-<name>)."""


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


def load_policy(*, run_dir: Path | None = None, pretrained: str | None = None,
                checkpoint: Path | None = None, policy: Path | None = None, last: bool = False,
                device: str = "cpu") -> LoadedPolicy:
    """The policy of exactly one source: a run folder (``run_dir``, or the pretrained run
    named ``pretrained``: its best.pt, or with ``last`` its newest valid checkpoint), one
    ``checkpoint`` file of a run, or a baseline's ``policy`` file."""
    given = [p for p in (run_dir, pretrained, checkpoint, policy) if p is not None]
    require(len(given) == 1,
            "give exactly one of --run-dir, --pretrained, --checkpoint or --policy")
    if policy is not None:
        state = load_checkpoint(policy, map_location=device)
        check_kind(state, policy, POLICY)
        return LoadedPolicy(policy_from_spec(state["policy_spec"], state["policy"]), state["env"],
                            bool(state["oracle"]), float(state["inner_lr"]),
                            state.get("label", "policy"), policy.parent, {"source": str(policy)},
                            {})
    if pretrained is not None:
        run_dir = pretrained_run(pretrained)
    if run_dir is not None:
        source, state = _run_state(run_dir, last=last, device=device)
        where = run_dir if pretrained is None else Path("runs") / f"pretrained-{pretrained}"
    else:
        assert checkpoint is not None
        state = load_checkpoint(checkpoint, map_location=device)
        where, source = checkpoint.parent.parent, checkpoint
    check_kind(state, source, MAML_TRPO)
    config = state["config"]
    loaded = {"source": str(source), "iteration": int(state["iteration"]),
              "selected_by": state.get("best", {}).get("selected_by") if source.name == "best.pt"
              else "checkpoint", **({"pretrained": pretrained} if pretrained else {})}
    return LoadedPolicy(policy_from_spec(state["policy_spec"], state["policy"]), config["env"],
                        False, float(config["inner_lr"]), "maml", where, loaded,
                        inner_update_of(config))


def _run_state(run_dir: Path, *, last: bool, device: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint a run folder offers and its state: best.pt unless ``last`` or it has
    none, else the newest valid checkpoint (newer damaged ones are reported)."""
    if not (run_dir / "config.json").is_file():
        raise MetaRLError(f"{run_dir} holds no run (no config.json); pass a run folder")
    best = run_dir / "checkpoints" / "best.pt"
    if best.is_file() and not last:
        state = load_checkpoint(best, map_location=device)
        check_kind(state, best, MAML_TRPO)
        print(f"using {best}: iteration {state['iteration']}, selected by "
              f"{state['best']['selected_by']} (--last for the newest checkpoint)")
        return best, state
    found = load_latest_state(CheckpointDir(run_dir / "checkpoints"), MAML_TRPO, device)
    if found is None:
        raise CheckpointError(f"{run_dir}/checkpoints holds no checkpoint")
    return found


def adapt_to_goals(cfg: AdaptConfig) -> dict[str, Any]:
    """Load the policy ``cfg`` names, adapt it to the goals it asks for and write the
    evaluation (results.json, returns.csv, returns.png, adapted_policy.pt and with
    ``cfg.video`` a before/after GIF of the first goal) into a new folder; returns the
    result as results.json holds it. Every input (goals, output folder, OpenGL for the
    video) is checked before the first rollout: an evaluation may take an hour."""
    cfg.check()
    if cfg.device.startswith("cuda"):
        require(torch.cuda.is_available(), "--device cuda asked for but no GPU; use cpu")
    chosen = load_policy(run_dir=cfg.run_dir, pretrained=cfg.pretrained,
                         checkpoint=cfg.checkpoint, policy=cfg.policy, last=cfg.last,
                         device=cfg.device)
    policy, env_id, oracle = chosen.policy, chosen.env, chosen.oracle
    policy.to(cfg.device)
    settings = cfg.settings(env_id, cfg.alpha if cfg.alpha is not None else chosen.alpha,
                            device=cfg.device, **chosen.inner)
    goals, source, name = chosen_goals(settings, cfg.goal, cfg.goals_file)
    if cfg.video:  # an OpenGL back-end that works here, found (and set) before any rollout
        backend = prepare_rendering(env_id)
        if backend is not None:
            print(f"video: rendering with MUJOCO_GL={backend}")
    if cfg.out_dir is None:
        out = output_folder(unique_path(chosen.where / name, folder=True), default=True)
    else:
        out = output_folder(cfg.out_dir)
        if out.exists() and any(out.iterdir()):
            raise MetaRLError(f"{out} is not empty; choose another --out-dir (nothing "
                              "overwritten)")
    tasks = draw_tasks(make_meta_env(env_id), settings, goals)  # a bad goal fails here
    # looked up in its module at call time, so that a test may stand in for the evaluation
    result = evaluation.run_evaluation(policy, settings, out, label=cfg.label or chosen.label,
                                       oracle=oracle, tasks=tasks,
                                       extra={"policy": chosen.loaded, "goals": source})
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
    return result

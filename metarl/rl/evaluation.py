"""Adaptation to new goals, as the MAML paper evaluates meta-RL (section 5.3, Figure 5).

For N test goals (sampled with a seed, or given by the user), a policy rolls out
``timesteps`` environment steps of episodes per goal (episodes that end early are followed by
new ones, as rllab's sampler fills its ``batch_size``), takes a REINFORCE step (α, then α/2),
rolls out again, up to ``steps`` steps. The same procedure scores MAML and every baseline
(pretrained, random initialisation, oracle), on the same goals. Results go to
``results.json`` (returns per goal and step, mean and 95% CI per step, episodes per goal and
step) and ``returns.csv``, the mean return against gradient steps to ``returns.png``; the adapted
per-goal policies to ``adapted_policy.pt``; optionally a before/after animation per goal.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, cast

import gymnasium as gym
import numpy as np

from metarl.core.functional import Params
from metarl.core.stats import mean_ci95
from metarl.envs.base import MetaEnv, Task
from metarl.errors import MetaRLError, require_positive_number, require_seed
from metarl.rl.config import BATCHES, config_from_identity
from metarl.rl.maml_trpo import MAMLTRPO
from metarl.rl.policies import GaussianMLPPolicy, policy_spec
from metarl.rl.policies import policy_from_spec as policy_from_spec  # the scripts' import
from metarl.rl.protocol import evaluate_adaptation, evaluation_episodes, paper_step_sizes
from metarl.rl.sampler import Batch, MultiTaskSampler
from metarl.runs.checkpoint import ADAPTED, save_checkpoint
from metarl.runs.io import atomic_write_bytes, atomic_write_json, read_json
from metarl.runs.logger import say
from metarl.runs.plotting import plot_adaptation_curves


@dataclass
class EvalSettings:
    """The evaluation protocol (defaults: the paper's)."""

    env: str
    """The registered env id whose goals are evaluated."""
    num_tasks: int = 40
    """Goals drawn with ``seed`` when none are given."""
    seed: int = 1
    """Seed of the goal draws and (plus one) of the rollouts."""
    steps: int = 3
    """Adaptation steps; returns are recorded after each of 0..steps."""
    alpha: float = 0.1
    """The first step's size (later steps take α/2: :func:`paper_step_sizes`)."""
    timesteps: int = 4000
    """Environment steps per goal and rollout (:func:`evaluation_episodes`)."""
    batch: str = "steps"
    """How a rollout's budget is counted: whole episodes or env steps (:data:`BATCHES`)."""
    horizon: int | None = None
    """Steps per episode (default: the env's own)."""
    device: str = "cpu"
    """Where the policy and its adaptation run."""
    threads: int | None = None
    """Physics threads of the sampler (default: all CPUs)."""
    inner_loss: str = "reinforce"
    """The adaptation step's estimator, advantages and discounting: a meta-trained policy is
    adapted at test time the way its training adapted it (:func:`inner_update_of`)."""
    gamma: float = 0.99
    """Discount of the adaptation step's returns."""
    gae_lambda: float = 1.0
    """GAE's λ for the adaptation step's advantages (1: plain returns minus the baseline)."""
    normalize_advantages: bool = True
    """Normalise each goal's advantages before the adaptation step."""
    repeats: int = 1
    """Independent draws per goal (rollouts and adaptation steps alike), averaged: rollout
    sampling alone moves one evaluation's mean by as much as the differences one may want to
    read between policies."""

    def __post_init__(self) -> None:
        if self.batch not in BATCHES:
            raise MetaRLError(f"unknown --batch {self.batch!r}; choose {' or '.join(BATCHES)}")
        if self.repeats < 1:
            raise MetaRLError(f"--repeats must be at least 1, got {self.repeats}")
        require_positive_number(self.alpha, "--alpha")
        require_seed(self.seed, "--seed")

    def inner_update(self) -> dict[str, Any]:
        """The inner-update settings, as results.json records them."""
        return {k: getattr(self, k) for k in INNER_UPDATE}


INNER_UPDATE = ("inner_loss", "gamma", "gae_lambda", "normalize_advantages")
"""The settings of the adaptation step that a run's config fixes (:func:`inner_update_of`)."""


def inner_update_of(config: dict[str, Any]) -> dict[str, Any]:
    """The inner-update settings (and horizon) of a train_rl.py run's config, for
    :class:`EvalSettings`: evaluating with other ones would measure a different adaptation
    than the one the policy was meta-trained for. A setting the config predates takes the
    value the run used (:func:`metarl.rl.config.config_from_identity`)."""
    run = config_from_identity(config)
    return {k: getattr(run, k) for k in (*INNER_UPDATE, "horizon")}


def make_meta_env(env_id: str) -> MetaEnv:
    """The unwrapped env of a registered id (for its task space), with a clear error."""
    import metarl.envs  # noqa: F401

    try:
        env = gym.make(env_id).unwrapped
    except gym.error.Error as err:
        raise MetaRLError(f"unknown env {env_id!r} ({err})") from None
    if not isinstance(env, MetaEnv):
        raise MetaRLError(f"{env_id} does not follow the task protocol")
    return env


GOALS_FORMAT = "expected a JSON list such as [[0.1, -0.3], [0.2, 0.4]] or one goal per line"
"""What a goals file holds, as the errors about one that cannot be read say."""


def read_goals_file(path: Path) -> list[list[float]]:
    """Goals from a file: a JSON list of goals (``[[0.1, -0.3], ...]``, one number per task
    field, or ``[1.5, 0.3]`` for one-number tasks), or text with one goal per line (numbers
    separated by commas or spaces; ``#`` comments). A fixed goal set makes results comparable
    across runs and with other code bases (e.g. the 40 navigation goals of the original
    MAML code). The values are checked by the env's task space later."""
    if path.is_dir():
        raise MetaRLError(f"goals file {path} is a folder; give a JSON or text file of goals")
    if not path.is_file():
        raise MetaRLError(f"goals file {path} does not exist; give a JSON or text file of goals")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise MetaRLError(f"cannot read goals from {path}: it is not a text file (a binary file "
                          f"passed by mistake?); {GOALS_FORMAT}") from None
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
            if not isinstance(raw, list):
                raise ValueError("the JSON is not a list")
            goals = [[float(v) for v in (g if isinstance(g, list) else [g])] for g in raw]
        else:
            goals = [[float(v) for v in line.split("#")[0].replace(",", " ").split()]
                     for line in text.splitlines()]
            goals = [g for g in goals if g]
    except (ValueError, TypeError) as err:
        raise MetaRLError(f"cannot read goals from {path} ({err}); {GOALS_FORMAT}") from None
    if not goals:
        raise MetaRLError(f"{path} holds no goals")
    return goals


class GoalChoice(NamedTuple):
    """The goals a command line asks for, with the words and the folder name that say so."""

    goals: list[list[float]] | None
    """One ``--goal``, a ``--goals-file``'s goals, or None for ``num_tasks`` seeded draws."""
    source: str
    """Where they came from, for results.json."""
    folder: str
    """The default output folder name of an evaluation on them (``adapt-…``)."""


def chosen_goals(settings: EvalSettings, goal: Sequence[float] | None = None,
                 goals_file: Path | None = None) -> GoalChoice:
    """The goals a command line asks for (see :class:`GoalChoice`)."""
    if goal is not None and len(goal) == 0:
        raise MetaRLError("--goal needs the goal's values, e.g. --goal 0.3 -0.2 for a "
                          "navigation goal or --goal 1.5 for a velocity")
    if goal and goals_file is not None:
        raise MetaRLError("give --goal or --goals-file, not both")
    if goal:
        return GoalChoice([list(goal)], "command line",
                          "adapt-goal-" + "_".join(f"{g:g}" for g in goal))
    if goals_file is not None:
        return GoalChoice(read_goals_file(goals_file), f"file {goals_file}",
                          f"adapt-goals-{goals_file.stem}")
    return GoalChoice(None, f"{settings.num_tasks} drawn with seed {settings.seed}",
                      f"adapt-{settings.num_tasks}goals-seed{settings.seed}")


def draw_tasks(env: MetaEnv, settings: EvalSettings,
               goals: Sequence[Sequence[float]] | None) -> list[Task]:
    """The user's goals (checked by the env's task space), or ``num_tasks`` seeded draws."""
    if goals:
        names = list(env.task_space.names)
        tasks = []
        for g in goals:
            if len(g) != len(names):
                raise MetaRLError(f"a goal of {type(env).__name__} has {len(names)} value(s) "
                                  f"({', '.join(names)}); got {len(g)}: {list(g)}")
            tasks.append(env.task_space.coerce(dict(zip(names, g))))
        return tasks
    return env.sample_tasks(settings.num_tasks, np.random.default_rng(settings.seed))


def run_evaluation(
    policy: GaussianMLPPolicy,
    settings: EvalSettings,
    out_dir: Path,
    *,
    label: str,
    oracle: bool = False,
    tasks: Sequence[Task] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate ``policy`` with the paper's protocol and write the result files.

    ``tasks``: the goals, as the caller drew them with :func:`draw_tasks` (it checks them
    before any work); default ``settings.num_tasks`` seeded draws. Each rollout's mean return
    and the elapsed time are reported on stderr as it finishes; the wall-clock seconds of the
    whole evaluation go to results.json (``eval_seconds``)."""
    from metarl.envs import ENV_IDS

    horizon = settings.horizon or ENV_IDS[settings.env][1]
    episodes = evaluation_episodes(horizon, settings.timesteps)
    sampler = MultiTaskSampler(settings.env, episodes, horizon=horizon,
                               batch=cast(Batch, settings.batch),  # checked in __post_init__
                               device=settings.device, num_threads=settings.threads,
                               env_kwargs={"oracle": True} if oracle else None)
    tasks = list(tasks) if tasks is not None else draw_tasks(sampler.env, settings, None)
    learner = MAMLTRPO(policy, inner_loss=settings.inner_loss)
    params: Params = {k: v.detach() for k, v in policy.named_parameters()}
    lrs = paper_step_sizes(settings.alpha, settings.steps)
    diagnostics: dict[str, list[Any]] = {}
    tic = time.perf_counter()

    def report(k: int, step_returns: np.ndarray) -> None:
        say(f"  {label}: rollout after {k} of {settings.steps} step(s) done, mean return "
            f"{float(step_returns.mean()):.2f} ({time.perf_counter() - tic:.0f} s)")

    repeats = settings.repeats
    try:
        draws, adapted = evaluate_adaptation(
            sampler, learner, params, [t for t in tasks for _ in range(repeats)],
            steps=settings.steps, lrs=lrs, rng=np.random.default_rng(settings.seed + 1),
            gamma=settings.gamma, gae_lambda=settings.gae_lambda,
            normalize_advantages=settings.normalize_advantages, diagnostics=diagnostics,
            on_rollout=report)
    finally:
        sampler.close()  # its physics threads end with an error too
    eval_seconds = time.perf_counter() - tic
    # goal-major draws [goals, repeats, steps + 1]: each goal's mean over its draws
    by_draw = draws.reshape(len(tasks), repeats, -1)
    returns = by_draw.mean(1)
    if repeats > 1:
        diagnostics = _mean_over_draws(diagnostics, repeats)
        adapted = {k: v[::repeats] for k, v in adapted.items()}  # each goal's first draw
    stats = [mean_ci95(returns[:, k]) for k in range(settings.steps + 1)]
    result = {
        "label": label, "env": settings.env, "oracle": oracle,
        "steps": list(range(settings.steps + 1)), "step_sizes": lrs,
        "slots_per_step": episodes, "batch": settings.batch, "horizon": sampler.horizon,
        "inner_update": settings.inner_update(),
        "episodes_per_task": diagnostics.get("episodes", []),
        "num_tasks": len(tasks), "seed": settings.seed,
        "tasks": [t.to_array().tolist() for t in tasks],
        "returns_mean": [m for m, _ in stats], "returns_ci95": [c for _, c in stats],
        "returns_per_task": returns.tolist(),
        "step_norm_median": [float(np.median(n)) for n in diagnostics.get("step_norm", [])],
        "step_norm_per_task": diagnostics.get("step_norm", []),
        "log_std_mean_before_step": diagnostics.get("log_std_mean", []),
        "clipped_fraction": diagnostics.get("clipped_fraction", []),
        "reward_terms_per_task": _by_term(diagnostics.get("reward_terms", [])),
        "terminated_fraction_per_task": diagnostics.get("terminated", []),
        "eval_seconds": eval_seconds,
        "repeats": repeats,
        # per draw, the mean over goals: what one evaluation with --repeats 1 would report
        **({"returns_mean_per_draw": by_draw.mean(0).tolist()} if repeats > 1 else {}),
        **(extra or {}),
        "plots": ["returns.png"],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_adaptation_curves([(label, result)], out_dir / "returns.png", metric="returns",
                           ylabel="average return",
                           title=f"{settings.env}, {len(tasks)} goal(s), "
                                 + ("step sizes " + ", ".join(f"{a:g}" for a in lrs) if lrs
                                    else "no adaptation"))
    atomic_write_json(out_dir / "results.json", result)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["task", *sampler.env.task_space.names,
                     *[f"return_after_{k}_steps" for k in range(settings.steps + 1)]])
    for i, task in enumerate(tasks):
        writer.writerow([i, *task.to_array().tolist(), *returns[i].tolist()])
    atomic_write_bytes(out_dir / "returns.csv", buf.getvalue().encode())
    save_checkpoint(out_dir / "adapted_policy.pt", {
        "kind": ADAPTED, "params": adapted, "tasks": result["tasks"],
        "policy_spec": policy_spec(policy), "env": settings.env, "oracle": oracle})
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    """An evaluation for the terminal: per adaptation step the mean return ± 95% CI, the
    share of action components the box clipped and of episodes the env ended (falls, goals
    reached); then, where the reward has several terms, each one's mean per env step (for
    AntVel ``reward_forward`` is the speed error): where the return comes from."""
    ended = result["terminated_fraction_per_task"]
    lines = [f"  after {k} step(s): {result['returns_mean'][k]:9.2f} ± "
             f"{result['returns_ci95'][k]:.2f}   (actions clipped by the box: "
             f"{100 * result['clipped_fraction'][k]:.0f} %; episodes the env ended: "
             f"{100 * float(np.mean(ended[k])):.0f} %)" for k in result["steps"]]
    per_draw = result.get("returns_mean_per_draw")
    if per_draw:
        sd = np.std(np.asarray(per_draw, dtype=np.float64), axis=0, ddof=1)
        lines.append(f"  ({len(per_draw)} draws per goal, averaged; one draw's mean over the "
                     "goals varies with sd " + " / ".join(f"{x:.2f}" for x in sd)
                     + " after " + " / ".join(str(k) for k in result["steps"]) + " step(s))")
    terms = result["reward_terms_per_task"]
    if len(terms) > 1:  # a single term is the reward itself
        lines.append("  reward terms per env step, mean over goals, after "
                     + " / ".join(str(k) for k in result["steps"]) + " step(s):")
        lines += [f"    {name:<16}" + "".join(f"{float(np.mean(v)):9.3f}" for v in per_step)
                  for name, per_step in terms.items()]
    return lines


def _mean_over_draws(diagnostics: dict[str, list[Any]], repeats: int) -> dict[str, list[Any]]:
    """Per-task diagnostics of goal-major draws (``goals × repeats`` entries per rollout or
    step) as each goal's mean over its draws; the per-rollout scalars are kept."""
    def per_goal(values: Any) -> Any:
        if isinstance(values, dict):
            return {k: per_goal(v) for k, v in values.items()}
        if isinstance(values, list):
            return np.asarray(values, dtype=np.float64).reshape(-1, repeats).mean(1).tolist()
        return values

    return {name: [per_goal(v) for v in per_rollout] for name, per_rollout in diagnostics.items()}


def _by_term(rollouts: Sequence[dict[str, list[float]]]) -> dict[str, list[list[float]]]:
    """``[{term: [per task]}]`` per rollout as ``{term: [[per task]] per rollout}``."""
    return {name: [r[name] for r in rollouts] for name in (rollouts[0] if rollouts else {})}


def load_evaluation(path: Path) -> dict[str, Any]:
    """An evaluation written by :func:`run_evaluation`: a folder or its results.json."""
    file = path / "results.json" if path.is_dir() else path
    if not file.exists():
        raise MetaRLError(f"{path} has no results.json from `metarl adapt` or `metarl baselines`")
    result = read_json(file, "the results.json of `metarl adapt` or `metarl baselines` (pass "
                       "their output folder)")
    if not isinstance(result, dict) or "returns_mean" not in result:
        raise MetaRLError(f"{file} is not an adaptation evaluation (no returns_mean)")
    return result


def load_evaluations(paths: Sequence[Path], labels: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The evaluations at ``paths`` (:func:`load_evaluation`), after checking that ``labels``,
    if any are given, name each one (the scripts' ``--labels`` for their ``--results``)."""
    if labels and len(labels) != len(paths):
        raise MetaRLError(f"got {len(labels)} --labels for {len(paths)} --results")
    return [load_evaluation(path) for path in paths]


def _group_stats(rows: np.ndarray, num_steps: int) -> dict[str, Any]:
    """Count, mean and 95% CI per adaptation step of one group of goals' returns (NaN for an
    empty group)."""
    stats = [mean_ci95(rows[:, k]) if len(rows) else (math.nan, math.nan)
             for k in range(num_steps)]
    return {"count": int(len(rows)), "mean": [m for m, _ in stats],
            "ci95": [c for _, c in stats]}


def _group_diagnostics(result: dict[str, Any], members: np.ndarray) -> dict[str, Any]:
    """Per adaptation step, the mean over a group of goals (``members``: a bool mask over
    them) of each reward term's per-step mean (``terms``) and of the fraction of episodes the
    env ended (``terminated``); empty for evaluations written before these were recorded,
    NaN for an empty group."""
    def means(per_rollout: list[list[float]]) -> list[float]:
        rows = np.asarray(per_rollout, dtype=np.float64)[:, members]
        return [float(r.mean()) if r.size else math.nan for r in rows]

    terms = result.get("reward_terms_per_task") or {}
    terminated = result.get("terminated_fraction_per_task") or []
    out: dict[str, Any] = {}
    if terms:
        out["terms"] = {name: means(v) for name, v in terms.items()}
    if terminated:
        out["terminated"] = means(terminated)
    return out


def _returns_and_tasks(result: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """An evaluation's returns (goals × steps) and task vectors (goals × task dims)."""
    returns = np.asarray(result["returns_per_task"], dtype=np.float64)
    tasks = np.asarray(result["tasks"], dtype=np.float64).reshape(len(returns), -1)
    return returns, tasks


def split_by_goal_distance(result: dict[str, Any], distance: float) -> dict[str, Any]:
    """Mean return per adaptation step (± 95% CI) over the goals nearer than ``distance`` to
    the origin of the task space (‖task‖ < distance: for navigation the start, for a target
    velocity zero) and over the rest, with their counts and the median goal.

    Where an evaluation's mean comes from: e.g. far navigation goals need a longer move than
    one or two adaptation steps achieve."""
    returns, tasks = _returns_and_tasks(result)
    far = np.linalg.norm(tasks, axis=1) >= distance
    return {"distance": distance, "steps": result["steps"],
            "median": np.median(returns, axis=0).tolist(),
            "near": {**_group_stats(returns[~far], returns.shape[1]),
                     **_group_diagnostics(result, ~far)},
            "far": {**_group_stats(returns[far], returns.shape[1]),
                    **_group_diagnostics(result, far)}}


MAX_TASK_GROUPS = 8
"""More distinct task vectors than this means a continuous task space: split by distance."""


def split_by_task_value(result: dict[str, Any]) -> dict[str, Any]:
    """Mean return per adaptation step (± 95% CI) per distinct task, and the mean of those
    group means (each task value weighted equally), for discrete task spaces such as
    HalfCheetahDir's and AntDir's direction ±1.

    A uniform draw of 40 directions is rarely 20 / 20, so when the pre-update policy favours
    one direction the plain mean over goals depends on the draw's mix; the balanced mean does
    not."""
    returns, tasks = _returns_and_tasks(result)
    values, inverse = np.unique(tasks, axis=0, return_inverse=True)
    if len(values) > MAX_TASK_GROUPS:
        raise MetaRLError(
            f"the evaluation has {len(values)} distinct goals (more than {MAX_TASK_GROUPS}): "
            "its task space is continuous; split it by --distance instead")
    inverse = inverse.reshape(-1)
    groups = [{"task": value.tolist(), **_group_stats(returns[inverse == i], returns.shape[1]),
               **_group_diagnostics(result, inverse == i)}
              for i, value in enumerate(values)]
    balanced = np.mean([g["mean"] for g in groups], axis=0)
    return {"steps": result["steps"], "groups": groups, "balanced_mean": balanced.tolist()}


def _shared_goals(results: Sequence[dict[str, Any]]) -> np.ndarray:
    """The goals (task vectors) every evaluation in ``results`` was made on, after checking
    that they are the same goals in the same order."""
    goals = np.asarray(results[0]["tasks"], dtype=np.float64)
    for r in results[1:]:
        other = np.asarray(r["tasks"], dtype=np.float64)
        if other.shape != goals.shape or not np.allclose(other, goals):
            raise MetaRLError("the evaluations were made on different goals; evaluate every "
                              "policy with the same --seed and --num-tasks (or --goals-file)")
    return goals


def summarize_seeds(results: Sequence[dict[str, Any]],
                    reference: Sequence[float] | None = None) -> dict[str, Any]:
    """Across-seed spread of evaluations of independently trained policies on the same goals.

    One training run is one draw: meta-RL results vary between training seeds far more than
    the 95% CI over goals of a single evaluation shows. Per adaptation step:
    the seeds' mean returns (over the goals), their mean, sample standard deviation, median,
    min and max. With ``reference`` (e.g. a paper's numbers, one per step from step 0), also
    how many seeds reach it (mean return ≥ reference).

    The evaluations must share env, goals, adaptation steps and step sizes, so that the
    spread is the training seeds' and not the protocol's."""
    if len(results) < 1:
        raise MetaRLError("no evaluations to summarise")
    first = results[0]
    for key in ("env", "steps", "step_sizes"):
        values = {json.dumps(r.get(key)) for r in results}
        if len(values) > 1:
            raise MetaRLError(f"the evaluations differ in {key}: {sorted(values)}; compare "
                              "evaluations made with the same `metarl adapt` settings")
    goals = _shared_goals(results)
    per_seed = np.asarray([r["returns_mean"] for r in results], dtype=np.float64)
    n = len(per_seed)
    out: dict[str, Any] = {
        "env": first["env"], "steps": first["steps"], "num_seeds": n,
        "num_goals": int(len(goals)), "per_seed": per_seed.tolist(),
        "mean": per_seed.mean(0).tolist(),
        "std": (per_seed.std(0, ddof=1) if n > 1 else np.full(per_seed.shape[1], math.nan)
                ).tolist(),
        "median": np.median(per_seed, 0).tolist(),
        "min": per_seed.min(0).tolist(), "max": per_seed.max(0).tolist(),
    }
    if reference is not None:
        ref = [float(x) for x in reference]
        if len(ref) > per_seed.shape[1]:
            raise MetaRLError(f"{len(ref)} reference values for {per_seed.shape[1]} adaptation "
                              "steps (give one per step, starting at 0 steps)")
        out["reference"] = ref
        out["seeds_reaching_reference"] = [int((per_seed[:, k] >= v).sum())
                                           for k, v in enumerate(ref)]
    return out


def paired_difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Goal-for-goal comparison of two evaluations on the same goals: per adaptation step
    (those both have), each one's mean return over the goals and the mean of the per-goal
    differences a − b with its 95% CI.

    Two evaluations on the same goals share the goals' difficulty (on 2D navigation a goal's
    return before adaptation is nearly a function of its distance from the start), so the
    paired difference has a far narrower interval than the two means' own CIs suggest: the
    right test of "does policy a adapt as well as b" -- e.g. ours against the MAML paper's
    per-goal data on the original code's test goals. A CI that contains 0
    means the goals cannot tell the two apart."""
    goals = _shared_goals([a, b])
    ra = np.asarray(a["returns_per_task"], dtype=np.float64).reshape(len(goals), -1)
    rb = np.asarray(b["returns_per_task"], dtype=np.float64).reshape(len(goals), -1)
    steps_a, steps_b = list(a["steps"]), list(b["steps"])
    n = 0
    while n < min(len(steps_a), len(steps_b)) and steps_a[n] == steps_b[n]:
        n += 1
    if n == 0:
        raise MetaRLError(f"the evaluations share no adaptation steps ({steps_a} and "
                          f"{steps_b}); compare evaluations that both start at 0 steps")
    diff = [mean_ci95(ra[:, k] - rb[:, k]) for k in range(n)]
    return {"steps": steps_a[:n], "num_goals": int(len(goals)),
            "mean_a": ra[:, :n].mean(0).tolist(), "mean_b": rb[:, :n].mean(0).tolist(),
            "difference": [m for m, _ in diff], "difference_ci95": [c for _, c in diff],
            "a_higher": [int((ra[:, k] > rb[:, k]).sum()) for k in range(n)]}

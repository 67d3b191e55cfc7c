"""The paper's adaptation protocol (MAML section 5.3), shared by training and evaluation.

At each adaptation step every task's current policy rolls out a fresh batch, its mean return
is recorded, and one first-order inner step moves the task's parameters (step sizes α, then
α/2: :func:`paper_step_sizes`; a batch of the paper's step budget per goal:
:func:`evaluation_episodes`). The trainer's validation (:class:`metarl.rl.trainer.MetaRLTrainer`)
and the test evaluation of every policy (:mod:`metarl.rl.evaluation`) run the same function.
:func:`drift_warning` reads a run's history for the way failed runs begin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch

from metarl.core.functional import Params, expand
from metarl.envs.base import Task
from metarl.rl.advantages import to_pg_batch
from metarl.rl.maml_trpo import MAMLTRPO
from metarl.rl.sampler import MultiTaskSampler


def evaluate_adaptation(
    sampler: MultiTaskSampler,
    learner: MAMLTRPO,
    params: Params,
    tasks: Sequence[Task],
    *,
    steps: int,
    lrs: Sequence[float],
    rng: np.random.Generator,
    gamma: float = 0.99,
    gae_lambda: float = 1.0,
    normalize_advantages: bool = True,
    diagnostics: dict[str, list[Any]] | None = None,
    on_rollout: Callable[[int, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, Params]:
    """The paper's protocol: sample, adapt, sample again, ``steps`` times.

    At step k every task's current policy (θ at k = 0) rolls out a fresh batch (the paper:
    4000 steps, ``batch="steps"``); its mean episode return is recorded, and one first-order
    step of ``learner``'s inner loss (the paper: REINFORCE) of size ``lrs[k]`` (the paper: α,
    then α/2), on advantages made as in training (``gamma``, ``gae_lambda``,
    ``normalize_advantages``), moves the task's parameters. Returns the mean episode
    return per task and step ``[tasks, steps + 1]`` and the final per-task parameters.
    If ``diagnostics`` is given, it receives per step the norm of each task's parameter
    change (``step_norm``) and the policy's mean log σ over tasks before the step
    (``log_std_mean``), to see how far each adaptation step moves the policy, and per
    rollout the episodes per task (``episodes``), the fraction of action components the
    action box clipped (``clipped_fraction``), each reward term's mean per step per task
    (``reward_terms``: ``{name: [per task]}``, e.g. AntVel's speed error) and the fraction of
    each task's episodes the env ended (``terminated``: falls, goals reached).
    ``on_rollout(k, returns)``, if given, is called
    after each rollout with the step and its per-task returns (for progress reports during a
    long evaluation).
    """
    if len(lrs) < steps:
        raise ValueError(f"need {steps} step sizes, got {len(lrs)}")
    current = {k: v.detach() for k, v in expand(params, len(tasks)).items()}
    returns = np.zeros((len(tasks), steps + 1))
    policy = learner.policy
    for k in range(steps + 1):
        episodes = sampler.sample(tasks, policy, current, rng)
        returns[:, k] = episodes.task_returns().double().cpu().numpy()
        if on_rollout is not None:
            on_rollout(k, returns[:, k])
        if diagnostics is not None:
            diagnostics.setdefault("episodes", []).append(
                torch.bincount(episodes.table.task, minlength=len(tasks)).tolist())
            diagnostics.setdefault("clipped_fraction", []).append(
                sampler.clipped_fraction(episodes))
            diagnostics.setdefault("reward_terms", []).append(
                {name: v.tolist() for name, v in episodes.task_reward_terms().items()})
            diagnostics.setdefault("terminated", []).append(
                episodes.task_terminated_fraction().tolist())
        if k < steps:
            batch = to_pg_batch(episodes, gamma=gamma, gae_lambda=gae_lambda,
                                normalize_advantages=normalize_advantages)
            new = learner.adapt_stacked(current, batch, lrs[k])
            if diagnostics is not None:
                sq = cast(torch.Tensor,
                          sum(((new[n] - current[n]) ** 2).flatten(1).sum(1) for n in current))
                diagnostics.setdefault("step_norm", []).append(torch.sqrt(sq).tolist())
                log_std = [v for n, v in current.items() if n.endswith("log_std")]
                diagnostics.setdefault("log_std_mean", []).append(
                    float(log_std[0].mean()) if log_std else float("nan"))
            current = new
    return returns, current


def drift_warning(history: Sequence[dict[str, float]], *, max_kl: float,
                  factor: float = 5.0) -> str | None:
    """A warning when one TRPO step moved the pre-update policy π_θ by more than
    ``factor · max_kl`` (``trpo/kl_initial``, its KL on the support observations).

    The paper's trust region bounds only the adapted policies; π_θ can move far along
    directions the inner step undoes, or on states only π_θ visits, and the next iteration
    samples from the moved π_θ (:mod:`metarl.rl.analysis` splits the two). On navigation,
    healthy runs kept ``kl_initial`` near the trust region, while the failed ones began with
    such a jump, after which the pre-update return fell and the pre-update policy's samples
    came to lie mostly outside the action box. The clipped fraction is logged
    (``actions/clipped_before_adaptation``) rather than warned about: it rises later than
    this KL, and it is high in healthy HalfCheetah runs too. With
    ``--trpo.trust-region adapted+initial`` the constraint bounds π_θ's move, so this never
    fires.
    """
    last = history[-1] if history else {}
    moved = last.get("trpo/kl_initial")
    if moved is None or moved <= factor * max_kl:
        return None
    iteration = int(last.get("iteration", len(history)))
    return (f"at iteration {iteration} the TRPO step moved the pre-update policy by KL "
            f"{moved:.3g}, {moved / max_kl:.0f}x the trust region ({max_kl:g}) that bounds the "
            "adapted policies: the failed navigation runs began this way "
            "(the pre-update policy then drives off at full speed). If returns/before_adaptation "
            "falls while returns/after_adaptation stalls, restart with another --seed; "
            f"scripts/analysis/step_anatomy.py --run-dir <this run> --first {iteration} takes "
            "the step apart")


def paper_step_sizes(alpha: float, steps: int) -> list[float]:
    """α for the first step, α/2 for the later ones (MAML section 5.3's evaluation)."""
    return [alpha] + [alpha / 2.0] * max(steps - 1, 0)


def evaluation_episodes(horizon: int, timesteps: int = 4000) -> int:
    """Sampler slots per goal for a budget of ``timesteps`` (the paper: 4000): with
    ``batch="steps"`` they take ``timesteps`` steps (rounded down to whole horizons)."""
    return max(1, timesteps // horizon)

"""From sampled episodes to the tensors a policy-gradient loss needs.

Per task: discounted returns, the linear feature baseline fit on that task's episodes, GAE
advantages (λ = 1 gives returns minus baseline, the MAML-RL default), normalised to zero mean
and unit variance over the task's valid steps.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from metarl.baselines import fit_linear_baseline
from metarl.pg import PGBatch
from metarl.returns import discounted_returns, gae, normalize


class EpisodeTensors(Protocol):
    """What :func:`to_pg_batch` reads from a sampler's output (``[tasks, episodes, time]``)."""

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    log_probs: Tensor
    mask: Tensor


def to_pg_batch(
    episodes: EpisodeTensors,
    *,
    gamma: float = 0.99,
    gae_lambda: float = 1.0,
    normalize_advantages: bool = True,
) -> PGBatch:
    """Advantages per task (baseline fit on the task's own episodes), packed as a batch."""
    mask = episodes.mask
    returns = discounted_returns(episodes.rewards, mask, gamma)
    values = fit_linear_baseline(episodes.observations, returns, mask)
    adv = gae(episodes.rewards, values, mask, gamma, gae_lambda)
    if normalize_advantages:
        adv = normalize(adv, mask, dims=(-2, -1))
    return PGBatch(
        observations=episodes.observations,
        actions=episodes.actions,
        advantages=adv.detach(),
        log_probs=episodes.log_probs.detach(),
        mask=mask,
    )


def episode_returns(episodes: EpisodeTensors) -> Tensor:
    """Undiscounted return of every episode, ``[tasks, episodes]``."""
    return (episodes.rewards * episodes.mask).sum(-1)

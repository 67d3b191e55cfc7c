"""Policy-gradient losses on padded episode tensors.

Every function reduces over the last two axes ``[..., episodes, time]`` with a validity mask,
so the same code gives one task's scalar loss, or a vector ``[tasks]`` when the inputs carry a
leading task axis (and the policy parameters are task-stacked). Per-task losses are averaged
over that task's valid steps, as the original MAML-RL code averages over its sampled steps.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from metarl.core.functional import Params
from metarl.rl.policies import GaussianDist, GaussianMLPPolicy, gaussian_kl


class PGBatch(NamedTuple):
    """The data a policy-gradient loss needs, all ``[..., rows, steps, ...]``.

    The losses are means over the valid entries of the two step axes, so the order of the steps
    does not matter: a task's steps may come as its episodes (one per row) or packed into one
    row (:func:`metarl.rl.advantages.to_pg_batch`).

    ``log_probs`` are the behaviour policy's (the one that sampled the actions); they are
    constants, used for importance ratios and the LVC estimator.
    """

    observations: Tensor
    actions: Tensor
    advantages: Tensor
    log_probs: Tensor
    mask: Tensor


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over the valid entries of the last two axes."""
    return (x * mask).sum(dim=(-2, -1)) / mask.sum(dim=(-2, -1)).clamp_min(1.0)


def reinforce_loss(policy: GaussianMLPPolicy, params: Params, batch: PGBatch) -> Tensor:
    """REINFORCE surrogate ``−mean_t log π(a_t|s_t) A_t`` (the MAML-RL inner loss).

    Its gradient is the vanilla policy gradient. Differentiating it a second time (MAML's
    meta-gradient) omits the dependence of the sampling distribution on θ: the estimator of
    the original code (see :func:`lvc_loss` for the low-variance correction).
    """
    logp = policy.log_prob(params, batch.observations, batch.actions)
    return -masked_mean(logp * batch.advantages, batch.mask)


def lvc_loss(policy: GaussianMLPPolicy, params: Params, batch: PGBatch) -> Tensor:
    """Low-variance curvature surrogate (Rothfuss et al., 2019, ProMP eq. 12).

    ``−mean_t π_θ(a|s) / π_old(a|s) · A_t``: the same value and gradient as
    :func:`reinforce_loss` at θ = θ_old, but its Hessian also carries the score-function
    term of the sampling distribution.
    """
    logp = policy.log_prob(params, batch.observations, batch.actions)
    ratio = torch.exp(logp - batch.log_probs)
    return -masked_mean(ratio * batch.advantages, batch.mask)


INNER_LOSSES = {"reinforce": reinforce_loss, "lvc": lvc_loss}


def surrogate_loss(policy: GaussianMLPPolicy, params: Params, batch: PGBatch) -> Tensor:
    """TRPO's importance-sampled surrogate ``−mean_t ratio_t A_t`` (Schulman et al., 2015)."""
    logp = policy.log_prob(params, batch.observations, batch.actions)
    return -masked_mean(torch.exp(logp - batch.log_probs) * batch.advantages, batch.mask)


def mean_kl(policy: GaussianMLPPolicy, params: Params, old: GaussianDist, batch: PGBatch) -> Tensor:
    """``mean_t KL(π_old(·|s_t) || π_θ(·|s_t))`` over valid steps."""
    new = policy.dist(params, batch.observations)
    return masked_mean(gaussian_kl(old, new), batch.mask)


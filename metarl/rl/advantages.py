"""From sampled episodes to the tensors a policy-gradient loss needs.

Per task: discounted returns, the linear feature baseline fit on that task's episodes, GAE
advantages (λ = 1 gives returns minus baseline, the MAML-RL default), normalised to zero mean
and unit variance over the task's valid steps.

The losses need no time structure once the advantages are known, so :func:`to_pg_batch` packs
each task's valid steps into one row ``[tasks, 1, steps]``, dropping the padding the rollout
layout carries (after early terminations, and up to half of a row under a step budget whose
episodes end early): every later pass over the batch -- the inner step, each conjugate-gradient
Hessian-vector product, each line-search candidate -- costs what the data costs.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from metarl.rl.baselines import fit_linear_baseline
from metarl.rl.pg import PGBatch
from metarl.rl.returns import discounted_returns, gae, normalize


class EpisodeTensors(Protocol):
    """What :func:`to_pg_batch` reads from a sampler's output (``[tasks, slots, time]``; read-only
    members, so that a NamedTuple such as :class:`metarl.rl.sampler.Episodes` qualifies)."""

    @property
    def observations(self) -> Tensor: ...
    @property
    def actions(self) -> Tensor: ...
    @property
    def rewards(self) -> Tensor: ...
    @property
    def log_probs(self) -> Tensor: ...
    @property
    def mask(self) -> Tensor: ...
    @property
    def dones(self) -> Tensor:
        """The last step of every episode (a slot may hold several episodes back to back)."""
        ...
    @property
    def timesteps(self) -> Tensor:
        """Each step's index within its episode."""
        ...


def to_pg_batch(
    episodes: EpisodeTensors,
    *,
    gamma: float = 0.99,
    gae_lambda: float = 1.0,
    normalize_advantages: bool = True,
) -> PGBatch:
    """Advantages per task (baseline fit on the task's own episodes), as a packed batch
    ``[tasks, 1, steps]`` (see the module docstring)."""
    mask, dones = episodes.mask, episodes.dones
    returns = discounted_returns(episodes.rewards, mask, gamma, dones)
    values = fit_linear_baseline(episodes.observations, returns, mask,
                                 timesteps=episodes.timesteps)
    adv = gae(episodes.rewards, values, mask, gamma, gae_lambda, dones)
    if normalize_advantages:
        adv = normalize(adv, mask, dims=(-2, -1))
    return pack_valid_steps(PGBatch(
        observations=episodes.observations,
        actions=episodes.actions,
        advantages=adv.detach(),
        log_probs=episodes.log_probs.detach(),
        mask=mask,
    ))


def pack_valid_steps(batch: PGBatch) -> PGBatch:
    """Each task's valid steps, in their order, as one row ``[tasks, 1, n]`` (``n`` the most
    valid steps of any task; shorter tasks are padded with masked zeros)."""
    mask = batch.mask
    tasks = mask.shape[0]
    flat = mask.reshape(tasks, -1)
    n = max(int(flat.sum(1).max().item()), 1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)[:, :n]

    def take(x: Tensor) -> Tensor:
        rows = x.reshape(tasks, flat.shape[1], *x.shape[mask.dim():])
        index = order.reshape(tasks, n, *([1] * (rows.dim() - 2))).expand(
            tasks, n, *rows.shape[2:])
        return torch.gather(rows, 1, index).unsqueeze(1)

    return PGBatch(*(take(x) for x in batch))

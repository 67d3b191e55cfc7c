"""Discounted returns and generalised advantage estimation as pure functions.

Tensors are time-major along their LAST axis: ``rewards[..., t]`` with any leading batch axes
(e.g. ``[tasks, slots, time]``). ``mask[..., t]`` is 1.0 on steps an episode really took and
0.0 on padding, so padded steps contribute nothing and receive nothing.

A row holds one episode, or several episodes back to back (a sampler that restarts episodes
which end early, as the original MAML-RL sampler did to fill its step budget). ``dones[..., t]``
marks the last step of each episode; nothing flows backwards across it. Without ``dones`` a row
is one episode, ended by its mask. Episodes that end by the time limit are not bootstrapped, as
in the MAML-RL code (rllab's ``discount_cumsum`` per path).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(rewards: Tensor, *others: Tensor | None) -> None:
    for o in others:
        if o is not None and o.shape != rewards.shape:
            raise ValueError(f"shape mismatch: rewards {tuple(rewards.shape)} vs {tuple(o.shape)}")


def _continues(mask: Tensor, dones: Tensor | None) -> Tensor:
    """1.0 where step ``t + 1`` belongs to the same episode as step ``t``, else 0.0."""
    following = torch.cat([mask[..., 1:], torch.zeros_like(mask[..., :1])], dim=-1)
    if dones is None:
        return mask * following
    return mask * following * (~dones.bool()).to(mask.dtype)


def discounted_returns(
    rewards: Tensor, mask: Tensor, gamma: float, dones: Tensor | None = None
) -> Tensor:
    """``G_t = Σ_{k≥t} γ^{k−t} r_k`` over the rest of step ``t``'s episode; 0 on padding."""
    _check(rewards, mask, dones)
    cont = _continues(mask, dones)
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = (rewards[..., t] + gamma * cont[..., t] * running) * mask[..., t]
        out[..., t] = running
    return out


def gae(
    rewards: Tensor,
    values: Tensor,
    mask: Tensor,
    gamma: float,
    lam: float,
    dones: Tensor | None = None,
) -> Tensor:
    """Generalised advantage estimation (Schulman et al., 2016, eq. 16).

    ``δ_t = r_t + γ V(s_{t+1}) − V(s_t)`` with ``V(s_{t+1})`` = 0 after an episode's last step;
    ``A_t = Σ_k (γλ)^k δ_{t+k}`` within the episode. With ``lam = 1`` this is ``G_t − V(s_t)``.
    """
    _check(rewards, values, mask, dones)
    cont = _continues(mask, dones)
    values = values * mask
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
    deltas = (rewards + gamma * cont * next_values - values) * mask
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = (deltas[..., t] + gamma * lam * cont[..., t] * running) * mask[..., t]
        out[..., t] = running
    return out


def normalize(advantages: Tensor, mask: Tensor, dims: tuple[int, ...], eps: float = 1e-8) -> Tensor:
    """Zero mean, unit variance over the valid entries of ``dims`` (e.g. per task)."""
    _check(advantages, mask)
    count = mask.sum(dim=dims, keepdim=True).clamp_min(1.0)
    mean = (advantages * mask).sum(dim=dims, keepdim=True) / count
    var = ((advantages - mean) ** 2 * mask).sum(dim=dims, keepdim=True) / count
    return (advantages - mean) / (var.sqrt() + eps) * mask

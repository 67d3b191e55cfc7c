"""Discounted returns and generalised advantage estimation as pure functions.

Tensors are time-major along their LAST axis: ``rewards[..., t]`` with any leading batch axes
(e.g. ``[tasks, episodes, time]``). ``mask[..., t]`` is 1.0 on steps the episode really took
and 0.0 on padding after it ended, so padded steps contribute nothing and receive nothing.
Episodes that end by the time limit are not bootstrapped, as in the MAML-RL code.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(rewards: Tensor, *others: Tensor) -> None:
    for o in others:
        if o.shape != rewards.shape:
            raise ValueError(f"shape mismatch: rewards {tuple(rewards.shape)} vs {tuple(o.shape)}")


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """``G_t = Σ_{k≥t} γ^{k−t} r_k`` over the valid steps; 0 on padding."""
    _check(rewards, mask)
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = (rewards[..., t] + gamma * running) * mask[..., t]
        out[..., t] = running
    return out


def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float
) -> Tensor:
    """Generalised advantage estimation (Schulman et al., 2016, eq. 16).

    ``δ_t = r_t + γ V(s_{t+1}) − V(s_t)`` with ``V`` = 0 after the episode's last valid step;
    ``A_t = Σ_k (γλ)^k δ_{t+k}``. With ``lam = 1`` this is ``G_t − V(s_t)``.
    """
    _check(rewards, values, mask)
    values = values * mask
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
    deltas = (rewards + gamma * next_values - values) * mask
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = (deltas[..., t] + gamma * lam * running) * mask[..., t]
        out[..., t] = running
    return out


def normalize(advantages: Tensor, mask: Tensor, dims: tuple[int, ...], eps: float = 1e-8) -> Tensor:
    """Zero mean, unit variance over the valid entries of ``dims`` (e.g. per task)."""
    _check(advantages, mask)
    count = mask.sum(dim=dims, keepdim=True).clamp_min(1.0)
    mean = (advantages * mask).sum(dim=dims, keepdim=True) / count
    var = ((advantages - mean) ** 2 * mask).sum(dim=dims, keepdim=True) / count
    return (advantages - mean) / (var.sqrt() + eps) * mask

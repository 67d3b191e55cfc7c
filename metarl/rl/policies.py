"""Diagonal Gaussian MLP policy, called through its parameter dictionary.

As in the MAML paper's RL experiments (section 5.3, following rllab's ``GaussianMLPPolicy``):
an MLP maps the observation to the action mean; the log standard deviation is a learned,
state-independent vector. The forward pass is written with plain tensor ops on a ``Params``
dict, so the same function serves

* one parameter set and observations ``[..., obs_dim]``;
* a stack of per-task parameter sets (weights ``[T, out, in]``) and observations
  ``[T, ..., obs_dim]`` -- one batched matmul per layer for every task at once, which is what
  the multi-task sampler needs;
* :func:`torch.func.vmap` over tasks.

Log-probabilities are **summed** over action dimensions (the density of the joint action); an
average would silently rescale every policy gradient by ``1/act_dim``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn

from metarl.core.functional import Params

_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}
_LOG_2PI = math.log(2.0 * math.pi)


class GaussianDist(NamedTuple):
    """A diagonal Gaussian: ``mean [..., A]`` and ``log_std`` broadcastable to it."""

    mean: Tensor
    log_std: Tensor


def gaussian_log_prob(dist: GaussianDist, actions: Tensor) -> Tensor:
    """``log N(actions; mean, diag(std²))`` summed over the last (action) axis."""
    z = (actions - dist.mean) * torch.exp(-dist.log_std)
    per_dim = -0.5 * z.pow(2) - dist.log_std - 0.5 * _LOG_2PI
    return per_dim.sum(-1)


def gaussian_kl(p: GaussianDist, q: GaussianDist) -> Tensor:
    """``KL(p || q)`` for diagonal Gaussians, summed over the action axis."""
    var_ratio = torch.exp(2.0 * (p.log_std - q.log_std))
    mean_term = (p.mean - q.mean).pow(2) * torch.exp(-2.0 * q.log_std)
    per_dim = 0.5 * (var_ratio + mean_term - 1.0) - (p.log_std - q.log_std)
    return per_dim.sum(-1)


def gaussian_entropy(dist: GaussianDist) -> Tensor:
    """Entropy summed over the action axis."""
    per_dim = dist.log_std + 0.5 * (1.0 + _LOG_2PI)
    return per_dim.expand_as(dist.mean).sum(-1)


def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``x @ Wᵀ + b`` for one layer ``W [out, in]`` or a task stack ``W [T, out, in]``.

    With a stack, ``x`` is ``[T, ..., in]``; intermediate axes are flattened into one batch
    axis so a single ``baddbmm`` covers every task.
    """
    if weight.dim() == 2:
        return torch.nn.functional.linear(x, weight, bias)
    t = weight.shape[0]
    lead = x.shape[1:-1]
    flat = x.reshape(t, -1, x.shape[-1])
    out = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    return out.reshape(t, *lead, weight.shape[1])


class GaussianMLPPolicy(nn.Module):
    """π_θ(a | o) = N(MLP_θ(o), diag(exp(log_std)²)).

    Parameter names: ``layers.{i}.weight`` / ``layers.{i}.bias`` for the hidden and output
    layers, and ``log_std``. The module itself holds the meta-parameters θ; every adapted or
    per-task parameter set is a separate ``Params`` dict passed to :meth:`dist`.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int] = (100, 100),
        activation: str = "relu",
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}"
            )
        if init_std <= 0:
            raise ValueError(f"init_std must be positive, got {init_std}")
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.hidden_sizes = tuple(hidden_sizes)
        self.activation = activation
        sizes = [obs_dim, *self.hidden_sizes, act_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases (rllab's initialisation)."""
        for layer in cast(Iterable[nn.Linear], self.layers):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def dist(self, params: Params, obs: Tensor) -> GaussianDist:
        """The action distribution at ``obs`` under ``params`` (single or task-stacked)."""
        act = _ACTIVATIONS[self.activation]
        h = obs
        n = len(self.layers)
        for i in range(n):
            h = _linear(h, params[f"layers.{i}.weight"], params[f"layers.{i}.bias"])
            if i < n - 1:
                h = act(h)
        log_std = params["log_std"]
        if log_std.dim() == 2:  # task stack [T, A] -> broadcast over [T, ..., A]
            log_std = log_std.reshape(log_std.shape[0], *([1] * (h.dim() - 2)), -1)
        return GaussianDist(h, log_std)

    def forward(self, obs: Tensor) -> GaussianDist:
        """The distribution under the module's own parameters."""
        return self.dist(dict(self.named_parameters()), obs)

    def log_prob(self, params: Params, obs: Tensor, actions: Tensor) -> Tensor:
        """``log π(actions | obs)`` summed over action dimensions."""
        return gaussian_log_prob(self.dist(params, obs), actions)

    def sample(
        self, params: Params, obs: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw actions and their log-probabilities (no gradient is kept)."""
        with torch.no_grad():
            d = self.dist(params, obs)
            noise = torch.randn(
                d.mean.shape, generator=generator, device=d.mean.device, dtype=d.mean.dtype
            )
            actions = d.mean + torch.exp(d.log_std) * noise
            return actions, gaussian_log_prob(d, actions)


def policy_spec(policy: GaussianMLPPolicy) -> dict[str, Any]:
    """What rebuilds the policy with :func:`policy_from_spec`: its sizes and activation, as
    every file that holds a policy (training checkpoints, baselines' policy files, adapted
    policies) records them."""
    return {"obs_dim": policy.obs_dim, "act_dim": policy.act_dim,
            "hidden_sizes": list(policy.hidden_sizes), "activation": policy.activation}


def policy_from_spec(spec: dict[str, Any], state: dict[str, Tensor]) -> GaussianMLPPolicy:
    """Rebuild a policy from :func:`policy_spec` and a state dict."""
    policy = GaussianMLPPolicy(spec["obs_dim"], spec["act_dim"], tuple(spec["hidden_sizes"]),
                               spec["activation"])
    policy.load_state_dict(state)
    return policy

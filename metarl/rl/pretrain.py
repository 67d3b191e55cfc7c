"""The "pretrained" and "oracle" baselines of MAML section 5.3, trained with SB3's PPO.

* pretrained: one policy trained on the whole task distribution (a new task at every reset),
  with no task information; at test time it is adapted exactly like the MAML policy.
* oracle: the same, but the task parameters are part of the observation (the env's
  ``oracle=True``), so one policy can solve every task without adaptation.

PPO's actor (SB3 ``MlpPolicy`` with separate actor and critic networks, state-independent
log-std) has the same shape as our :class:`~metarl.rl.policies.GaussianMLPPolicy`, so its weights
map one to one: ``mlp_extractor.policy_net.{0,2,...}`` → ``layers.{0,1,...}``,
``action_net`` → the output layer, ``log_std`` → ``log_std``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from metarl.envs.base import MetaEnv
from metarl.rl.policies import GaussianMLPPolicy


class TaskMixture(gym.Wrapper):
    """Draws a new task from the env's distribution at every reset (seeded, no globals).

    ``seed``: an int or a sequence of ints (e.g. ``[seed, rank]``: one independent task
    stream per env of a vector env)."""

    def __init__(self, env: gym.Env, seed: int | Sequence[int]) -> None:
        super().__init__(env)
        if not isinstance(env.unwrapped, MetaEnv):
            raise TypeError(f"{type(env.unwrapped).__name__} does not follow the task protocol")
        self._task_rng = np.random.default_rng(list(seed) if isinstance(seed, Sequence)
                                               else seed)

    def reset(self, **kwargs: Any):  # type: ignore[override]
        meta: MetaEnv = self.env.unwrapped  # type: ignore[assignment]
        meta.set_task(meta.sample_tasks(1, self._task_rng)[0])
        return self.env.reset(**kwargs)


def ppo_to_policy(model: Any, activation: str) -> GaussianMLPPolicy:
    """Copy an SB3 PPO ``MlpPolicy`` actor into a :class:`GaussianMLPPolicy`."""
    sb3 = model.policy
    hidden = [m for m in sb3.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
    obs_dim = hidden[0].in_features
    act_dim = sb3.action_net.out_features
    policy = GaussianMLPPolicy(obs_dim, act_dim, [m.out_features for m in hidden], activation)
    layers = [*hidden, sb3.action_net]
    with torch.no_grad():
        for ours, theirs in zip(cast(Iterable[nn.Linear], policy.layers), layers, strict=True):
            ours.weight.copy_(theirs.weight)
            ours.bias.copy_(theirs.bias)
        policy.log_std.copy_(sb3.log_std)
    return policy


def check_ppo_dependencies(progress: bool) -> None:
    """Raise a clear error, before any run folder is made, if PPO cannot run: it needs
    stable-baselines3, and its progress bar also needs tqdm and rich."""
    from metarl.errors import MetaRLError

    needed = ["stable_baselines3", *(("tqdm", "rich") if progress else ())]
    missing = []
    for name in needed:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MetaRLError(f"PPO needs {', '.join(missing)} (not installed here); install the "
                          "project's dependencies with `pip install -e .`"
                          + (" (or pass --no-progress)" if missing == ["rich"] else ""))


def task_mixture_envs(env_id: str, *, oracle: bool, seed: int, n_envs: int) -> Any:
    """PPO's vector env: ``n_envs`` copies of ``env_id``, each drawing its own stream of tasks
    (task seed ``[seed, rank]``; one shared stream would run every copy through the same tasks
    in lock-step and cut the tasks a PPO batch sees ``n_envs``-fold), each episode's return
    recorded by SB3's ``Monitor``, the envs' own randomness seeded ``seed + rank``."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    import metarl.envs  # noqa: F401  (registers the ids)

    def make(rank: int) -> gym.Env:
        return Monitor(TaskMixture(gym.make(env_id, oracle=oracle), [seed, rank]))

    vec = DummyVecEnv([functools.partial(make, rank) for rank in range(n_envs)])
    vec.seed(seed)
    return vec


def train_ppo(
    env_id: str,
    *,
    oracle: bool,
    timesteps: int,
    seed: int,
    hidden_sizes: tuple[int, ...] = (100, 100),
    activation: str = "relu",
    n_envs: int = 8,
    progress: bool = False,
) -> tuple[GaussianMLPPolicy, dict[str, float]]:
    """Train PPO on the task mixture of ``env_id``; return our policy and PPO's stats."""
    from stable_baselines3 import PPO

    vec = task_mixture_envs(env_id, oracle=oracle, seed=seed, n_envs=n_envs)
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    model = PPO("MlpPolicy", vec, seed=seed, verbose=0, device="cpu",
                policy_kwargs={"net_arch": {"pi": list(hidden_sizes), "vf": list(hidden_sizes)},
                               "activation_fn": act, "log_std_init": 0.0})
    model.learn(total_timesteps=timesteps, progress_bar=progress)
    rewards = [ep["r"] for ep in model.ep_info_buffer] if model.ep_info_buffer else [np.nan]
    vec.close()
    return ppo_to_policy(model, activation), {"ppo_timesteps": float(model.num_timesteps),
                                              "ppo_recent_return": float(np.mean(rewards))}

"""The PPO baselines' plumbing: one task stream per env, and an exact weight mapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarl.rl.pretrain import ppo_to_policy, task_mixture_envs


def _tasks(vec) -> list[np.ndarray]:
    return [env.unwrapped.get_task().to_array() for env in vec.envs]


def test_each_ppo_env_draws_its_own_tasks():
    """A shared task stream ran every copy through the same tasks in lock-step."""
    vec = task_mixture_envs("metarl/HalfCheetahVel-v1", oracle=False, seed=3, n_envs=3)
    vec.reset()
    first = _tasks(vec)
    assert len({float(t[0]) for t in first}) == 3
    again = task_mixture_envs("metarl/HalfCheetahVel-v1", oracle=False, seed=3, n_envs=3)
    again.reset()
    assert all(np.array_equal(a, b) for a, b in zip(first, _tasks(again)))  # seeded
    other = task_mixture_envs("metarl/HalfCheetahVel-v1", oracle=False, seed=4, n_envs=3)
    other.reset()
    assert not any(np.array_equal(a, b) for a, b in zip(first, _tasks(other)))
    for v in (vec, again, other):
        v.close()


@pytest.mark.parametrize(("oracle", "activation"), [(False, "relu"), (True, "tanh")])
def test_the_mapped_policy_is_ppos_actor(oracle, activation):
    """Our policy built from PPO's weights gives PPO's action distribution (mean, std and the
    log-probability summed over action dimensions), observations taken from the env."""
    from stable_baselines3 import PPO
    from torch import nn

    vec = task_mixture_envs("metarl/AntDir-v1", oracle=oracle, seed=0, n_envs=1)
    model = PPO("MlpPolicy", vec, seed=0, device="cpu", n_steps=64, batch_size=64,
                policy_kwargs={"net_arch": {"pi": [16, 8], "vf": [16, 8]},
                               "activation_fn": {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]})
    with torch.no_grad():
        model.policy.log_std.copy_(torch.linspace(-1.0, 0.5, model.policy.log_std.numel()))
    obs = torch.as_tensor(np.stack([vec.reset()[0] for _ in range(5)]), dtype=torch.float32)
    ours = ppo_to_policy(model, activation)
    with torch.no_grad():
        theirs = model.policy.get_distribution(obs).distribution
        mine = ours(obs)
        actions = theirs.sample()
        params = dict(ours.named_parameters())
        torch.testing.assert_close(mine.mean, theirs.mean)
        torch.testing.assert_close(torch.exp(mine.log_std).expand_as(theirs.stddev),
                                   theirs.stddev)
        torch.testing.assert_close(ours.log_prob(params, obs, actions),
                                   theirs.log_prob(actions).sum(-1), rtol=1e-5, atol=1e-5)
    vec.close()

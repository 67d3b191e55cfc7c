"""The batched multi-task sampler against plain single-env Gymnasium rollouts."""

from __future__ import annotations

import importlib.util
import math
from typing import Any, cast, get_args

import gymnasium as gym
import numpy as np
import pytest
import torch

import metarl.envs  # noqa: F401  (registers the envs)
from metarl.core.functional import params_of, stack
from metarl.envs import Goal2D
from metarl.envs.physics import Backend
from metarl.errors import MetaRLError
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.sampler import Episodes, MultiTaskSampler, budget_prefix


def make_sampler(env_id, episodes=2, **kwargs) -> tuple[MultiTaskSampler, GaussianMLPPolicy]:
    sampler = MultiTaskSampler(env_id, episodes, num_threads=2, **kwargs)
    env = sampler.env
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(env.observation_space.shape[0], env.action_space.shape[0], (16, 16))
    return sampler, policy


def replay_in_gymnasium(env_id, episodes: Episodes, tasks, horizon, env_kwargs=None,
                        tolerance=0.0):
    """Re-run every episode of ``episodes.table`` in a plain Gymnasium env from its seed with
    its clipped actions, and check the rows' bookkeeping (mask, dones, timesteps) on the way."""
    env = gym.make(env_id, **(env_kwargs or {}))
    box = cast(gym.spaces.Box, env.action_space)
    low, high = box.low.astype(np.float64), box.high.astype(np.float64)
    names = list(episodes.reward_terms)
    covered = torch.zeros_like(episodes.mask, dtype=torch.bool)
    table = episodes.table
    for n in range(len(table.task)):
        i, j, start = int(table.task[n]), int(table.slot[n]), int(table.start[n])
        length = int(table.length[n])
        cast(Any, env.unwrapped).set_task(tasks[i])  # a metarl env
        obs, _ = env.reset(seed=int(table.seed[n]))
        total = 0.0
        for k in range(length):
            t = start + k
            assert not covered[i, j, t], "two episodes claim one step"
            covered[i, j, t] = True
            assert episodes.mask[i, j, t] == 1 and episodes.timesteps[i, j, t] == k
            np.testing.assert_allclose(
                episodes.observations[i, j, t].numpy(),
                obs.astype(np.float32),
                rtol=tolerance,
                atol=tolerance,
            )
            action = np.clip(episodes.actions[i, j, t].numpy().astype(np.float64), low, high)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(np.float32(reward))
            assert episodes.rewards[i, j, t].item() == pytest.approx(
                np.float32(reward), rel=tolerance, abs=tolerance
            )
            for name in names:
                assert episodes.reward_terms[name][i, j, t].item() == pytest.approx(
                    np.float32(info[name]), rel=tolerance, abs=tolerance
                )
            assert bool(episodes.terminated[i, j, t]) == terminated
            assert bool(episodes.dones[i, j, t]) == (k == length - 1)
            if terminated:
                assert k == length - 1
        assert bool(table.terminated[n]) == bool(episodes.terminated[i, j, start + length - 1])
        if not table.terminated[n]:
            assert length == horizon, "an episode that did not terminate runs to the horizon"
        assert table.returns[n].item() == pytest.approx(total, rel=1e-5, abs=1e-4)
    # every valid step belongs to exactly one episode; padding is zero
    assert torch.equal(covered, episodes.mask.bool())
    dead = ~covered
    for tensor in (episodes.rewards, episodes.log_probs, *episodes.reward_terms.values()):
        assert not tensor[dead].any()
    assert not episodes.observations[dead].any() and not episodes.actions[dead].any()
    assert not episodes.dones[dead].any() and not episodes.terminated[dead].any()


# --- equality with Gymnasium ------------------------------------------------------------------
@pytest.mark.parametrize(
    "env_id, horizon",
    [
        ("metarl/HalfCheetahVel-v0", 60),
        ("metarl/HalfCheetahDir-v0", 60),
        ("metarl/HalfCheetahVel-v1", 60),
        ("metarl/AntVel-v0", 120),
        ("metarl/AntVel-v1", 120),
        ("metarl/AntDir-v0", 60),
        ("metarl/AntPos-v0", 60),
    ],
)
def test_sampler_equals_gymnasium_rollout(env_id, horizon):
    """With the ``threads`` backend every episode is bit-identical to Gymnasium's."""
    sampler, policy = make_sampler(env_id, horizon=horizon, backend="threads")
    rng = np.random.default_rng(1)
    tasks = sampler.env.sample_tasks(3, rng)
    episodes = sampler.sample(tasks, policy, params_of(policy), rng)
    replay_in_gymnasium(env_id, episodes, tasks, horizon)
    sampler.close()


def test_ant_episodes_terminate_and_are_masked():
    sampler, policy = make_sampler("metarl/AntVel-v0", episodes=4, backend="threads")
    rng = np.random.default_rng(0)
    tasks = sampler.env.sample_tasks(2, rng)
    episodes = sampler.sample(tasks, policy, params_of(policy), rng)
    assert (episodes.table.length < 200).any(), "a random Ant policy should fall over sometimes"
    check_one_episode_per_row(episodes)
    sampler.close()


BACKENDS = get_args(Backend)


def _needs_threads(env_id: str, backend: str) -> bool:
    """Whether ``backend`` cannot step ``env_id``: ``"batch"`` returns only the state (the Ant
    needs contact forces and body positions) and needs ``mujoco.batch`` (mujoco >= 3.17)."""
    if backend != "batch" or "Navigation" in env_id:
        return False
    return "Ant" in env_id or importlib.util.find_spec("mujoco.batch") is None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("env_id", list(metarl.envs.ENV_IDS))
def test_every_backend_replays_in_gym_make_bit_for_bit(env_id, backend):
    """Every episode the sampler returns, on every backend, is what the env ``gym.make`` gives
    does from the episode's seed with its clipped actions: observations, rewards, reward terms
    and terminations equal to the last bit (short episodes; three tasks, restarts of the
    batched state included through the pipeline's groups)."""
    if _needs_threads(env_id, backend):
        with pytest.raises(MetaRLError, match="backend='threads'"):
            make_sampler(env_id, backend=backend)
        return
    horizon = 40
    sampler, policy = make_sampler(env_id, episodes=3, horizon=horizon, backend=backend,
                                   pipeline=2)
    rng = np.random.default_rng(4)
    tasks = sampler.env.sample_tasks(3, rng)
    episodes = sampler.sample(tasks, policy, params_of(policy), rng)
    replay_in_gymnasium(env_id, episodes, tasks, horizon)
    sampler.close()


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahVel-v0", "metarl/HalfCheetahVel-v1"])
def test_default_backend_replays_whole_half_cheetah_episodes_bit_for_bit(env_id):
    """Issue 34's case: 4 velocities × 5 episodes × 200 steps of a random policy on the default
    backend. ``mujoco.rollout``, which restarted the solver's warm start every step, made 10 of
    these 20 episodes differ from the env's (2 beyond float tolerance); the chaotic dynamics
    need whole episodes to show it."""
    sampler, policy = make_sampler(env_id, episodes=5)
    rng = np.random.default_rng(0)
    tasks = sampler.env.sample_tasks(4, rng)
    episodes = sampler.sample(tasks, policy, params_of(policy), rng)
    assert episodes.rewards.shape == (4, 5, 200)
    replay_in_gymnasium(env_id, episodes, tasks, 200)
    sampler.close()


def test_navigation_terminations_are_masked_like_gymnasium():
    kwargs = {"goal_tolerance": 0.08}
    sampler, policy = make_sampler("metarl/Navigation2D-v0", episodes=8, env_kwargs=kwargs)
    tasks = [Goal2D(0.1, 0.1), Goal2D(-0.1, 0.0), Goal2D(0.4, -0.4)]
    episodes = sampler.sample(tasks, policy, params_of(policy), np.random.default_rng(3))
    lengths = episodes.table.length
    assert (lengths < 100).any() and (lengths == 100).any()
    check_one_episode_per_row(episodes)
    replay_in_gymnasium("metarl/Navigation2D-v0", episodes, tasks, 100, env_kwargs=kwargs)


def test_task_reward_terms_and_terminated_fraction_match_a_loop_over_episodes():
    """Per task: each term's mean per step and the share of episodes the env ended, against
    sums over the episode table's own (start, length) spans."""
    kwargs = {"goal_tolerance": 0.08}
    sampler, policy = make_sampler("metarl/Navigation2D-v0", episodes=6, batch="steps",
                                   env_kwargs=kwargs)
    tasks = [Goal2D(0.1, 0.1), Goal2D(-0.1, 0.0), Goal2D(0.4, -0.4)]
    episodes = sampler.sample(tasks, policy, params_of(policy), np.random.default_rng(4))
    table = episodes.table
    assert table.terminated.any() and not table.terminated.all()
    terms = episodes.task_reward_terms()
    ended = episodes.task_terminated_fraction()
    for i in range(len(tasks)):
        mine = [n for n in range(len(table.task)) if int(table.task[n]) == i]
        spans = [(int(table.slot[n]), int(table.start[n]), int(table.length[n])) for n in mine]
        steps = sum(length for _, _, length in spans)
        for name, term in episodes.reward_terms.items():
            total = sum(float(term[i, j, s:s + length].double().sum()) for j, s, length in spans)
            assert terms[name][i].item() == pytest.approx(total / steps, rel=1e-6)
        assert ended[i].item() == pytest.approx(
            sum(bool(table.terminated[n]) for n in mine) / len(mine))
    # navigation's only term is the reward itself: its mean per step is the return per step
    np.testing.assert_allclose(terms["reward_distance"].numpy(),
                               (episodes.rewards.sum((1, 2)) / episodes.mask.sum((1, 2))).numpy(),
                               rtol=1e-6)


def check_one_episode_per_row(episodes: Episodes) -> None:
    """``batch="episodes"``: row (i, j) is episode i·E + j, from step 0, masked after its end."""
    T, E, H = episodes.mask.shape
    table = episodes.table
    assert len(table.task) == T * E and (table.start == 0).all()
    assert torch.equal(table.task, torch.arange(T).repeat_interleave(E))
    assert torch.equal(table.slot, torch.arange(E).repeat(T))
    lengths = table.length.view(T, E)
    assert torch.equal(episodes.mask, (torch.arange(H) < lengths[..., None]).float())
    assert torch.equal(episodes.timesteps, torch.arange(H).expand(T, E, H) * episodes.mask.long())
    ended = episodes.terminated.sum(-1)
    assert ended.max() <= 1
    assert torch.equal(ended == 1, lengths < H)
    assert torch.equal(episodes.dones.sum(-1), torch.ones(T, E, dtype=torch.int64))


# --- the step budget (batch="steps") ----------------------------------------------------------
@pytest.mark.parametrize(
    "env_id, kwargs, episodes",
    [("metarl/Navigation2D-v0", {"env_kwargs": {"goal_tolerance": 0.08}}, 6),
     ("metarl/AntVel-v0", {"backend": "threads", "horizon": 40}, 3)],
)
def test_step_budget_restarts_episodes_like_gymnasium(env_id, kwargs, episodes):
    """Episodes that end early are followed by new ones until the task has taken E·H steps;
    the batch keeps the whole ones that started first, up to the budget; each replays in
    Gymnasium."""
    sampler, policy = make_sampler(env_id, episodes=episodes, batch="steps", **kwargs)
    rng = np.random.default_rng(5)
    tasks = sampler.env.sample_tasks(3, rng)
    if env_id.startswith("metarl/Nav"):
        tasks = [Goal2D(0.1, 0.1), Goal2D(-0.15, 0.05), Goal2D(0.4, -0.4)]
    ep = sampler.sample(tasks, policy, params_of(policy), rng)
    H, E = sampler.horizon, episodes
    table = ep.table
    assert (table.start > 0).any(), "some slot should have started a second episode"
    assert ep.rewards.shape[-1] <= 2 * H
    steps = ep.mask.sum(dim=(1, 2))
    per_task = torch.bincount(table.task, weights=table.length.double(), minlength=3)
    assert torch.equal(per_task.long(), steps.long())
    # the whole episodes, in the order they started, up to the budget: less than one more
    assert (steps >= E * H).all() and (steps < E * H + H).all()
    for i in range(3):
        mine = (table.task == i).numpy()
        last = np.lexsort((table.slot.numpy()[mine], table.start.numpy()[mine]))[-1]
        assert steps[i] - table.length.numpy()[mine][last] < E * H
    # a new episode starts only while its task is under budget: at row time < H
    assert (table.start < H).all()
    # rows are filled from time 0 without gaps until their last episode ends
    for n in range(len(table.task)):
        i, j, s = int(table.task[n]), int(table.slot[n]), int(table.start[n])
        assert s == 0 or ep.dones[i, j, s - 1]
    replay_in_gymnasium(env_id, ep, tasks, H, env_kwargs=kwargs.get("env_kwargs"))
    returns = ep.task_returns()
    for i in range(3):
        torch.testing.assert_close(returns[i], table.returns[table.task == i].mean())
    sampler.close()


@pytest.mark.parametrize(
    "env_id, kwargs, episodes",
    [("metarl/Navigation2D-v0", {"env_kwargs": {"goal_tolerance": 0.08}}, 6),
     ("metarl/AntVel-v0", {"backend": "threads", "horizon": 40}, 4)],
)
@pytest.mark.parametrize("pipeline", [1, 3])
def test_stopping_dropped_episodes_changes_no_bit_of_the_batch(env_id, kwargs, episodes,
                                                               pipeline):
    """stop_dropped ends an episode once the budget is sure to drop it: fewer steps are
    simulated, and every tensor and table entry of the batch is the same as when each episode
    runs to its end (the noise of a group with no live slot is still drawn)."""
    out, simulated = {}, {}
    for stop in (False, True):
        sampler, policy = make_sampler(env_id, episodes=episodes, batch="steps",
                                       pipeline=pipeline, stop_dropped=stop, **kwargs)
        if env_id.startswith("metarl/Nav"):
            tasks = [Goal2D(0.1, 0.1), Goal2D(-0.15, 0.05), Goal2D(0.4, -0.4), Goal2D(0, 0.2),
                     Goal2D(-0.05, -0.1)]
        else:
            tasks = sampler.env.sample_tasks(5, np.random.default_rng(0))
        params = params_of(policy)
        params["log_std"] = torch.full_like(params["log_std"], 0.7)  # Ant: fall over early
        out[stop] = sampler.sample(tasks, policy, params, np.random.default_rng(8))
        simulated[stop] = sampler.last_steps_simulated
        sampler.close()
    a, b = out[False], out[True]
    assert (a.table.start > 0).any(), "some slot should have started a second episode"
    for name in ("observations", "actions", "rewards", "log_probs", "mask", "terminated",
                 "dones", "timesteps"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in a.reward_terms:
        assert torch.equal(a.reward_terms[name], b.reward_terms[name]), name
    for x, y in zip(a.table, b.table, strict=True):
        assert torch.equal(x, y)
    kept = int(a.mask.sum())
    assert kept < simulated[True] < simulated[False], (kept, simulated)


def test_budget_prefix_keeps_each_episode_whose_predecessors_hold_fewer_steps():
    """Against a direct sum over each episode's predecessors (started earlier, or at the same
    time in a lower slot) of the same task."""
    rng = np.random.default_rng(3)
    n = 400
    task = rng.integers(0, 4, n)
    slot = rng.integers(0, 5, n)
    start = rng.integers(0, 30, n)
    length = rng.integers(1, 20, n)
    keep = budget_prefix(task, slot, start, length, budget=300)
    for e in range(n):
        before = sum(int(length[u]) for u in range(n) if task[u] == task[e]
                     and (start[u], slot[u], u) < (start[e], slot[e], e))
        assert keep[e] == (before < 300), e
    assert 0 < keep.sum() < n


def test_step_budget_equals_episodes_when_nothing_ends_early():
    """HalfCheetah never terminates: both ways of counting the batch give the same rollouts."""
    tasks = [{"velocity": 0.5}, {"velocity": 1.5}]
    out = {}
    for batch in ("episodes", "steps"):
        sampler, policy = make_sampler("metarl/HalfCheetahVel-v0", episodes=3, horizon=12,
                                       batch=batch)
        out[batch] = sampler.sample(tasks, policy, params_of(policy), np.random.default_rng(2))
        sampler.close()
    a, b = out["episodes"], out["steps"]
    for name in ("observations", "actions", "rewards", "log_probs", "mask", "dones", "timesteps"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for x, y in zip(a.table, b.table, strict=True):
        assert torch.equal(x, y)


def test_clipped_fraction_counts_valid_steps_outside_the_box():
    """Against a numpy count over the valid steps (navigation pads after early goals), and the
    closed form for a mean-0, std-1 Gaussian in the ±1 box: P(|a| > 1) = erfc(1/√2)."""
    sampler, policy = make_sampler("metarl/Navigation2D-v0", episodes=4, batch="steps")
    n = len(policy.layers) - 1
    tasks = sampler.env.sample_tasks(10, np.random.default_rng(0))
    for bias, expected in ((0.0, math.erfc(1 / math.sqrt(2))), (3.0, None)):
        params = {k: v.detach().clone() for k, v in params_of(policy).items()}
        params[f"layers.{n}.weight"].zero_()
        params[f"layers.{n}.bias"].fill_(bias)
        params["log_std"].zero_()
        ep = sampler.sample(tasks, policy, params, np.random.default_rng(1))
        actions, mask = ep.actions.numpy(), ep.mask.numpy().astype(bool)
        valid = actions[mask]  # [steps, 2]
        reference = float((np.abs(valid) > 1.0).mean())
        assert sampler.clipped_fraction(ep) == pytest.approx(reference, abs=1e-6)
        if expected is None:  # mean 3: almost every x and y component lies beyond the edge
            assert reference > 0.95
        else:
            assert reference == pytest.approx(expected, abs=0.03)
            assert not mask.all(), "the zero-valued padding must be there, and not be counted"
    sampler.close()


# --- shapes, parameters, reproducibility ------------------------------------------------------
def test_episode_shapes_and_types():
    sampler, policy = make_sampler("metarl/HalfCheetahDir-v0", episodes=3, horizon=7)
    rng = np.random.default_rng(0)
    tasks = sampler.env.sample_tasks(4, rng)
    ep = sampler.sample(tasks, policy, params_of(policy), rng)
    assert ep.observations.shape == (4, 3, 7, 17) and ep.actions.shape == (4, 3, 7, 6)
    for t in (ep.rewards, ep.log_probs, ep.mask, ep.terminated, ep.dones, ep.timesteps):
        assert t.shape == (4, 3, 7)
    assert ep.observations.dtype == ep.rewards.dtype == ep.log_probs.dtype == torch.float32
    assert ep.terminated.dtype == ep.dones.dtype == torch.bool
    assert ep.timesteps.dtype == ep.table.length.dtype == ep.table.seed.dtype == torch.int64
    assert torch.equal(ep.task_index, torch.arange(4)[:, None].expand(4, 3))
    assert set(ep.reward_terms) == {"reward_forward", "reward_ctrl"}
    torch.testing.assert_close(sum(ep.reward_terms.values()), ep.rewards)
    assert ep.table.returns.shape == (12,) and ep.task_returns().shape == (4,)
    torch.testing.assert_close(ep.table.returns, ep.rewards.sum(-1).flatten())
    assert all(t.device.type == "cpu" for t in (ep.observations, ep.rewards, ep.table.seed))
    # the log-probs are the behaviour policy's, summed over action dimensions
    torch.testing.assert_close(
        policy.log_prob(params_of(policy), ep.observations, ep.actions).detach(), ep.log_probs
    )


def test_same_rng_same_episodes_and_torch_threads_restored():
    sampler, policy = make_sampler("metarl/HalfCheetahVel-v0", horizon=10)
    threads = torch.get_num_threads()
    tasks = sampler.env.sample_tasks(3, np.random.default_rng(0))
    a = sampler.sample(tasks, policy, params_of(policy), np.random.default_rng(9))
    b = sampler.sample(tasks, policy, params_of(policy), np.random.default_rng(9))
    c = sampler.sample(tasks, policy, params_of(policy), np.random.default_rng(10))
    assert torch.get_num_threads() == threads
    for x, y in zip(a, b, strict=True):
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y)
    for x, y in zip(a.table, b.table, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a.actions, c.actions) and not torch.equal(a.table.seed, c.table.seed)


def test_stacked_params_act_per_task():
    """Task i's rows use params[i]: here only task 1 gets a large output bias."""
    sampler, policy = make_sampler("metarl/Navigation2D-v0", episodes=5, horizon=20)
    tasks = sampler.env.sample_tasks(3, np.random.default_rng(0))
    base = {k: v.detach() for k, v in params_of(policy).items()}
    per_task = [dict(base) for _ in tasks]
    last = f"layers.{len(policy.layers) - 1}.bias"
    per_task[1][last] = base[last] + 50.0
    ep = sampler.sample(tasks, policy, stack(per_task), np.random.default_rng(4))
    means = ep.actions.mean(dim=(1, 2, 3))
    assert means[1] > 45 and abs(means[0]) < 5 and abs(means[2]) < 5
    # identical stacked copies give what the shared set gives
    same = sampler.sample(tasks, policy, stack([base] * 3), np.random.default_rng(4))
    shared = sampler.sample(tasks, policy, base, np.random.default_rng(4))
    torch.testing.assert_close(same.actions, shared.actions)
    torch.testing.assert_close(same.rewards, shared.rewards)


@pytest.mark.parametrize("pipeline", [1, 3])
def test_pipeline_groups_cover_all_tasks(pipeline):
    sampler, policy = make_sampler("metarl/HalfCheetahVel-v0", horizon=5, pipeline=pipeline)
    tasks = sampler.env.sample_tasks(5, np.random.default_rng(0))
    ep = sampler.sample(tasks, policy, params_of(policy), np.random.default_rng(1))
    assert len(sampler._groups[5]) == pipeline
    assert (ep.mask == 1).all() and (ep.observations.abs().sum(-1) > 0).all()
    replay_in_gymnasium("metarl/HalfCheetahVel-v0", ep, tasks, 5, tolerance=1e-5)


def test_oracle_env_and_default_horizon():
    sampler, policy = make_sampler("metarl/Navigation2D-v0", env_kwargs={"oracle": True})
    assert sampler.horizon == 100 and policy.obs_dim == 4
    tasks = sampler.env.sample_tasks(2, np.random.default_rng(0))
    ep = sampler.sample(tasks, policy, params_of(policy), np.random.default_rng(0))
    goals = torch.from_numpy(np.stack([t.to_array() for t in tasks])).float()
    valid = ep.mask.bool()
    torch.testing.assert_close(
        ep.observations[..., 2:][valid], goals[:, None, None].expand(2, 2, 100, 2)[valid]
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_device():
    sampler, policy = make_sampler("metarl/HalfCheetahVel-v0", horizon=5, device="cuda")
    policy = policy.cuda()
    tasks = sampler.env.sample_tasks(2, np.random.default_rng(0))
    ep = sampler.sample(tasks, policy, params_of(policy), np.random.default_rng(0))
    assert all(t.device.type == "cuda" for t in ep if isinstance(t, torch.Tensor))
    assert all(t.device.type == "cuda" for t in ep.table)

    def cpu(x):
        if isinstance(x, torch.Tensor):
            return x.cpu()
        if isinstance(x, dict):
            return {k: v.cpu() for k, v in x.items()}
        return type(x)(*(v.cpu() for v in x))

    replay_in_gymnasium("metarl/HalfCheetahVel-v0", Episodes(*(cpu(t) for t in ep)), tasks, 5,
                        tolerance=1e-5)


# --- errors -----------------------------------------------------------------------------------
def test_wrong_parameter_stacks_are_rejected():
    sampler, policy = make_sampler("metarl/HalfCheetahVel-v0", horizon=3)
    rng = np.random.default_rng(0)
    tasks = sampler.env.sample_tasks(3, rng)
    params = params_of(policy)
    with pytest.raises(MetaRLError, match=r"'log_std' has shape \(2, 6\).*\(3, 6\) \(a stack"):
        sampler.sample(tasks, policy, stack([params] * 2), rng)
    mixed = {**stack([params] * 3), "log_std": params["log_std"]}
    with pytest.raises(MetaRLError, match="mix stacked and unstacked"):
        sampler.sample(tasks, policy, mixed, rng)
    with pytest.raises(MetaRLError, match="expects"):
        sampler.sample(tasks, policy, {"layers.0.weight": params["layers.0.weight"]}, rng)
    other = GaussianMLPPolicy(19, 6)
    with pytest.raises(MetaRLError, match="maps 19 observations.*17 observations"):
        sampler.sample(tasks, other, params_of(other), rng)


def test_bad_arguments_are_rejected():
    sampler, policy = make_sampler("metarl/AntDir-v0", horizon=3)
    params = params_of(policy)
    with pytest.raises(MetaRLError, match="numpy.random.Generator"):
        sampler.sample([{"direction": 1.0}], policy, params, 0)
    with pytest.raises(MetaRLError, match="at least one task"):
        sampler.sample([], policy, params, np.random.default_rng())
    with pytest.raises(MetaRLError, match=r"unknown field\(s\) \['dir'\]"):
        sampler.sample([{"dir": 1.0}], policy, params, np.random.default_rng())
    with pytest.raises(MetaRLError, match="cannot make env"):
        MultiTaskSampler("metarl/NoSuchEnv-v0", 2)
    with pytest.raises(MetaRLError, match="episodes_per_task"):
        MultiTaskSampler("metarl/AntDir-v0", 0)
    with pytest.raises(MetaRLError, match="batch must be 'episodes' or 'steps'"):
        MultiTaskSampler("metarl/AntDir-v0", 2, batch="trajectories")
    with pytest.raises(MetaRLError, match="task protocol"):
        MultiTaskSampler(gym.make("Pendulum-v1"), 2)

"""Returns, GAE, the linear baseline and the Gaussian policy's densities against independent
computations: plain per-episode Python loops, numpy least squares, torch.distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarl.rl.advantages import to_pg_batch
from metarl.rl.baselines import fit_linear_baseline
from metarl.rl.policies import GaussianDist, gaussian_entropy, gaussian_kl, gaussian_log_prob
from metarl.rl.returns import discounted_returns, gae, normalize
from metarl.rl.sampler import Episodes, EpisodeTable

GAMMA, LAM = 0.9, 0.8


def random_rows(seed: int, tasks: int = 3, slots: int = 4, length: int = 12):
    """Rows of several episodes back to back (random lengths), padded at the end of each row.

    Returns the step tensors and the list of episodes as (task, slot, start, length).
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros((tasks, slots, length))
    dones = np.zeros((tasks, slots, length), bool)
    timesteps = np.zeros((tasks, slots, length), np.int64)
    episodes = []
    for i in range(tasks):
        for j in range(slots):
            t = 0
            end = int(rng.integers(length // 2, length + 1))
            while t < end:
                n = int(rng.integers(1, end - t + 1))
                mask[i, j, t : t + n] = 1
                dones[i, j, t + n - 1] = True
                timesteps[i, j, t : t + n] = np.arange(n)
                episodes.append((i, j, t, n))
                t += n
    rewards = rng.normal(size=mask.shape) * mask
    values = rng.normal(size=mask.shape) * mask
    obs = rng.normal(size=(*mask.shape, 2)) * mask[..., None]
    as_t = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    return (as_t(rewards), as_t(values), as_t(mask), torch.as_tensor(dones),
            torch.as_tensor(timesteps), as_t(obs), episodes)


def reference_episode(rewards: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Discounted returns and GAE of ONE episode, by the textbook loops."""
    n = len(rewards)
    ret = np.array([sum(GAMMA**k * rewards[t + k] for k in range(n - t)) for t in range(n)])
    v_next = np.append(values[1:], 0.0)
    delta = rewards + GAMMA * v_next - values
    adv = np.array([sum((GAMMA * LAM) ** k * delta[t + k] for k in range(n - t)) for t in range(n)])
    return ret, adv


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_returns_and_gae_cut_at_episode_ends(seed):
    rewards, values, mask, dones, _, _, episodes = random_rows(seed)
    ret = discounted_returns(rewards, mask, GAMMA, dones)
    adv = gae(rewards, values, mask, GAMMA, LAM, dones)
    for i, j, s, n in episodes:
        want_ret, want_adv = reference_episode(rewards[i, j, s : s + n].numpy(),
                                               values[i, j, s : s + n].numpy())
        np.testing.assert_allclose(ret[i, j, s : s + n].numpy(), want_ret, rtol=1e-12)
        np.testing.assert_allclose(adv[i, j, s : s + n].numpy(), want_adv, rtol=1e-10,
                                   atol=1e-12)
    assert not ret[mask == 0].any() and not adv[mask == 0].any()


def test_one_episode_per_row_needs_no_dones():
    rewards, values, mask, dones, *_ = random_rows(3)
    # keep only the first episode of each row
    first_end = dones.long().argmax(-1, keepdim=True)
    keep = (torch.arange(mask.shape[-1]) <= first_end).double() * mask
    r, v = rewards * keep, values * keep
    torch.testing.assert_close(discounted_returns(r, keep, GAMMA),
                               discounted_returns(r, keep, GAMMA, dones & keep.bool()))
    torch.testing.assert_close(gae(r, v, keep, GAMMA, 1.0),
                               discounted_returns(r, keep, GAMMA) - v)


def test_normalize_per_task():
    rewards, _, mask, *_ = random_rows(4)
    out = normalize(rewards * 3 + 1, mask, dims=(-2, -1))
    for i in range(mask.shape[0]):
        valid = out[i][mask[i].bool()]
        assert abs(valid.mean().item()) < 1e-12 and abs(valid.std(unbiased=False).item() - 1) < 1e-6


def rllab_features(o: np.ndarray) -> np.ndarray:
    """rllab's baseline features of one episode's observations ``[n, obs_dim]``, in numpy."""
    o = np.clip(o, -10, 10)
    t = np.arange(len(o))[:, None] / 100.0
    return np.concatenate([o, o**2, t, t**2, t**3, np.ones_like(t)], axis=1)


def test_linear_baseline_is_per_task_least_squares_on_episode_time():
    """The fit equals numpy's least squares per task on rllab's features, with each step's
    time taken within its episode (rows hold several episodes)."""
    rewards, _, mask, dones, timesteps, obs, episodes = random_rows(5)
    returns = discounted_returns(rewards, mask, GAMMA, dones)
    fitted = fit_linear_baseline(obs, returns, mask, reg=0.0, timesteps=timesteps)
    for i in range(mask.shape[0]):
        feats, targets, where = [], [], []
        for ti, j, s, n in episodes:
            if ti != i:
                continue
            feats.append(rllab_features(obs[i, j, s : s + n].numpy()))
            targets.append(returns[i, j, s : s + n].numpy())
            where.append((j, s, n))
        x, y = np.concatenate(feats), np.concatenate(targets)
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        want = x @ coef
        got = np.concatenate([fitted[i, j, s : s + n].numpy() for j, s, n in where])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
    assert not fitted[mask == 0].any()


def _ridge_features(seed: int, tasks: int = 4, steps: int = 600):
    """Ant-like observations: real-valued columns, 0/1 columns (a clipped contact force, for
    which o = o², so the features are collinear) and all-zero ones. One episode per row."""
    rng = np.random.default_rng(seed)
    obs = np.concatenate([rng.normal(size=(tasks, 1, steps, 5)) * 3,
                          (rng.random((tasks, 1, steps, 3)) < 0.3).astype(float),
                          np.zeros((tasks, 1, steps, 4))], axis=-1)
    returns = rng.normal(size=(tasks, 1, steps)) * 10
    return torch.from_numpy(obs), torch.from_numpy(returns), torch.ones(tasks, 1, steps,
                                                                        dtype=torch.float64)


def _ridge_by_numpy(obs, returns, reg):
    """Per task: numpy's solve of the ridge normal equations on rllab's features."""
    fitted = []
    for i in range(obs.shape[0]):
        x = rllab_features(obs[i, 0].numpy())
        coef = np.linalg.solve(x.T @ x + reg * np.eye(x.shape[1]), x.T @ returns[i, 0].numpy())
        fitted.append(x @ coef)
    return np.stack(fitted)[:, None]


def test_linear_baseline_solves_collinear_features_like_numpy_with_two_threads():
    """Rank-deficient normal matrices (the Ant's), solved for the whole batch on two threads,
    where MKL's batched LU once returned zero pivots: the ridge solution of each task."""
    obs, returns, mask = _ridge_features(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fitted = fit_linear_baseline(obs, returns, mask)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(fitted.numpy(), _ridge_by_numpy(obs, returns, 1e-5),
                               rtol=1e-6, atol=1e-6)


def test_linear_baseline_retries_a_failed_factorisation_with_ten_times_the_regulariser(
        monkeypatch):
    """A task whose Cholesky factorisation fails is solved again with reg × 10 (rllab's
    escalation); the other tasks keep their first solution."""
    obs, returns, mask = _ridge_features(1)
    real = torch.linalg.cholesky_ex
    calls = []

    def failing_first_task_once(a):
        factor, info = real(a)
        calls.append(1)
        if len(calls) == 1:
            info = info.clone()
            info[0] = 3
        return factor, info

    monkeypatch.setattr(torch.linalg, "cholesky_ex", failing_first_task_once)
    fitted = fit_linear_baseline(obs, returns, mask, reg=1e-3).numpy()
    assert len(calls) == 2
    np.testing.assert_allclose(fitted[:1], _ridge_by_numpy(obs[:1], returns[:1], 1e-2),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fitted[1:], _ridge_by_numpy(obs[1:], returns[1:], 1e-3),
                               rtol=1e-6, atol=1e-6)


def test_to_pg_batch_treats_rows_of_episodes_like_one_episode_per_row():
    """Rows holding several episodes give the advantages of one episode per row."""
    rewards, _, mask, dones, timesteps, obs, episodes = random_rows(6)
    tasks = mask.shape[0]
    per_task = max(sum(1 for e in episodes if e[0] == i) for i in range(tasks))
    length = mask.shape[-1]
    packed = {k: torch.zeros(tasks, per_task, length, *extra, dtype=torch.float64)
              for k, extra in (("obs", (2,)), ("rew", ()), ("mask", ()))}
    counter = [0] * tasks
    for i, j, s, n in episodes:
        row = counter[i]
        counter[i] += 1
        packed["obs"][i, row, :n] = obs[i, j, s : s + n]
        packed["rew"][i, row, :n] = rewards[i, j, s : s + n]
        packed["mask"][i, row, :n] = 1

    def batch(o, r, m, d, ts):
        zeros = torch.zeros_like(r)
        table = EpisodeTable(*(torch.zeros(0) for _ in range(7)))
        ep = Episodes(o, torch.zeros(*r.shape, 1, dtype=r.dtype), r, zeros, m, d, d, ts,
                      torch.zeros(r.shape[:2]), {}, table)
        return to_pg_batch(ep, gamma=GAMMA, gae_lambda=LAM)

    rows = batch(obs, rewards, mask, dones, timesteps)
    pm = packed["mask"]
    p_dones = (pm.bool() & ~torch.cat([pm[..., 1:], torch.zeros_like(pm[..., :1])], -1).bool())
    p_time = torch.arange(length).expand_as(pm) * pm.long()
    one = batch(packed["obs"], packed["rew"], pm, p_dones, p_time)
    # both come out packed [tasks, 1, steps], the episodes in the same (slot, start) order
    assert rows.mask.shape[1] == 1
    for a, b in zip(rows, one, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    assert torch.equal(rows.mask.sum(-1).squeeze(1), mask.sum(dim=(1, 2)))


def test_packing_keeps_every_task_loss():
    """The per-task REINFORCE loss and its gradient are the same on the packed batch."""
    from metarl.core.functional import expand, params_of
    from metarl.rl.advantages import pack_valid_steps
    from metarl.rl.pg import PGBatch, reinforce_loss
    from metarl.rl.policies import GaussianMLPPolicy

    rewards, _, mask, _, _, obs, _ = random_rows(7)
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, (8,)).double()
    acts = torch.randn(*mask.shape, 2, dtype=torch.float64) * mask[..., None]
    batch = PGBatch(obs, acts, rewards, torch.zeros_like(rewards), mask)
    packed = pack_valid_steps(batch)
    params = expand(params_of(policy), mask.shape[0])
    a, b = reinforce_loss(policy, params, batch), reinforce_loss(policy, params, packed)
    torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(a.sum(), list(params.values()))
    gb = torch.autograd.grad(b.sum(), list(params.values()))
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y)


# --- the Gaussian policy's densities ------------------------------------------------------------
def test_gaussian_log_prob_kl_entropy_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, generator=g, dtype=torch.float64)
    log_std = torch.randn(3, generator=g, dtype=torch.float64) * 0.5
    mean2 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    log_std2 = torch.randn(3, generator=g, dtype=torch.float64) * 0.5
    actions = torch.randn(5, 3, generator=g, dtype=torch.float64)
    p = torch.distributions.Normal(mean, log_std.exp())
    q = torch.distributions.Normal(mean2, log_std2.exp())
    ours_p, ours_q = GaussianDist(mean, log_std), GaussianDist(mean2, log_std2)
    # summed over the action dimensions: the density of the joint action
    torch.testing.assert_close(gaussian_log_prob(ours_p, actions), p.log_prob(actions).sum(-1))
    torch.testing.assert_close(gaussian_kl(ours_p, ours_q),
                               torch.distributions.kl_divergence(p, q).sum(-1))
    torch.testing.assert_close(gaussian_entropy(ours_p), p.entropy().sum(-1))

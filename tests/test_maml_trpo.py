"""MAML-TRPO pieces against float64 finite differences and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metarl.core.functional import flatten, params_of, unflatten
from metarl.rl.maml_trpo import MAMLTRPO, TRPOSettings
from metarl.rl.pg import PGBatch, reinforce_loss, surrogate_loss
from metarl.rl.policies import GaussianDist, GaussianMLPPolicy
from metarl.rl.trpo import conjugate_gradient, line_search

from .conftest import finite_difference_grad

DT = torch.float64


def synthetic(n_tasks=3, episodes=4, horizon=6, obs_dim=2, act_dim=2, seed=0, batches=2):
    """A small policy and random support/query data with some early-terminated episodes
    (``batches`` batches: support, query and, beyond two, more to chain as fresh support)."""
    torch.manual_seed(seed)
    policy = GaussianMLPPolicy(obs_dim, act_dim, hidden_sizes=(8, 8), activation="tanh").to(DT)
    g = torch.Generator().manual_seed(seed)

    def batch():
        shape = (n_tasks, episodes, horizon)
        mask = torch.ones(shape, dtype=DT)
        mask[:, 0, horizon // 2:] = 0.0
        obs = torch.randn(*shape, obs_dim, generator=g, dtype=DT)
        act = torch.randn(*shape, act_dim, generator=g, dtype=DT)
        with torch.no_grad():
            logp = policy.log_prob(params_of(policy), obs, act)
        adv = torch.randn(shape, generator=g, dtype=DT) * mask
        return PGBatch(obs, act, adv, logp, mask)

    return (policy, *(batch() for _ in range(batches)))


@pytest.mark.parametrize("inner_loss", ["reinforce", "lvc"])
def test_meta_gradient_matches_finite_differences(inner_loss):
    policy, support, query = synthetic()
    learner = MAMLTRPO(policy, inner_steps=2, inner_lr=[0.3, 0.15], inner_loss=inner_loss)
    params = params_of(policy)
    loss = learner.meta_loss(params, support, query)
    analytic = flatten(torch.autograd.grad(loss, list(params.values())))

    def f(p):
        # the query log-probs of the "old" policy are constants, as in the real objective
        return learner.meta_loss(p, support, query).item()

    numeric = finite_difference_grad(f, params)
    assert torch.allclose(analytic, numeric, rtol=1e-6, atol=1e-9), (analytic - numeric).abs().max()


@pytest.mark.parametrize("fisher", ["autograd", "gauss-newton"])
def test_kl_hessian_vector_product_matches_finite_differences(fisher):
    policy, support, query = synthetic()
    learner = MAMLTRPO(policy, inner_steps=1, inner_lr=0.3, trpo=TRPOSettings(fisher=fisher))
    params = params_of(policy)
    leaves = list(params.values())
    with torch.no_grad():
        adapted0 = learner.adapt({k: v.detach() for k, v in params.items()}, support)
        old = GaussianDist(*policy.dist(adapted0, query.observations))

    def kl_grad(p):
        p = {k: v.detach().requires_grad_(True) for k, v in p.items()}
        kl = learner.kl(learner.adapt(p, support), old, query)
        return flatten(torch.autograd.grad(kl, list(p.values())))

    adapted = learner.adapt(params, support)
    kl = learner.kl(adapted, old, query)
    grad_kl = flatten(torch.autograd.grad(kl, leaves, retain_graph=True))
    v = torch.randn(grad_kl.shape, generator=torch.Generator().manual_seed(3), dtype=DT)
    hvp = learner.kl_hessian_vector(params, adapted, old, support, query)(v)
    eps = 1e-5
    flat = flatten(params).detach()
    numeric = (kl_grad(unflatten(flat + eps * v, params)) -
               kl_grad(unflatten(flat - eps * v, params))) / (2 * eps)
    assert torch.allclose(hvp, numeric, rtol=1e-6, atol=1e-9), (hvp - numeric).abs().max()
    # At θ_old the KL is minimal: zero gradient, positive semi-definite curvature.
    assert grad_kl.abs().max() < 1e-12 and v @ hvp > 0


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("mode", ["stacked", "loop"])
@pytest.mark.parametrize("steps", [1, 2])
def test_gauss_newton_product_equals_autograd_hessian(first_order, mode, steps):
    """At the current θ the KL's gradient vanishes, so Jᵀ H' J v is the exact Hessian
    (one inner step: J from reverse passes, J symmetric; more: forward mode)."""
    policy, support, query = synthetic(seed=2)
    learner = MAMLTRPO(policy, inner_steps=steps, inner_lr=[0.3, 0.1][:steps],
                       first_order=first_order, mode=mode)
    params = params_of(policy)
    adapted = learner.adapt(params, support)
    with torch.no_grad():
        old = GaussianDist(*policy.dist({k: v.detach() for k, v in adapted.items()},
                                        query.observations))
    products = {}
    for fisher in ("autograd", "gauss-newton"):
        learner.trpo.fisher = fisher
        hvp = learner.kl_hessian_vector(params, adapted, old, support, query)
        v = torch.randn(flatten(params).shape, generator=torch.Generator().manual_seed(5),
                        dtype=DT)
        products[fisher] = hvp(v)
    assert torch.allclose(products["autograd"], products["gauss-newton"], rtol=1e-10,
                          atol=1e-13)


@pytest.mark.parametrize("first_order", [False, True])
def test_batching_modes_agree(first_order):
    results = {}
    for mode in ("stacked", "vmap", "loop"):
        policy, support, query = synthetic(seed=1)
        learner = MAMLTRPO(policy, inner_steps=2, inner_lr=0.2, mode=mode, first_order=first_order)
        params = params_of(policy)
        adapted = learner.adapt(params, support)
        loss = learner.surrogate(adapted, query)
        results[mode] = (flatten(adapted).detach(),
                         flatten(torch.autograd.grad(loss, list(params.values()))))
    for mode in ("vmap", "loop"):
        for a, b in zip(results["stacked"], results[mode]):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-14), mode


@pytest.mark.parametrize("mode", ["stacked", "vmap", "loop"])
def test_fresh_batches_chain_one_step_per_batch(mode):
    """Fresh support batches: step k on batch k, with its own step size, for every task;
    against single-batch steps taken one after another per task."""
    policy, b0, b1, query = synthetic(seed=4, batches=3)
    learner = MAMLTRPO(policy, inner_steps=2, inner_lr=[0.3, 0.1], mode=mode)
    params = params_of(policy)
    adapted = learner.adapt(params, [b0, b1])
    one = MAMLTRPO(policy, inner_steps=1, inner_lr=0.3)
    for i in range(3):
        task = [PGBatch(*(t[i:i + 1] for t in b)) for b in (b0, b1)]
        p = {k: v[0] for k, v in one.adapt(params, task[0]).items()}
        one.inner_lr = 0.1
        p = {k: v[0] for k, v in one.adapt(p, task[1]).items()}
        one.inner_lr = 0.3
        for k in params:
            assert torch.allclose(adapted[k][i], p[k], rtol=1e-12, atol=1e-14), (mode, k)
    # the first k batches give the policy the next one is sampled with
    after_one = learner.adapted_for_sampling([b0])
    direct = MAMLTRPO(policy, inner_steps=1, inner_lr=0.3, mode=mode).adapted_for_sampling(b0)
    assert all(torch.equal(after_one[k], direct[k]) for k in params)
    with pytest.raises(ValueError, match="3 support batches for 2 inner steps"):
        learner.adapt(params, [b0, b1, query])


def test_fresh_meta_gradient_and_kl_curvature_match_finite_differences():
    """Through two steps on two batches: the meta-gradient against float64 central
    differences, and the Gauss-Newton KL product against double back-propagation."""
    policy, b0, b1, query = synthetic(seed=6, batches=3)
    learner = MAMLTRPO(policy, inner_steps=2, inner_lr=[0.3, 0.15])
    params = params_of(policy)
    loss = learner.meta_loss(params, [b0, b1], query)
    analytic = flatten(torch.autograd.grad(loss, list(params.values())))
    numeric = finite_difference_grad(lambda p: learner.meta_loss(p, [b0, b1], query).item(),
                                     params)
    assert torch.allclose(analytic, numeric, rtol=1e-6, atol=1e-9), (analytic - numeric).abs().max()
    # the second batch matters: sharing the first would give another gradient
    shared = flatten(torch.autograd.grad(learner.meta_loss(params, b0, query),
                                         list(params.values())))
    assert (shared - analytic).abs().max() > 1e-3
    adapted = learner.adapt(params, [b0, b1])
    old = learner.frozen_dist(adapted, query)
    v = torch.randn(analytic.shape, generator=torch.Generator().manual_seed(8), dtype=DT)
    products = {}
    for fisher in ("autograd", "gauss-newton"):
        learner.trpo.fisher = fisher
        products[fisher] = learner.kl_hessian_vector(params, adapted, old, [b0, b1], query)(v)
    assert torch.allclose(products["autograd"], products["gauss-newton"], rtol=1e-10,
                          atol=1e-13)
    stats = learner.step([b0, b1], query)
    assert stats["accepted"] == 1.0 and stats["surrogate_after"] < stats["surrogate_before"]
    assert stats["kl"] <= learner.trpo.max_kl


def test_inner_step_is_reinforce_gradient_per_task():
    """θ'_i = θ − α ∇ mean_t(−log π A) computed task by task with torch.autograd."""
    policy, support, _ = synthetic()
    learner = MAMLTRPO(policy, inner_steps=1, inner_lr=0.5)
    params = params_of(policy)
    adapted = learner.adapt(params, support)
    for i in range(3):
        task = PGBatch(*(t[i] for t in support))
        loss = reinforce_loss(policy, params, task)
        grads = torch.autograd.grad(loss, list(params.values()))
        for (k, p), gk in zip(params.items(), grads):
            assert torch.allclose(adapted[k][i], p - 0.5 * gk, rtol=1e-12, atol=1e-14)


def test_conjugate_gradient_solves_spd_system():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=DT)
    a = m @ m.T + 6 * torch.eye(6, dtype=DT)
    b = torch.randn(6, generator=g, dtype=DT)
    x, ax = conjugate_gradient(lambda v: a @ v, b, iterations=20)
    assert torch.allclose(x, torch.linalg.solve(a, b), atol=1e-10)
    assert torch.allclose(ax, a @ x, atol=1e-10)


def test_line_search_backtracks_and_rejects_nonfinite():
    calls = []

    def evaluate(frac):
        calls.append(frac)
        if frac == 1.0:
            return math.nan, 0.0
        return (1.0 - frac, frac / 10) if frac < 0.7 else (2.0, 0.0)

    res = line_search(evaluate, objective_before=1.0, max_kl=0.07, ratio=0.8, max_steps=15)
    assert res.accepted and res.step_fraction == pytest.approx(0.8**2) and res.nonfinite == 1
    none = line_search(lambda f: (5.0, 0.0), 1.0, 0.01)
    assert not none.accepted and none.steps_tried == 15 and none.objective == 1.0


def test_trpo_step_decreases_surrogate_within_trust_region():
    policy, support, query = synthetic(n_tasks=2, episodes=8, horizon=10)
    learner = MAMLTRPO(policy, inner_steps=1, inner_lr=0.1, trpo=TRPOSettings(max_kl=0.01))
    before = {k: v.detach().clone() for k, v in params_of(policy).items()}
    stats = learner.step(support, query)
    assert stats["accepted"] == 1.0
    assert stats["surrogate_after"] < stats["surrogate_before"]
    assert 0 < stats["kl"] <= 0.01
    # The reported KL is that of the adapted policies at the new θ.
    params = params_of(policy)
    with torch.no_grad():
        old = GaussianDist(*policy.dist(learner.adapt(before, support), query.observations))
        kl = learner.kl(learner.adapt(params, support), old, query).item()
        surr = learner.surrogate(learner.adapt(params, support), query).item()
    assert kl == pytest.approx(stats["kl"], rel=1e-9)
    assert surr == pytest.approx(stats["surrogate_after"], rel=1e-9)


def test_initial_kl_hessian_vector_product_matches_finite_differences():
    policy, support, _ = synthetic()
    learner = MAMLTRPO(policy, trpo=TRPOSettings(trust_region="adapted+initial"))
    params = params_of(policy)
    with torch.no_grad():
        old = GaussianDist(*policy.dist({k: v.detach() for k, v in params.items()},
                                        support.observations))

    def kl_grad(p):
        p = {k: v.detach().requires_grad_(True) for k, v in p.items()}
        return flatten(torch.autograd.grad(learner.initial_kl(p, old, support), list(p.values())))

    v = torch.randn(flatten(params).shape, generator=torch.Generator().manual_seed(4), dtype=DT)
    hvp = learner.initial_kl_hessian_vector(params, old, support)(v)
    eps, flat = 1e-5, flatten(params).detach()
    numeric = (kl_grad(unflatten(flat + eps * v, params)) -
               kl_grad(unflatten(flat - eps * v, params))) / (2 * eps)
    assert torch.allclose(hvp, numeric, rtol=1e-6, atol=1e-9), (hvp - numeric).abs().max()
    assert v @ hvp > 0


@pytest.mark.parametrize("trust_region", ["adapted", "adapted+initial"])
def test_trust_region_bounds_what_it_names(trust_region):
    """``kl`` is the constraint value (adapted, or adapted + initial) and stays within δ;
    ``kl_initial`` is how far the pre-update policy itself moved."""
    policy, support, query = synthetic(n_tasks=2, episodes=8, horizon=10)
    learner = MAMLTRPO(policy, inner_steps=1, inner_lr=0.1,
                       trpo=TRPOSettings(max_kl=0.01, trust_region=trust_region))
    before = {k: v.detach().clone() for k, v in params_of(policy).items()}
    stats = learner.step(support, query)
    assert stats["accepted"] == 1.0 and stats["surrogate_after"] < stats["surrogate_before"]
    params = params_of(policy)
    with torch.no_grad():
        old = GaussianDist(*policy.dist(learner.adapt(before, support), query.observations))
        old_initial = GaussianDist(*policy.dist(before, support.observations))
        kl_adapted = learner.kl(learner.adapt(params, support), old, query).item()
        kl_initial = learner.initial_kl(params, old_initial, support).item()
    assert kl_initial == pytest.approx(stats["kl_initial"], rel=1e-9) and kl_initial > 0
    expected = kl_adapted + (kl_initial if trust_region == "adapted+initial" else 0.0)
    assert expected == pytest.approx(stats["kl"], rel=1e-9) and stats["kl"] <= 0.01


def test_nonfinite_step_is_rejected_and_policy_untouched():
    policy, support, query = synthetic()
    query = query._replace(advantages=query.advantages * np.nan)
    learner = MAMLTRPO(policy)
    before = flatten(params_of(policy)).detach().clone()
    stats = learner.step(support, query)
    assert stats["accepted"] == 0.0 and stats["nonfinite"] == 1.0
    assert stats["zero_gradient"] == 0.0
    assert torch.equal(flatten(params_of(policy)).detach(), before)


def test_zero_gradient_is_no_step_and_not_a_failure():
    """All query advantages 0 (a sparse reward never reached): CG's b = 0 gives x = 0, not
    0/0; the step is skipped without counting as non-finite (which would end the run after
    --max-nan-steps of them)."""
    x, ax = conjugate_gradient(lambda v: 2 * v, torch.zeros(4, dtype=DT))
    assert torch.equal(x, torch.zeros(4, dtype=DT)) and torch.equal(ax, x)
    policy, support, query = synthetic()
    query = query._replace(advantages=torch.zeros_like(query.advantages))
    before = flatten(params_of(policy)).detach().clone()
    stats = MAMLTRPO(policy).step(support, query)
    assert stats["accepted"] == 0.0 and stats["nonfinite"] == 0.0
    assert stats["zero_gradient"] == 1.0 and stats["grad_norm"] == 0.0
    assert torch.equal(flatten(params_of(policy)).detach(), before)


def test_surrogate_ratio_is_one_at_behaviour_policy():
    policy, support, _ = synthetic()
    loss = surrogate_loss(policy, params_of(policy), support)
    expected = -(support.advantages * support.mask).sum((-2, -1)) / support.mask.sum((-2, -1))
    assert torch.allclose(loss, expected, rtol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("mode", ["stacked", "vmap", "loop"])
def test_cuda_step_matches_cpu_step(mode):
    """One TRPO meta-step on the GPU (float64) lands where the same step on the CPU does."""
    ends = {}
    for device in ("cpu", "cuda"):
        policy, support, query = synthetic(n_tasks=3, episodes=8, horizon=10)
        policy = policy.to(device)
        support, query = (PGBatch(*(t.to(device) for t in b)) for b in (support, query))
        learner = MAMLTRPO(policy, inner_steps=1, inner_lr=0.1, mode=mode)
        stats = learner.step(support, query)
        assert stats["accepted"] == 1.0, device
        ends[device] = flatten([p.detach().cpu() for p in params_of(policy).values()])
    assert torch.allclose(ends["cuda"], ends["cpu"], rtol=1e-9, atol=1e-12), \
        (ends["cuda"] - ends["cpu"]).abs().max()

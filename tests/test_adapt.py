"""The inner loop and the MAML / FOMAML / Reptile outer gradients against independent
computations in float64: finite differences, a closed form, and a plain per-task loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from metarl.core.adapt import adapt, adapt_path, step_sizes
from metarl.core.functional import flatten, functional_loss, params_of
from metarl.core.meta import grads_of, maml_objective, reptile_pseudo_gradient
from metarl.core.reference import loop_adapt, loop_maml_loss
from metarl.supervised.models import MLP

from .conftest import finite_difference_grad

DT = torch.float64


def tiny_problem(n_tasks: int = 4, k: int = 6, seed: int = 0):
    """A 1-8-8-1 ReLU regressor in float64 with random sinusoid-like tasks."""
    torch.manual_seed(seed)
    model = MLP(1, (8, 8), 1, init="torch").to(DT)
    loss_fn = functional_loss(model, nn.functional.mse_loss)
    gen = torch.Generator().manual_seed(seed)
    amp = torch.rand(n_tasks, 1, 1, generator=gen, dtype=DT) * 4 + 0.5
    phase = torch.rand(n_tasks, 1, 1, generator=gen, dtype=DT) * 3

    def draw(m: int):
        x = torch.rand(n_tasks, m, 1, generator=gen, dtype=DT) * 10 - 5
        return x, amp * torch.sin(x - phase)

    return model, loss_fn, draw(k), draw(k)


@pytest.mark.parametrize("steps,lr", [(1, 0.05), (2, [0.05, 0.02])])
def test_maml_gradient_matches_finite_differences(steps, lr):
    model, loss_fn, support, query = tiny_problem()
    params = params_of(model)

    def meta_loss(p):
        return maml_objective(loss_fn, p, support, query, steps=steps, lr=lr).loss

    analytic = flatten(grads_of(meta_loss(params), params))
    with torch.no_grad():
        numeric = finite_difference_grad(meta_loss, params)
    assert torch.allclose(analytic, numeric, rtol=1e-6, atol=1e-8), (analytic - numeric).abs().max()


def test_maml_gradient_matches_closed_form_linear_regression():
    """For f(x) = w·x and MSE, θ' = w − α H_s w + α g_s is linear in w, so the meta-gradient
    is (I − α H_s) ∇L_q(θ'), with H_s = (2/n) XsᵀXs and g_s = (2/n) Xsᵀys."""
    gen = torch.Generator().manual_seed(1)
    d, n, m, alpha = 5, 7, 9, 0.1
    xs, xq = torch.randn(n, d, generator=gen, dtype=DT), torch.randn(m, d, generator=gen, dtype=DT)
    w_true = torch.randn(d, generator=gen, dtype=DT)
    ys, yq = xs @ w_true, xq @ w_true + 0.1
    w = torch.randn(d, generator=gen, dtype=DT, requires_grad=True)

    def loss_fn(p, batch):
        x, y = batch
        return ((x @ p["w"] - y) ** 2).mean()

    out = maml_objective(loss_fn, {"w": w}, (xs[None], ys[None]), (xq[None], yq[None]),
                         steps=1, lr=alpha)
    (grad,) = torch.autograd.grad(out.loss, w)

    h_s = 2.0 / n * xs.T @ xs
    w_adapted = w.detach() - alpha * (2.0 / n) * xs.T @ (xs @ w.detach() - ys)
    grad_q = 2.0 / m * xq.T @ (xq @ w_adapted - yq)
    expected = (torch.eye(d, dtype=DT) - alpha * h_s) @ grad_q
    assert torch.allclose(grad, expected, rtol=1e-12, atol=1e-12)


def test_fomaml_gradient_is_query_gradient_at_adapted_params():
    model, loss_fn, support, query = tiny_problem(n_tasks=3)
    params = params_of(model)
    out = maml_objective(loss_fn, params, support, query, steps=2, lr=0.05, first_order=True)
    ours = flatten(grads_of(out.loss, params))
    expected = torch.zeros_like(ours)
    for i in range(3):
        s = (support[0][i], support[1][i])
        q = (query[0][i], query[1][i])
        adapted = loop_adapt(loss_fn, params, s, steps=2, lr=0.05)
        leaves = {k: v.detach().requires_grad_(True) for k, v in adapted.items()}
        expected += flatten(grads_of(loss_fn(leaves, q), leaves)) / 3
    assert torch.allclose(ours, expected, rtol=1e-12, atol=1e-14)


def stacked_mse(model: MLP):
    """The per-task MSE of ``model`` for task-stacked parameters."""
    return lambda p, batch: (model.forward_with(p, batch[0]) - batch[1]).square().mean((1, 2))


@pytest.mark.parametrize("path", ["vmap", "stacked"])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 3])
def test_vectorised_paths_equal_per_task_loop(path, first_order, steps):
    model, loss_fn, support, query = tiny_problem(n_tasks=5)
    params = params_of(model)
    ours = maml_objective(loss_fn, params, support, query, steps=steps, lr=0.03,
                          first_order=first_order,
                          stacked=stacked_mse(model) if path == "stacked" else None)
    ref = loop_maml_loss(loss_fn, params, support, query, 5, steps, 0.03, first_order)
    assert torch.allclose(ours.loss, ref, rtol=1e-12, atol=0)
    g_ours, g_ref = flatten(grads_of(ours.loss, params)), flatten(grads_of(ref, params))
    assert (g_ours - g_ref).abs().max() <= 1e-10 * max(1.0, g_ref.abs().max().item())


def test_loop_and_vmap_objectives_agree():
    model, loss_fn, support, query = tiny_problem(n_tasks=3)
    params = params_of(model)
    a = maml_objective(loss_fn, params, support, query, steps=2, lr=0.03, vectorize=True)
    b = maml_objective(loss_fn, params, support, query, steps=2, lr=0.03, vectorize=False)
    assert torch.allclose(a.loss, b.loss, rtol=1e-13)
    assert torch.allclose(flatten(grads_of(a.loss, params)), flatten(grads_of(b.loss, params)),
                          rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("vectorize", [True, False])
def test_reptile_pseudo_gradient_is_theta_minus_mean_adapted(vectorize):
    model, loss_fn, support, _ = tiny_problem(n_tasks=4)
    params = params_of(model)
    pseudo = reptile_pseudo_gradient(loss_fn, params, support, steps=3, lr=0.02,
                                     vectorize=vectorize)
    # Independent: plain SGD with torch.optim on a copy of the model, task by task.
    finals = []
    for i in range(4):
        copy = MLP(1, (8, 8), 1).to(DT)
        copy.load_state_dict(model.state_dict())
        opt = torch.optim.SGD(copy.parameters(), lr=0.02)
        for _ in range(3):
            opt.zero_grad()
            nn.functional.mse_loss(copy(support[0][i]), support[1][i]).backward()
            opt.step()
        finals.append(flatten(dict(copy.named_parameters())).detach())
    expected = flatten(params).detach() - torch.stack(finals).mean(0)
    assert torch.allclose(flatten(pseudo), expected, rtol=1e-12, atol=1e-14)
    # With outer SGD at lr 1 the step lands exactly on the mean of the adapted parameters.
    for k, p in params.items():
        p.grad = pseudo[k].clone()
    torch.optim.SGD(params.values(), lr=1.0).step()
    assert torch.allclose(flatten(params).detach(), torch.stack(finals).mean(0), atol=1e-14)


def test_adapt_leaves_module_and_input_untouched():
    model, loss_fn, support, _ = tiny_problem(n_tasks=1)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    params = params_of(model)
    s = (support[0][0], support[1][0])
    adapted = adapt(loss_fn, params, s, steps=2, lr=0.1)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(adapted[k] is not params[k] for k in params)
    assert adapt(loss_fn, params, s, steps=0, lr=0.1) is params


def test_adapt_path_matches_repeated_single_steps():
    model, loss_fn, support, _ = tiny_problem(n_tasks=1)
    params = params_of(model)
    s = (support[0][0], support[1][0])
    path = adapt_path(loss_fn, params, s, steps=3, lr=[0.1, 0.05, 0.05])
    assert len(path) == 4
    direct = adapt(loss_fn, params, s, steps=3, lr=[0.1, 0.05, 0.05])
    assert torch.allclose(flatten(path[-1]), flatten(direct).detach(), rtol=1e-13)


def test_step_sizes_validation():
    assert step_sizes(0.1, 3) == [0.1, 0.1, 0.1]
    assert step_sizes([0.1, 0.05], 2) == [0.1, 0.05]
    with pytest.raises(ValueError, match="2 step sizes for 3 inner steps"):
        step_sizes([0.1, 0.05], 3)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        step_sizes(0.1, -1)


def test_metric_fn_is_averaged_over_tasks():
    model, loss_fn, support, query = tiny_problem(n_tasks=3)
    params = params_of(model)

    def metric(p, batch):
        return {"double": 2 * loss_fn(p, batch)}

    out = maml_objective(loss_fn, params, support, query, steps=1, lr=0.01, metric_fn=metric)
    assert np.isclose(out.metrics["double"].item(), 2 * out.loss.item())


def test_metric_fn_loss_is_used_as_the_query_loss():
    """A metric_fn that returns "loss" from its own forward pass replaces the second forward,
    with the same value and meta-gradient."""
    model, loss_fn, support, query = tiny_problem(n_tasks=3)
    params = params_of(model)
    calls = {"n": 0}

    def metric(p, batch):
        calls["n"] += 1
        return {"loss": loss_fn(p, batch), "zero": torch.zeros((), dtype=DT)}

    a = maml_objective(loss_fn, params, support, query, steps=1, lr=0.01, metric_fn=metric,
                       vectorize=False)
    b = maml_objective(loss_fn, params, support, query, steps=1, lr=0.01, vectorize=False)
    assert calls["n"] == 3 and set(a.metrics) == {"zero"}
    assert torch.allclose(a.loss, b.loss, rtol=1e-14)
    assert torch.allclose(flatten(grads_of(a.loss, params)), flatten(grads_of(b.loss, params)),
                          rtol=1e-12)


def test_autograd_adapt_of_task_stacked_parameters_equals_adapt_per_task():
    model, loss_fn, support, _ = tiny_problem(n_tasks=3)
    theta = {k: v.detach() for k, v in params_of(model).items()}  # no grad: still adapts
    stacked = adapt(stacked_mse(model), {k: v.expand(3, *v.shape) for k, v in theta.items()},
                    support, steps=2, lr=0.05, autograd=True)
    for t in range(3):
        one = adapt(loss_fn, theta, (support[0][t], support[1][t]), steps=2, lr=0.05)
        for k in theta:
            assert torch.allclose(stacked[k][t], one[k], rtol=1e-12, atol=1e-15), k


def test_mlp_functional_forward_equals_functional_call():
    model = MLP(1, (8, 8), 1, init="torch").to(DT)
    params = {k: v + 0.1 for k, v in params_of(model).items()}
    x = torch.randn(5, 1, dtype=DT)
    expected = torch.func.functional_call(model, params, (x,))
    assert torch.equal(model.forward_with(params, x), expected)
    assert torch.equal(model(x), model.forward_with(params_of(model), x))


@pytest.mark.parametrize("first_order", [False, True])
def test_autograd_adapt_equals_adapt_to_second_order(first_order):
    """autograd.grad in place of the torch.func.grad transform: the same adapted parameters
    and the same meta-gradient through them (float64), unused parameters get zero steps."""
    torch.manual_seed(0)
    model = MLP(1, (8, 8), 1).double()
    loss_fn = functional_loss(model, nn.functional.mse_loss)
    params = {**params_of(model), "unused": torch.ones(3, dtype=torch.float64,
                                                        requires_grad=True)}
    x = torch.randn(6, 1, dtype=torch.float64)
    support, query = (x, torch.sin(x)), (x + 0.5, torch.sin(x + 0.5))
    meta = {}
    for name, autograd in (("func", False), ("plain", True)):
        adapted = adapt(loss_fn, params, support, steps=2, lr=0.05, first_order=first_order,
                        autograd=autograd)
        assert torch.equal(adapted["unused"].detach(), params["unused"].detach())
        meta[name] = flatten(grads_of(loss_fn(adapted, query), params))
    torch.testing.assert_close(meta["plain"], meta["func"], rtol=1e-12, atol=1e-14)

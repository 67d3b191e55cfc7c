"""Conv4 and its batch norm: exact second-order meta-gradients under vmap (float64), in both
parametrisations (fast scale and shift; the original code's outer-only shift)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from metarl.core.adapt import adapt
from metarl.core.functional import detach, flatten, functional_loss, params_of
from metarl.core.meta import grads_of, maml_objective
from metarl.core.reference import loop_maml_loss
from metarl.errors import MetaRLError
from metarl.supervised.evaluation import evaluate
from metarl.supervised.fewshot import accuracy_metric
from metarl.supervised.models import (
    BatchStatNorm2d,
    Conv4,
    conv4_miniimagenet,
    conv4_omniglot,
    outer_only_names,
)
from metarl.supervised.tasks import SupervisedProblem, TaskBatch
from metarl.supervised.trainer import LoopConfig, make_outer_step

N_WAY, K_SHOT, K_QUERY, TASKS = 3, 2, 2, 3

# Small widths and images keep these float64 checks fast; the arithmetic is the paper's.
VARIANTS: dict[str, dict[str, Any]] = {
    "stride": dict(in_channels=1, width=6, downsample="stride", image_size=12),
    "maxpool": dict(in_channels=3, width=5, downsample="maxpool", image_size=16),
}


def make_model(variant: str, seed: int = 0) -> Conv4:
    torch.manual_seed(seed)
    model = Conv4(n_classes=N_WAY, **VARIANTS[variant]).double()
    with torch.no_grad():  # non-trivial affine parameters, so their gradients are exercised
        for block in model.blocks:
            block.norm.weight.uniform_(0.5, 1.5)
            block.norm.bias.uniform_(-0.2, 0.2)
    return model


def make_tasks(variant: str, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ch, size = VARIANTS[variant]["in_channels"], VARIANTS[variant]["image_size"]

    def part(k: int):
        x = torch.randn(TASKS, N_WAY * k, ch, size, size, generator=g, dtype=torch.float64)
        y = torch.arange(N_WAY).repeat_interleave(k).expand(TASKS, -1)
        return x, y

    return part(K_SHOT), part(K_QUERY)


def meta_grad(model, support, query, *, steps, vectorize=True, first_order=False):
    loss_fn = functional_loss(model, nn.functional.cross_entropy)
    params = params_of(model)
    out = maml_objective(loss_fn, params, support, query, steps=steps, lr=0.4,
                         first_order=first_order, vectorize=vectorize)
    return flatten(grads_of(out.loss, params))


def loop_grad(model, support, query, *, steps, first_order=False):
    loss_fn = functional_loss(model, nn.functional.cross_entropy)
    params = params_of(model)
    loss = loop_maml_loss(loss_fn, params, support, query, TASKS, steps, 0.4, first_order)
    return flatten(grads_of(loss, params))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("steps", [1, 2])
def test_vmap_meta_gradient_matches_per_task_loop(variant, steps):
    model = make_model(variant)
    support, query = make_tasks(variant)
    ours = meta_grad(model, support, query, steps=steps)
    reference = loop_grad(model, support, query, steps=steps)
    assert rel_err(ours, reference) < 1e-12


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_first_order_meta_gradient_matches_per_task_loop(variant):
    model = make_model(variant)
    support, query = make_tasks(variant)
    ours = meta_grad(model, support, query, steps=2, first_order=True)
    reference = loop_grad(model, support, query, steps=2, first_order=True)
    assert rel_err(ours, reference) < 1e-12


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_meta_gradient_matches_central_finite_differences(variant):
    """Directional derivatives of the 2-step MAML objective along random unit directions.

    The objective has ReLU and max-pool kinks, so the step must be small (1e-6) to stay on one
    smooth piece; float64 leaves ~1e-9 of rounding in the difference quotient.
    """
    model = make_model(variant)
    support, query = make_tasks(variant)
    loss_fn = functional_loss(model, nn.functional.cross_entropy)
    params = params_of(model)

    def objective(p) -> float:
        out = maml_objective(loss_fn, p, support, query, steps=2, lr=0.4)
        return float(out.loss)

    grad = grads_of(maml_objective(loss_fn, params, support, query, steps=2, lr=0.4).loss, params)
    g = torch.Generator().manual_seed(2)
    eps = 1e-6
    for _ in range(4):
        direction = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in params.items()}
        norm = flatten(direction).norm()  # a unit direction, so eps is the step length
        direction = {k: v / norm for k, v in direction.items()}
        with torch.no_grad():
            plus = objective({k: v + eps * direction[k] for k, v in params.items()})
            minus = objective({k: v - eps * direction[k] for k, v in params.items()})
        numeric = (plus - minus) / (2 * eps)
        analytic = float(sum((grad[k] * direction[k]).sum() for k in params))
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_nn_batchnorm_under_vmap_gives_a_wrong_second_order_meta_gradient():
    """The pitfall this model avoids: ``nn.BatchNorm2d`` (no running stats) is exact per task
    but not under vmap, where its second-order meta-gradient is off by ~1e-3."""
    model = make_model("stride")
    for block in model.blocks:
        block.norm = nn.BatchNorm2d(block.norm.weight.numel(), track_running_stats=False).double()
    support, query = make_tasks("stride")
    reference = loop_grad(model, support, query, steps=1)
    per_task = meta_grad(model, support, query, steps=1, vectorize=False)
    vmapped = meta_grad(model, support, query, steps=1, vectorize=True)
    assert rel_err(per_task, reference) < 1e-12
    assert rel_err(vmapped, reference) > 1e-5


class MeanVarNorm(nn.Module):
    """Batch norm from batch statistics written out by hand (the test's independent form)."""

    def __init__(self, norm: BatchStatNorm2d) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=(0, 2, 3), keepdim=True)
        var = (centred ** 2).mean(dim=(0, 2, 3), keepdim=True)
        scale = self.weight.view(1, -1, 1, 1) / torch.sqrt(var + self.eps)
        return centred * scale + self.bias.view(1, -1, 1, 1)


def test_batch_stat_norm_is_the_same_map_inside_and_outside_vmap():
    """Outside vmap the fused kernel runs, under vmap the mean/var form: both are the
    hand-written batch norm."""
    torch.manual_seed(0)
    norm = BatchStatNorm2d(4).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(6, 4, 5, 5, dtype=torch.float64) * 3 + 1
    expected = MeanVarNorm(norm)(x)
    torch.testing.assert_close(norm(x), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.func.vmap(norm)(x[None])[0], expected, rtol=1e-12,
                               atol=1e-12)
    assert not list(norm.buffers())  # no running statistics


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("steps", [1, 2])
def test_fused_batch_norm_gives_the_exact_second_order_meta_gradient(variant, steps):
    """The per-task loop runs the fused batch-norm kernel; its second-order meta-gradient
    equals that of the hand-written mean/var form in float64."""
    model = make_model(variant)
    by_hand = make_model(variant)
    for block in by_hand.blocks:
        block.norm = MeanVarNorm(block.norm)
    support, query = make_tasks(variant)
    fused = meta_grad(model, support, query, steps=steps, vectorize=False)
    assert rel_err(fused, loop_grad(by_hand, support, query, steps=steps)) < 1e-12


def test_paper_architectures():
    omni, mini = conv4_omniglot(5), conv4_miniimagenet(5)
    assert omni(torch.zeros(2, 1, 28, 28)).shape == (2, 5)
    assert mini(torch.zeros(2, 3, 84, 84)).shape == (2, 5)
    assert omni.head.in_features == 64  # 28 → 14 → 7 → 4 → 2, averaged over space
    assert mini.head.in_features == 5 * 5 * 32  # 84 → 42 → 21 → 10 → 5, flattened
    assert omni.blocks[0].conv.stride == (2, 2) and mini.blocks[0].conv.stride == (1, 1)
    names = set(dict(omni.named_parameters()))
    assert {"blocks.0.conv.weight", "blocks.3.norm.bias", "head.weight", "head.bias"} <= names
    assert sum(p.numel() for p in omni.parameters()) == 112_005
    assert not list(omni.buffers())


def test_conv4_rejects_unknown_downsampling():
    with pytest.raises(ValueError, match="downsample"):
        Conv4(1, 5, downsample="avgpool")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# The original code's batch norm: no scale, a shift meta-learned by the outer update alone.

def make_original(seed: int = 0) -> SupervisedProblem:
    """A small stride Conv4 with ``norm="original"`` wrapped as a problem (no samplers)."""
    torch.manual_seed(seed)
    model = Conv4(n_classes=N_WAY, norm="original", **VARIANTS["stride"]).double()
    with torch.no_grad():  # non-zero shifts, so that holding them fixed is visible
        for block in model.blocks:
            block.norm.bias.uniform_(-0.2, 0.2)
    return SupervisedProblem(model, functional_loss(model, nn.functional.cross_entropy),
                             accuracy_metric(model), {}, outer_only=outer_only_names(model))


def hand_written_outer_only_loss(problem: SupervisedProblem, params, support, query, steps,
                                 lr=0.4, first_order=False):
    """Per-task loop with autograd.grad, adapting every parameter except the outer-only ones
    (shares no code with SupervisedProblem.inner_view, with_fixed or adapt)."""
    fast_keys = [k for k in params if k not in problem.outer_only]
    total = torch.zeros((), dtype=torch.float64)
    for i in range(TASKS):
        p = dict(params)
        for _ in range(steps):
            loss = problem.loss_fn(p, (support[0][i], support[1][i]))
            grads = torch.autograd.grad(loss, [p[k] for k in fast_keys],
                                        create_graph=not first_order)
            p.update({k: p[k] - lr * g for k, g in zip(fast_keys, grads)})
        total = total + problem.loss_fn(p, (query[0][i], query[1][i]))
    return total / TASKS


def test_original_norm_has_no_scale_and_outer_only_shifts():
    model = conv4_omniglot(5, norm="original")
    names = set(dict(model.named_parameters()))
    assert not any(n.endswith("norm.weight") for n in names)
    assert outer_only_names(model) == tuple(f"blocks.{i}.norm.bias" for i in range(4))
    assert outer_only_names(conv4_omniglot(5)) == ()
    assert sum(p.numel() for p in model.parameters()) == 112_005 - 4 * 64
    x = torch.randn(6, 4, 5, 5, dtype=torch.float64) * 3 + 1
    norm = BatchStatNorm2d(4, style="original").double()
    with torch.no_grad():
        norm.bias.uniform_(-1, 1)
    expected = nn.functional.batch_norm(x, None, None, None, norm.bias, training=True,
                                        eps=norm.eps)
    torch.testing.assert_close(norm(x), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="batch-norm style"):
        BatchStatNorm2d(4, style="scale")  # type: ignore[arg-type]


def test_inner_loop_leaves_outer_only_parameters_alone():
    problem = make_original()
    support, _ = make_tasks("stride")
    params = params_of(problem.model)
    view = problem.inner_view(params)
    assert set(view.fast) == set(params) - set(problem.outer_only)
    adapted = adapt(view.loss_fn, view.fast, (support[0][0], support[1][0]), steps=2, lr=0.4)
    assert set(adapted) == set(view.fast)  # the shifts are not among the adapted weights
    assert all(not torch.equal(adapted[k], params[k]) for k in adapted)
    # and the view's loss is the loss at the adapted fast weights with the shifts unchanged
    batch = (support[0][0], support[1][0])
    full = {**adapted, **{k: params[k] for k in problem.outer_only}}
    assert torch.equal(view.loss_fn(adapted, batch).detach(), problem.loss_fn(full, batch).detach())


@pytest.mark.parametrize("batching", ["batched", "loop"])
@pytest.mark.parametrize("steps", [1, 2])
def test_outer_step_with_outer_only_shifts_matches_a_hand_written_loop(batching, steps):
    """The trainer's MAML gradient (shifts held in the inner loop, learned outside it)."""
    problem = make_original()
    support, query = make_tasks("stride")
    params = params_of(problem.model)
    cfg = LoopConfig(algo="maml", inner_steps=steps, inner_lr=0.4, task_batching=batching)
    grads, _ = make_outer_step(problem, cfg)(params, TaskBatch(support, query))
    reference = grads_of(hand_written_outer_only_loss(problem, params, support, query, steps),
                         params)
    assert rel_err(flatten(grads), flatten(reference)) < 1e-12
    assert all(float(grads[k].norm()) > 0 for k in problem.outer_only)  # they do learn


def test_fomaml_and_pretrained_outer_steps_with_outer_only_shifts():
    """FOMAML: the inner gradients are constants, the shifts get the query loss's gradient at
    the adapted weights; pretrained: plain joint training, the shifts a parameter like any."""
    problem = make_original()
    support, query = make_tasks("stride")
    params = params_of(problem.model)
    batch = TaskBatch(support, query)
    grads, _ = make_outer_step(problem, LoopConfig(algo="fomaml", inner_steps=2,
                                                   inner_lr=0.4))(params, batch)
    reference = grads_of(hand_written_outer_only_loss(problem, params, support, query, 2,
                                                      first_order=True), params)
    assert rel_err(flatten(grads), flatten(reference)) < 1e-12
    grads, _ = make_outer_step(problem, LoopConfig(algo="pretrained"))(params, batch)
    both = tuple(torch.cat([s, q], dim=1) for s, q in zip(support, query))
    joint = torch.stack([problem.loss_fn(params, (both[0][i], both[1][i]))
                         for i in range(TASKS)]).mean()
    assert rel_err(flatten(grads), flatten(grads_of(joint, params))) < 1e-12


def test_outer_only_meta_gradient_matches_central_finite_differences():
    problem = make_original()
    support, query = make_tasks("stride")
    params = params_of(problem.model)

    def objective(p) -> torch.Tensor:
        view = problem.inner_view(p)
        return maml_objective(view.loss_fn, view.fast, support, query, steps=2, lr=0.4).loss

    grad = grads_of(objective(params), params)
    g = torch.Generator().manual_seed(3)
    eps = 1e-6
    for only_shifts in (True, False):
        direction = {k: torch.randn(v.shape, generator=g, dtype=v.dtype)
                     * (1.0 if k in problem.outer_only or not only_shifts else 0.0)
                     for k, v in params.items()}
        norm = flatten(direction).norm()
        direction = {k: v / norm for k, v in direction.items()}
        with torch.no_grad():
            plus = float(objective({k: v + eps * direction[k] for k, v in params.items()}))
            minus = float(objective({k: v - eps * direction[k] for k, v in params.items()}))
        analytic = float(sum((grad[k] * direction[k]).sum() for k in params))
        assert analytic == pytest.approx((plus - minus) / (2 * eps), rel=1e-6, abs=1e-9)


def test_evaluation_curves_hold_outer_only_shifts():
    """The evaluation through the view equals adapting the fast weights by hand."""
    problem = make_original()
    support, query = make_tasks("stride")
    params = params_of(problem.model)

    class Fixed:
        def sample(self, n_tasks, rng):
            return TaskBatch(support, query)

    view = problem.inner_view(detach(params))
    result = evaluate(view.loss_fn, view.metric_fn, view.fast, Fixed(), n_tasks=TASKS, steps=1,
                      lr=0.4, seed=0, chunk=TASKS)
    expected = []
    for i in range(TASKS):
        p = {k: v.detach().requires_grad_() for k, v in params.items()}
        fast_keys = [k for k in p if k not in problem.outer_only]
        loss = problem.loss_fn(p, (support[0][i], support[1][i]))
        grads = torch.autograd.grad(loss, [p[k] for k in fast_keys])
        p.update({k: p[k] - 0.4 * g for k, g in zip(fast_keys, grads)})
        expected.append(float(problem.loss_fn(p, (query[0][i], query[1][i])).detach()))
    assert result["loss_mean"][1] == pytest.approx(np.mean(expected), rel=1e-12)
    assert result["loss_median"][1] == pytest.approx(np.median(expected), rel=1e-12)


def test_reptile_refuses_outer_only_parameters():
    with pytest.raises(MetaRLError, match="reptile cannot meta-learn outer-only"):
        make_outer_step(make_original(), LoopConfig(algo="reptile"))

"""Conv4 and its batch norm: exact second-order meta-gradients under vmap (float64)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from metarl.functional import flatten, functional_loss, params_of
from metarl.meta import grads_of, maml_objective
from metarl.reference import loop_maml_loss
from metarl.supervised.models import BatchStatNorm2d, Conv4, conv4_miniimagenet, conv4_omniglot

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


def test_batch_stat_norm_equals_torch_batch_norm_in_training_mode():
    torch.manual_seed(0)
    norm = BatchStatNorm2d(4).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(6, 4, 5, 5, dtype=torch.float64) * 3 + 1
    expected = nn.functional.batch_norm(x, None, None, norm.weight, norm.bias, training=True,
                                        eps=norm.eps)
    torch.testing.assert_close(norm(x), expected, rtol=1e-12, atol=1e-12)
    assert not list(norm.buffers())  # no running statistics


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

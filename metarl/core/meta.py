"""Outer objectives: what the meta-learner optimises across a meta-batch of tasks.

* MAML / FOMAML (Finn et al., 2017, eq. 2 and Algorithm 2): the mean over tasks of the query
  loss at the adapted parameters θ'_i = adapt(θ, support_i). Its gradient with respect to θ is
  the meta-gradient; with ``first_order=True`` the inner gradients are constants (FOMAML).
* Reptile (Nichol, Achiam & Schulman, 2018, Algorithm 2): the pseudo-gradient θ − mean_i θ'_i,
  written into ``.grad`` so that any ``torch.optim`` optimiser takes the outer step (plain SGD
  with learning rate ε is the paper's update θ ← θ + ε (mean θ' − θ)).

Same-shaped tasks run as one call through :func:`torch.func.vmap` over a leading task axis of
the batches (``vectorize=True``, the default); ``vectorize=False`` runs the identical per-task
computation in a Python loop, for models or data that cannot be stacked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from metarl.core.adapt import LearningRate, adapt
from metarl.core.functional import LossFn, Params, TaskLossesFn, index_tasks

MetricFn = Callable[[Params, Any], dict[str, Tensor]]
"""``(params, batch) -> {name: scalar}``, e.g. query accuracy. If it also returns ``"loss"``
(computed from the same forward pass), that value is used as the query loss, so the query
batch goes through the network once; the other entries are never differentiated."""


def query_loss_and_metrics(
    loss_fn: LossFn, metric_fn: MetricFn | None, params: Params, batch: Any
) -> tuple[Tensor, dict[str, Tensor]]:
    """The query loss and detached metrics, with one forward pass when ``metric_fn`` gives
    the loss too."""
    if metric_fn is None:
        return loss_fn(params, batch), {}
    metrics = dict(metric_fn(params, batch))
    loss = metrics.pop("loss", None)
    if loss is None:
        loss = loss_fn(params, batch)
    return loss, {k: v.detach() for k, v in metrics.items()}


class MetaOutput(NamedTuple):
    """The meta-batch's mean query loss (differentiable w.r.t. θ) and mean metrics."""

    loss: Tensor
    metrics: dict[str, Tensor]


def _num_tasks(batch: Any) -> int:
    leaves: list[Tensor] = []

    def visit(t: Any) -> None:
        if isinstance(t, Tensor):
            leaves.append(t)
        elif isinstance(t, dict):
            for v in t.values():
                visit(v)
        elif isinstance(t, (tuple, list)):
            for v in t:
                visit(v)

    visit(batch)
    if not leaves:
        raise ValueError("the batch holds no tensors")
    return leaves[0].shape[0]


def maml_objective(
    loss_fn: LossFn,
    params: Params,
    support: Any,
    query: Any,
    *,
    steps: int,
    lr: LearningRate,
    first_order: bool = False,
    metric_fn: MetricFn | None = None,
    vectorize: bool = True,
    stacked: TaskLossesFn | None = None,
) -> MetaOutput:
    """Mean post-adaptation query loss over a meta-batch (MAML's meta-objective).

    Args:
        loss_fn: ``(params, batch) -> scalar``, used for both the inner and the query loss.
        params: θ, typically :func:`metarl.core.functional.params_of` of the model.
        support, query: batches whose tensors have a leading task axis of equal length.
        steps, lr, first_order: the inner loop, see :func:`metarl.core.adapt.adapt`.
        metric_fn: optional extra per-task numbers (e.g. accuracy) measured at θ'.
        vectorize: vmap over tasks (one batched call) instead of a Python loop.
        stacked: the same loss written for task-stacked parameters (see ``autograd`` of
            :func:`metarl.core.adapt.adapt`); when given with ``vectorize`` and no
            ``metric_fn``, θ is expanded along a task axis and the meta-batch runs without vmap
            -- identical numbers, less overhead.
    """
    if stacked is not None and vectorize and metric_fn is None:
        n = _num_tasks(support)
        theta = {k: v.expand(n, *v.shape) for k, v in params.items()}
        adapted = adapt(stacked, theta, support, steps=steps, lr=lr, first_order=first_order,
                        autograd=True)
        return MetaOutput(stacked(adapted, query).mean(), {})

    def per_task(p: Params, s: Any, q: Any) -> tuple[Tensor, dict[str, Tensor]]:
        adapted = adapt(loss_fn, p, s, steps=steps, lr=lr, first_order=first_order,
                        autograd=not vectorize)  # outside vmap, without the transform
        return query_loss_and_metrics(loss_fn, metric_fn, adapted, q)

    if vectorize:
        losses, metrics = torch.func.vmap(per_task, in_dims=(None, 0, 0))(params, support, query)
        return MetaOutput(losses.mean(), {k: v.mean() for k, v in metrics.items()})

    results = [
        per_task(params, index_tasks(support, i), index_tasks(query, i))
        for i in range(_num_tasks(support))
    ]
    loss = torch.stack([r[0] for r in results]).mean()
    names = results[0][1].keys()
    return MetaOutput(loss, {k: torch.stack([r[1][k] for r in results]).mean() for k in names})


def reptile_pseudo_gradient(
    loss_fn: LossFn,
    params: Params,
    support: Any,
    *,
    steps: int,
    lr: LearningRate,
    vectorize: bool = True,
) -> Params:
    """Reptile's outer direction ``θ − mean_i θ'_i`` (a descent direction, like a gradient).

    Each θ'_i is ``steps`` plain SGD steps on task i's support batch from θ; nothing is
    differentiated through, so this costs the same as first-order MAML's inner loop.
    """
    theta = {k: v.detach() for k, v in params.items()}

    def per_task(s: Any) -> Params:
        return adapt(loss_fn, theta, s, steps=steps, lr=lr, first_order=True)

    if vectorize:
        adapted = torch.func.vmap(per_task)(support)
        mean_adapted = {k: v.mean(0) for k, v in adapted.items()}
    else:
        per = [per_task(index_tasks(support, i)) for i in range(_num_tasks(support))]
        mean_adapted = {k: torch.stack([a[k] for a in per]).mean(0) for k in theta}
    return {k: theta[k] - mean_adapted[k] for k in theta}


def assign_gradients(params: Params, grads: Params) -> None:
    """Write ``grads`` into ``params[k].grad`` so a ``torch.optim`` optimiser can step."""
    for k, p in params.items():
        g = grads[k].detach()
        p.grad = g.clone() if p.grad is None else p.grad.copy_(g)


def grads_of(loss: Tensor, params: Params) -> Params:
    """``∂loss/∂params`` as a dict (unused parameters get zeros)."""
    keys = list(params)
    gs = torch.autograd.grad(loss, [params[k] for k in keys], allow_unused=True)
    return {k: torch.zeros_like(params[k]) if g is None else g for k, g in zip(keys, gs)}


def finite(tensors: Iterable[Tensor]) -> bool:
    """True when every entry of every tensor is finite (guards outer steps against NaN)."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)

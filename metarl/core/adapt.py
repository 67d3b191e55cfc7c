"""The one inner loop of the toolkit: a few gradient steps on a task's support data.

MAML (Finn et al., 2017, Algorithm 1 line 6 / eq. 1) adapts parameters with

    θ'_i = θ - α ∇_θ L_{T_i}(f_θ)

repeated for ``steps`` steps. Second-order MAML differentiates the query loss at θ' through
this update (the gradient of the gradient); first-order MAML (FOMAML, section 5.2 of the paper)
treats ∇L as a constant, which here means detaching it. Reptile runs the same loop and only
forms its outer update differently; MAML-RL runs it on a REINFORCE surrogate.

The gradient is taken with :func:`torch.func.grad`, a function transform, so that the very same
code works on one task and under :func:`torch.func.vmap` over a stacked meta-batch, and so that
an outer ``backward()`` (or ``torch.autograd.grad``) still sees through it to θ.
``adapt(..., autograd=True)`` is the same loop with ``torch.autograd.grad``, for a per-task
loop outside vmap or a whole meta-batch of task-stacked parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from metarl.core.functional import LossFn, Params, TaskLossesFn

LearningRate = float | Sequence[float | Tensor] | Tensor
"""One step size for every step, or one per step (e.g. ``[α, α/2, α/2]`` for MAML-RL tests)."""


def step_sizes(lr: LearningRate, steps: int) -> list[float | Tensor]:
    """Expand ``lr`` to one step size per inner step, checking the length."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if isinstance(lr, Tensor):
        if lr.dim() == 0:
            return [lr] * steps
        if lr.shape[0] != steps:
            raise ValueError(f"got {lr.shape[0]} step sizes for {steps} inner steps")
        return list(lr.unbind(0))
    if isinstance(lr, (int, float)):
        return [float(lr)] * steps
    lrs = list(lr)
    if len(lrs) != steps:
        raise ValueError(f"got {len(lrs)} step sizes for {steps} inner steps")
    return lrs


def adapt(
    loss_fn: LossFn | TaskLossesFn,
    params: Params,
    batch: Any,
    *,
    steps: int = 1,
    lr: LearningRate = 0.01,
    first_order: bool = False,
    autograd: bool = False,
) -> Params:
    """Take ``steps`` SGD steps of ``loss_fn(·, batch)`` from ``params``; return θ'.

    Args:
        loss_fn: ``(params, batch) -> scalar``; the task's inner (support) loss.
        params: the starting point θ. If its tensors require grad, the result stays
            differentiable with respect to them.
        batch: the task's support data, passed to ``loss_fn`` unchanged.
        steps: number of inner gradient steps (0 returns ``params`` itself).
        lr: the inner step size α, a float or one per step.
        first_order: FOMAML -- treat each inner gradient as a constant, so the outer gradient
            is the query-loss gradient at θ' (no second derivatives are ever built).
        autograd: take each gradient with ``torch.autograd.grad`` instead of the
            ``torch.func.grad`` transform: the same numbers without the transform's
            per-operation overhead, for a plain call outside vmap and torch.compile. It serves
            a whole meta-batch at once too: with ``params[k]`` of shape ``[T, *shape]``
            (typically ``θ.expand(T, ...)``) and a ``loss_fn`` returning the T per-task losses
            (a :data:`~metarl.core.functional.TaskLossesFn`) whose task t depends only on its
            own slice, the gradient of their sum is every task's own gradient -- the numbers
            of ``vmap(adapt)`` from plain batched kernels. Unlike the transform,
            ``autograd.grad`` also follows tensors the loss captures from outside its
            arguments, so ``loss_fn`` must depend on ``params`` through its arguments only (the
            supervised losses do; a loss closing over quantities computed from θ, as MAML-RL's
            may, must use the transform).

    Returns:
        A new parameter dict θ'. The input dict and any module behind it are left unchanged.
    """
    if autograd:
        gradient = _autograd_gradient(loss_fn, batch, first_order)
    else:
        grad_fn = torch.func.grad(loss_fn)

        def gradient(p: Params) -> Params:
            grads = grad_fn(p, batch)
            return {k: g.detach() for k, g in grads.items()} if first_order else grads

    for alpha in step_sizes(lr, steps):
        grads = gradient(params)
        params = {k: p - alpha * grads[k] for k, p in params.items()}
    return params


def _autograd_gradient(loss_fn: Callable[[Params, Any], Tensor], batch: Any,
                       first_order: bool) -> Callable[[Params], Params]:
    """``p -> ∇_p loss_fn(p, batch).sum()`` by ``torch.autograd.grad``; second order (the
    result stays in the graph) unless ``first_order``. Parameters the loss does not use get
    zeros, as ``torch.func.grad`` gives them."""

    def gradient(p: Params) -> Params:
        keys = list(p)
        with torch.enable_grad():
            leaves = [p[k] if p[k].requires_grad else p[k].detach().requires_grad_()
                      for k in keys]
            total = loss_fn(dict(zip(keys, leaves)), batch).sum()
            grads = torch.autograd.grad(total, leaves, create_graph=not first_order,
                                        allow_unused=True)
        return {k: torch.zeros_like(leaf) if g is None else g
                for k, leaf, g in zip(keys, leaves, grads)}

    return gradient


def adapt_path(
    loss_fn: LossFn,
    params: Params,
    batch: Any,
    *,
    steps: int,
    lr: LearningRate,
) -> list[Params]:
    """Parameters after 0, 1, ..., ``steps`` inner steps (for evaluation curves).

    The path is computed without building second-order graphs: it is meant for measuring
    post-adaptation performance, not for differentiating it.
    """
    path = [{k: v.detach() for k, v in params.items()}]
    for alpha in step_sizes(lr, steps):
        path.append(adapt(loss_fn, path[-1], batch, steps=1, lr=[alpha], first_order=True))
    return path

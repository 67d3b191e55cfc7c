"""Plain per-task reference implementations, independent of :mod:`metarl.core.adapt`.

These are written the way MAML is usually written by hand (learn2learn style): a Python loop
over tasks, ``torch.autograd.grad(create_graph=True)`` for the inner step. They exist so that
tests can check the vectorised path against a computation that shares none of its code, and so
that the benchmarks can time our path against the common baseline in the same run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metarl.core.functional import LossFn, Params, index_tasks


def loop_adapt(
    loss_fn: LossFn,
    params: Params,
    batch: Any,
    steps: int,
    lr: float,
    first_order: bool = False,
) -> Params:
    """Inner SGD with ``torch.autograd.grad``; ``params`` must require grad."""
    keys = list(params)
    for _ in range(steps):
        loss = loss_fn(params, batch)
        grads = torch.autograd.grad(
            loss, [params[k] for k in keys], create_graph=not first_order, allow_unused=True
        )
        params = {
            k: params[k] if g is None else params[k] - lr * (g.detach() if first_order else g)
            for k, g in zip(keys, grads)
        }
    return params


def loop_maml_loss(
    loss_fn: LossFn,
    params: Params,
    support: Any,
    query: Any,
    n_tasks: int,
    steps: int,
    lr: float,
    first_order: bool = False,
) -> Tensor:
    """Mean query loss after adaptation, one task at a time."""
    total = torch.zeros((), dtype=next(iter(params.values())).dtype)
    for i in range(n_tasks):
        adapted = loop_adapt(loss_fn, params, index_tasks(support, i), steps, lr, first_order)
        total = total + loss_fn(adapted, index_tasks(query, i))
    return total / n_tasks

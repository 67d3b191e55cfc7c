"""The task-sampling protocol shared by every supervised family.

A task sampler draws a meta-batch of tasks from a ``numpy.random.Generator`` the caller owns
(no hidden global randomness: the same generator state gives the same tasks) and returns the
support and query batches already stacked along a leading task axis, on the device the model
lives on, ready for :func:`torch.func.vmap`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
from torch import nn

from metarl.core.functional import LossFn, Params, TaskLossesFn, split_params, with_fixed
from metarl.core.meta import MetricFn


class TaskBatch(NamedTuple):
    """Support and query data of a meta-batch; every tensor has a leading task axis."""

    support: Any
    query: Any


class TaskSampler(Protocol):
    """Anything that draws a stacked meta-batch of tasks from a caller-owned generator."""

    def sample(self, n_tasks: int, rng: np.random.Generator) -> TaskBatch:
        """Draw ``n_tasks`` tasks; the result depends only on ``rng``'s state."""
        ...


@dataclass
class SupervisedProblem:
    """Everything the shared meta-training loop needs to know about a task family.

    Attributes:
        model: the network; its parameters are the meta-parameters θ.
        loss_fn: ``(params, (x, y)) -> scalar``, the inner and the query loss (mean over
            examples; the presets scale MAML's step sizes, given for the original code's
            sums, to it).
        metric_fn: optional ``(params, (x, y)) -> {name: scalar}`` (e.g. accuracy).
        splits: a task sampler per split, at least ``"train"`` and ``"test"``
            (``"val"`` is used for periodic evaluation when present).
        task_losses: optional ``loss_fn`` for task-stacked parameters (per-task losses);
            when present, the vectorised meta-gradient uses it instead of vmap
            (``metarl.core.adapt.adapt(..., autograd=True)``).
        outer_only: names of parameters the inner loop leaves as they are; they are
            meta-learned by the outer update alone (e.g. the original code's batch-norm
            offsets, :func:`metarl.supervised.models.outer_only_names`). Empty: every
            parameter is a fast weight.
    """

    model: nn.Module
    loss_fn: LossFn
    metric_fn: MetricFn | None
    splits: dict[str, TaskSampler]
    task_losses: TaskLossesFn | None = None
    outer_only: tuple[str, ...] = ()

    def inner_view(self, params: Params) -> InnerView:
        """The problem as the inner loop sees it, for parameters ``params`` (all of them).

        The returned functions take the fast weights alone and supply ``params``'s
        outer-only entries themselves, so that :func:`metarl.core.adapt.adapt` (and everything
        built on it: the MAML objective, the evaluation curves) adapts the fast weights only,
        while a loss computed through them still depends on -- and back-propagates to -- the
        outer-only parameters. Without outer-only parameters this is the problem itself.
        """
        if not self.outer_only:
            return InnerView(params, self.loss_fn, self.metric_fn, self.task_losses)
        fast, fixed = split_params(params, self.outer_only)
        metric_fn = None if self.metric_fn is None else with_fixed(self.metric_fn, fixed)
        # the stacked loss would need task-stacked copies of the fixed tensors: use vmap
        return InnerView(fast, with_fixed(self.loss_fn, fixed), metric_fn, None)


class InnerView(NamedTuple):
    """What :meth:`SupervisedProblem.inner_view` returns: the fast weights and the problem's
    functions of them."""

    fast: Params
    loss_fn: LossFn
    metric_fn: MetricFn | None
    task_losses: TaskLossesFn | None

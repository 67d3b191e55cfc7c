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

from metarl.functional import LossFn, TaskLossesFn
from metarl.meta import MetricFn


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
            examples; see ``docs/conventions.md`` for the step-size conversion).
        metric_fn: optional ``(params, (x, y)) -> {name: scalar}`` (e.g. accuracy).
        splits: a task sampler per split, at least ``"train"`` and ``"test"``
            (``"val"`` is used for periodic evaluation when present).
        task_losses: optional ``loss_fn`` for task-stacked parameters (per-task losses);
            when present, the vectorised meta-gradient uses it instead of vmap
            (:func:`metarl.adapt.adapt_stacked`).
    """

    model: nn.Module
    loss_fn: LossFn
    metric_fn: MetricFn | None
    splits: dict[str, TaskSampler]
    task_losses: TaskLossesFn | None = None

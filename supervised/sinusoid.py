"""Sinusoid regression, the toy problem of MAML section 5.1.

A task is ``y = A sin(x − φ)`` with amplitude ``A ~ U[0.1, 5.0]`` and phase ``φ ~ U[0, π]``;
inputs are ``x ~ U[−5, 5]``. The learner sees K (x, y) pairs of a new task and must predict the
whole curve. The loss is the mean squared error; the original code (cbfinn/maml,
``utils.mse``) also averages, so the paper's α = 0.01 applies unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from metarl.core.functional import Params, functional_loss
from metarl.errors import require
from metarl.supervised.models import MLP, MlpInit
from metarl.supervised.tasks import SupervisedProblem, TaskBatch

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)


@dataclass(frozen=True)
class SinusoidTask:
    """One regression task: ``y = amplitude · sin(x − phase)``."""

    amplitude: float
    phase: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.amplitude * np.sin(x - self.phase)


class SinusoidTasks:
    """Task sampler for sinusoid regression (a :class:`metarl.supervised.tasks.TaskSampler`).

    Args:
        k_shot: support points per task (K).
        k_query: query points per task (the paper's code draws K more; evaluation uses more
            to measure the MSE over the input range with less noise).
        device, dtype: where and in which precision the batches are built.
    """

    def __init__(
        self,
        k_shot: int,
        k_query: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        require(k_shot >= 1, f"--k-shot must be at least 1, got {k_shot}")
        require(k_query >= 1, f"--k-query must be at least 1, got {k_query}")
        self.k_shot = k_shot
        self.k_query = k_query
        self.device = torch.device(device)
        self.dtype = dtype

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[SinusoidTask]:
        """Draw ``n`` tasks from the paper's distribution."""
        amp = rng.uniform(*AMPLITUDE, size=n)
        phase = rng.uniform(*PHASE, size=n)
        return [SinusoidTask(float(a), float(p)) for a, p in zip(amp, phase)]

    def batch_for(self, tasks: list[SinusoidTask], rng: np.random.Generator) -> TaskBatch:
        """Support/query points for given tasks: tensors ``[T, K, 1]``."""
        amp = np.array([t.amplitude for t in tasks])[:, None]
        phase = np.array([t.phase for t in tasks])[:, None]
        x = rng.uniform(*X_RANGE, size=(len(tasks), self.k_shot + self.k_query))
        y = amp * np.sin(x - phase)

        def to(a: np.ndarray) -> Tensor:
            return torch.as_tensor(a[..., None], dtype=self.dtype, device=self.device)

        k = self.k_shot
        return TaskBatch(support=(to(x[:, :k]), to(y[:, :k])), query=(to(x[:, k:]), to(y[:, k:])))

    def sample(self, n_tasks: int, rng: np.random.Generator) -> TaskBatch:
        return self.batch_for(self.sample_tasks(n_tasks, rng), rng)


def sinusoid_problem(
    k_shot: int,
    k_query: int,
    eval_query: int = 100,
    hidden: tuple[int, ...] = (40, 40),
    device: str | torch.device = "cpu",
    init: MlpInit = "torch",
) -> SupervisedProblem:
    """The MLP 1-40-40-1 regressor with MSE loss, and samplers for every split.

    Train batches use ``k_query`` query points (as in the original code); validation and test
    tasks are scored on ``eval_query`` points spread over [−5, 5]. Sinusoid tasks are drawn
    fresh, so the splits differ only in the seed they are drawn with.
    """
    model = MLP(1, hidden, 1, init=init)
    loss_fn = functional_loss(model, nn.functional.mse_loss)

    def task_losses(params: Params, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch  # [T, N, 1] each, params with a leading task axis
        return (model.forward_with(params, x) - y).square().flatten(1).mean(1)

    evals = SinusoidTasks(k_shot, eval_query, device)
    return SupervisedProblem(
        model=model,
        loss_fn=loss_fn,
        metric_fn=None,
        splits={"train": SinusoidTasks(k_shot, k_query, device), "val": evals, "test": evals},
        task_losses=task_losses,
    )

"""Few-shot evaluation: performance after 0, 1, ..., S adaptation steps on held-out tasks.

This is the measurement behind MAML's Figure 3 / appendix Table 2 (sinusoid MSE against the
number of gradient steps) and Table 1 (classification accuracy over 600 test episodes, with a
95% confidence interval). Tasks are drawn from a generator seeded by the caller, so every
algorithm can be evaluated on exactly the same tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarl.core.adapt import LearningRate, adapt_path
from metarl.core.functional import LossFn, Params, detach, index_tasks
from metarl.core.meta import MetricFn, query_loss_and_metrics
from metarl.core.stats import mean_ci95
from metarl.supervised.tasks import TaskSampler


def _task_curve(
    loss_fn: LossFn,
    metric_fn: MetricFn | None,
    params: Params,
    support: Any,
    query: Any,
    steps: int,
    lr: LearningRate,
) -> dict[str, Tensor]:
    path = adapt_path(loss_fn, params, support, steps=steps, lr=lr)
    out: dict[str, list[Tensor]] = {}
    for p in path:
        loss, metrics = query_loss_and_metrics(loss_fn, metric_fn, p, query)
        for k, v in {"loss": loss.detach(), **metrics}.items():
            out.setdefault(k, []).append(v)
    return {k: torch.stack(v) for k, v in out.items()}


def summarise(curves: dict[str, np.ndarray]) -> dict[str, Any]:
    """Mean and 95% CI per step for every measured quantity."""
    out: dict[str, Any] = {}
    for name, values in curves.items():
        stats = [mean_ci95(values[:, s]) for s in range(values.shape[1])]
        out[f"{name}_mean"] = [m for m, _ in stats]
        out[f"{name}_ci95"] = [c for _, c in stats]
        out[f"{name}_median"] = [float(np.median(values[:, s])) for s in range(values.shape[1])]
    return out


def evaluate(
    loss_fn: LossFn,
    metric_fn: MetricFn | None,
    params: Params,
    sampler: TaskSampler,
    *,
    n_tasks: int,
    steps: int,
    lr: LearningRate,
    seed: int,
    chunk: int = 100,
    vectorize: bool = True,
) -> dict[str, Any]:
    """Adaptation curve over ``n_tasks`` tasks drawn with ``numpy.random.default_rng(seed)``:
    the query loss and metrics of every task after 0..steps steps, summarised per step.

    Tasks are adapted ``chunk`` at a time, in one vmap call (``vectorize``) or one by one.
    """
    theta = detach(params)
    rng = np.random.default_rng(seed)
    pieces: dict[str, list[np.ndarray]] = {}
    done = 0
    while done < n_tasks:
        n = min(chunk, n_tasks - done)
        batch = sampler.sample(n, rng)
        if vectorize:
            curves = torch.func.vmap(
                lambda s, q: _task_curve(loss_fn, metric_fn, theta, s, q, steps, lr)
            )(batch.support, batch.query)
        else:
            per = [
                _task_curve(
                    loss_fn,
                    metric_fn,
                    theta,
                    index_tasks(batch.support, i),
                    index_tasks(batch.query, i),
                    steps,
                    lr,
                )
                for i in range(n)
            ]
            curves = {k: torch.stack([c[k] for c in per]) for k in per[0]}
        for k, v in curves.items():
            pieces.setdefault(k, []).append(v.detach().double().cpu().numpy())
        done += n
    lr_out: float | list[float] = (
        float(lr) if isinstance(lr, (int, float)) else [float(x) for x in lr]  # type: ignore[union-attr]
    )
    return {"n_tasks": n_tasks, "steps": list(range(steps + 1)), "inner_lr": lr_out,
            **summarise({k: np.concatenate(v) for k, v in pieces.items()})}


def tune_step_size(
    loss_fn: LossFn,
    params: Params,
    sampler: TaskSampler,
    *,
    candidates: Sequence[float],
    n_tasks: int,
    steps: int,
    seed: int,
) -> tuple[float, dict[float, float]]:
    """Pick the fine-tuning step size with the lowest query loss averaged over 1..steps.

    This is how the paper's "pretrained" baseline is given "a tuned step size" (section 5.1):
    chosen on validation tasks, then reported on the test tasks.
    """
    scores: dict[float, float] = {}
    for lr in candidates:
        result = evaluate(loss_fn, None, params, sampler, n_tasks=n_tasks, steps=steps, lr=lr,
                          seed=seed)
        score = float(np.mean(result["loss_mean"][1:]))
        scores[lr] = score if np.isfinite(score) else float("inf")
    best = min(scores, key=scores.__getitem__)
    return best, scores

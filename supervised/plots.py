"""Sinusoid-specific figures: predictions on one task before and after adaptation (Figure 2)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.func import functional_call  # noqa: E402

from metarl.core.adapt import adapt_path  # noqa: E402
from metarl.core.functional import Params, detach  # noqa: E402
from metarl.runs.plotting import save_figure  # noqa: E402
from metarl.supervised.sinusoid import X_RANGE, SinusoidTask, SinusoidTasks  # noqa: E402
from metarl.supervised.tasks import SupervisedProblem  # noqa: E402


def plot_sinusoid_predictions(
    models: Sequence[tuple[str, SupervisedProblem, Params]],
    path: Path,
    *,
    k_shot: int,
    lr: float | Sequence[float],
    steps: Sequence[int] = (0, 1, 10),
    seed: int = 0,
) -> Path:
    """One panel per model: the true curve, the K support points, and predictions after
    each of ``steps`` gradient steps on those points (the paper's Figure 2)."""
    rng = np.random.default_rng(seed)
    sampler = SinusoidTasks(k_shot, 1)
    task: SinusoidTask = sampler.sample_tasks(1, rng)[0]
    batch = sampler.batch_for([task], rng)
    xs = np.linspace(X_RANGE[0], X_RANGE[1], 300)
    lrs = list(lr) if isinstance(lr, Sequence) else [lr] * len(models)
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), squeeze=False)
    for ax, (label, problem, params), alpha in zip(axes[0], models, lrs):
        device = next(iter(params.values())).device
        support = tuple(t[0].to(device) for t in batch.support)
        path_params = adapt_path(problem.loss_fn, detach(params), support, steps=max(steps),
                                 lr=alpha)
        grid = torch.as_tensor(xs[:, None], dtype=torch.float32, device=device)
        ax.plot(xs, task(xs), "r", lw=2, label="ground truth")
        for s in steps:
            with torch.no_grad():
                pred = functional_call(problem.model, path_params[s], (grid,))
            style = ":" if s == 0 else "--" if s == 1 else "-"
            ax.plot(xs, pred.cpu().numpy()[:, 0], style, label=f"after {s} step(s)")
        ax.plot(support[0].cpu().numpy()[:, 0], support[1].cpu().numpy()[:, 0], "k^", ms=8,
                label=f"{k_shot} points used for gradient")
        ax.set_title(f"{label}, K={k_shot}, α={alpha:g}")
        ax.set_ylim(-6, 6)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return save_figure(fig, path)

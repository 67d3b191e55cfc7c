"""PNG plots a user looks at after a run: training curves and adaptation curves.

Matplotlib is used with the non-interactive Agg backend, so plotting works on headless
machines and in CI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from metarl.runs.io import atomic_write_bytes  # noqa: E402


def save_figure(fig: Any, path: Path) -> Path:
    """Render ``fig`` to PNG and write it atomically."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


@dataclass(frozen=True)
class Panel:
    """One panel of a training figure: the metrics.jsonl tags it draws, each with its label.

    A tag may end in ``*`` to take every tag with that prefix (``val/return_after_*``), its
    label's ``*`` replaced by the rest of each tag's name (``0 steps``)."""

    title: str
    ylabel: str
    tags: tuple[tuple[str, str], ...]
    """``(tag, label)`` pairs, drawn in this order."""


FEW_POINTS = 30
"""A series with fewer points than this is drawn with a marker at each point (a validation
curve every few hundred iterations, a short run), so that single points stay visible."""


def _series(records: Sequence[dict[str, Any]], panel: Panel) -> list[tuple[str, list, list]]:
    """``(label, iterations, values)`` for every tag of ``panel`` that the records hold."""
    found = []
    for tag, label in panel.tags:
        names = [tag]
        if tag.endswith("*"):
            names = sorted({k for r in records for k in r if k.startswith(tag[:-1])},
                           key=lambda k: (len(k), k))
        for name in names:
            pts = [(r["step"], r[name]) for r in records if r.get(name) is not None]
            if pts:
                steps, values = zip(*pts)
                rest = name[len(tag) - 1:].replace("_", " ")
                shown = label.replace("*", rest) if tag.endswith("*") else label
                found.append((shown, list(steps), list(values)))
    return found


def default_panels(records: Sequence[dict[str, Any]]) -> list[Panel]:
    """One panel per logged quantity (``train/*``, ``val/*``, …) but the time split and the
    RL reward terms, which stay in TensorBoard and metrics.jsonl."""
    tags = sorted({k for r in records for k in r
                   if k != "step" and not k.startswith(("time/", "reward_terms/"))})
    return [Panel(tag, tag.split("/")[-1].replace("_", " "), ((tag, tag),)) for tag in tags]


def plot_training_curves(records: Sequence[dict[str, Any]], path: Path, title: str,
                         panels: Sequence[Panel] | None = None) -> Path:
    """The training figure: ``panels`` (default: :func:`default_panels`) against the
    iteration, at most three per row; a panel whose tags were never logged is left out."""
    chosen = [(panel, _series(records, panel))
              for panel in (default_panels(records) if panels is None else panels)]
    chosen = [(panel, series) for panel, series in chosen if series] or \
        [(Panel(title, "", ()), [])]
    cols = min(len(chosen), 3 if panels is None else 2)
    rows = (len(chosen) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, (panel, series) in zip(axes.flat, chosen):
        for label, steps, values in series:
            marker = "o" if len(steps) < FEW_POINTS else None
            ax.plot(steps, values, lw=1.2, marker=marker, ms=3, label=label)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(chosen):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_adaptation_curves(
    curves: Sequence[tuple[str, dict[str, Any]]],
    path: Path,
    *,
    metric: str = "loss",
    ylabel: str = "loss",
    title: str = "",
) -> Path:
    """Mean ± 95% CI of ``metric`` against the number of gradient steps (MAML Figure 3/5).

    With more than four curves the legend goes beside the axes, where it hides no curve."""
    beside = len(curves) > 4
    fig, ax = plt.subplots(figsize=(8, 4) if beside else (5.5, 4))
    for label, res in curves:
        mean = np.asarray(res[f"{metric}_mean"], dtype=float)
        ci = np.asarray(res[f"{metric}_ci95"], dtype=float)
        steps = np.asarray(res.get("steps", range(len(mean))))
        if res.get("oracle"):  # an upper bound: it knows the task and needs no adaptation
            ax.axhline(mean[0], ls="--", color="grey", label=f"{label} (no adaptation)")
            continue
        ax.plot(steps, mean, marker="o", ms=3, label=label)
        ax.fill_between(steps, mean - ci, mean + ci, alpha=0.2)
    ax.set_xlabel("number of gradient steps")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if beside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    else:
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_seed_spread(
    summary: dict[str, Any],
    labels: Sequence[str],
    path: Path,
    *,
    ylabel: str = "average return",
    title: str = "",
) -> Path:
    """Each training seed's return against adaptation steps (thin), their mean (bold), their
    median (dashed; one failed seed drags the mean far off) and the reference values if the
    summary has them (:func:`metarl.rl.evaluation.summarize_seeds`).

    A second panel repeats the steps from 1 on, where the seeds' spread is a small fraction
    of the step-0 scale (navigation: −40 before adaptation, −4 after two steps)."""
    steps = np.asarray(summary["steps"])
    per_seed = np.asarray(summary["per_seed"], dtype=float)
    mean = np.asarray(summary["mean"], dtype=float)
    median = np.asarray(summary["median"], dtype=float)
    ref = np.asarray(summary.get("reference") or [], dtype=float)
    views = [steps >= steps.min()]
    if (steps >= 1).sum() >= 2 and steps.min() < 1:
        views.append(steps >= 1)
    fig, axes = plt.subplots(1, len(views), figsize=(5.2 * len(views), 4), squeeze=False)
    for ax, keep in zip(axes.flat, views):
        for label, row in zip(labels, per_seed):
            ax.plot(steps[keep], row[keep], lw=0.9, alpha=0.6, marker=".", label=label)
        ax.plot(steps[keep], mean[keep], lw=2.4, color="black",
                label=f"mean of {summary['num_seeds']} seeds")
        ax.plot(steps[keep], median[keep], lw=2.0, ls="--", color="black", label="median")
        shown = keep[:len(ref)]
        if shown.any():
            ax.plot(steps[:len(ref)][shown], ref[shown], ls="none", marker="*", ms=11,
                    color="crimson", label="reference")
        ax.set_xlabel("number of gradient steps")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes.flat[0].set_title(title)
    axes.flat[-1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_step_anatomy(rows: Sequence[dict[str, Any]], path: Path, *, max_kl: float,
                      title: str = "") -> Path:
    """Per iteration, the quadratic KL models of a TRPO step and the three gains that
    multiply to how far it moves the pre-update policy (:mod:`metarl.rl.analysis`)."""
    it = [r["iteration"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.4, 4))
    for key, label in (("kl_adapted", "adapted policies (the constraint)"),
                       ("kl_initial_support", "pre-update policy, support states"),
                       ("kl_initial", "pre-update policy, exact after the line search")):
        left.plot(it, [r[key] for r in rows], marker="o", ms=3, label=label)
    left.axhline(max_kl, color="grey", ls="--", lw=1, label="δ")
    left.axhline(5 * max_kl, color="crimson", ls=":", lw=1, label="5 δ (drift warning)")
    left.set_ylabel("KL of the proposed step")
    for key, label in (("jacobian_gain", "inner-step Jacobian"),
                       ("parameter_gain", "θ instead of θ'"),
                       ("observation_gain", "support instead of query states"),
                       ("total_gain", "product")):
        right.plot(it, [r[key] for r in rows], marker="o", ms=3, label=label,
                   lw=2.2 if key == "total_gain" else 1.2)
    right.axhline(1.0, color="grey", lw=1)
    right.set_ylabel("gain (pre-update KL / constraint KL)")
    for ax in (left, right):
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)

"""Figures: where the adaptation plot's legend goes."""

from __future__ import annotations

import pytest

import metarl.runs.plotting as plotting


@pytest.mark.parametrize("n, beside", [(3, False), (6, True)])
def test_adaptation_legend_hides_no_curve(tmp_path, monkeypatch, n, beside):
    """Up to four curves share the axes with their legend; more get it beside the axes (the
    HalfCheetah figures: three MAML checkpoints and three baselines)."""
    outside = []
    real_save = plotting.save_figure

    def keep(fig, path):
        fig.canvas.draw()
        ax = fig.axes[0]
        legend, box = ax.get_legend().get_window_extent(), ax.get_window_extent()
        outside.append(legend.x0 >= box.x1)
        return real_save(fig, path)

    monkeypatch.setattr(plotting, "save_figure", keep)
    curves = [(f"curve {i}", {"returns_mean": [float(i), i + 1.0], "returns_ci95": [0.1, 0.1]})
              for i in range(n)]
    out = plotting.plot_adaptation_curves(curves, tmp_path / "a.png", metric="returns")
    assert out.is_file() and outside == [beside]


def _drawn(monkeypatch):
    """Capture the figure plot_training_curves draws instead of writing it."""
    figures = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: figures.append(fig) or path)
    return figures


def test_rl_training_figure_has_its_panels_labels_and_markers(tmp_path, monkeypatch):
    """The RL figure: the four panels in order, labelled axes, one line per series (the
    validation tags expanded from their wildcard), markers only on series with few points, and
    a panel none of whose tags was logged left out."""
    from metarl.rl.trainer import RL_PANELS

    records = [{"step": i, "returns/before_adaptation": -i, "returns/after_adaptation": -i / 2,
                "trpo/kl": 0.01, "trpo/ls_steps": 1, "time/sampling": 1.0, "time/inner": 0.1,
                "time/outer": 2.0, "reward_terms/x": 3.0} for i in range(1, 61)]
    for i in (20, 40, 60):
        records[i - 1].update({"val/return_after_0_steps": -i, "val/return_after_1_steps": 0})
    figures = _drawn(monkeypatch)
    plotting.plot_training_curves(records, tmp_path / "t.png", "run", panels=RL_PANELS)
    axes = [ax for ax in figures[0].axes if ax.axison]
    assert [ax.get_title() for ax in axes] == [p.title for p in RL_PANELS]
    assert all(ax.get_xlabel() == "iteration" and ax.get_ylabel() for ax in axes)
    lines = {line.get_label(): line for line in axes[0].get_lines()}
    assert set(lines) == {"before adaptation (θ)", "after adaptation (θ')",
                          "validation goals, after 0 steps", "validation goals, after 1 steps"}
    assert lines["validation goals, after 0 steps"].get_marker() == "o"  # 3 points
    assert lines["before adaptation (θ)"].get_marker() in ("None", None, "")  # 60 points
    assert [line.get_label() for line in axes[1].get_lines()] == ["adapted policies (constrained)"]

    figures.clear()
    plotting.plot_training_curves([{k: v for k, v in r.items() if not k.startswith("trpo/")}
                                   for r in records], tmp_path / "t.png", "run", panels=RL_PANELS)
    assert [ax.get_title() for ax in figures[0].axes if ax.axison] == [
        "Return per episode", "Time per iteration"]


def test_default_figure_has_a_panel_per_quantity_but_time(tmp_path, monkeypatch):
    records = [{"step": i, "train/loss": 1 / i, "val/accuracy": 0.5, "time/step": 0.1}
               for i in range(1, 4)]
    figures = _drawn(monkeypatch)
    plotting.plot_training_curves(records, tmp_path / "t.png", "run")
    assert [ax.get_title() for ax in figures[0].axes if ax.axison] == ["train/loss",
                                                                        "val/accuracy"]

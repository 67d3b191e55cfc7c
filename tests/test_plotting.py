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

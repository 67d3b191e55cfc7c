"""Smoke tests of scripts/bench_fewshot.py and the few-shot presets."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from metarl.supervised.presets import PRESETS

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_fewshot.py"


@pytest.fixture(scope="module")
def bench():
    """The script's ``main``, imported as a module (tyro resolves its type hints there)."""
    spec = importlib.util.spec_from_file_location("bench_fewshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_fewshot"] = module
    spec.loader.exec_module(module)
    yield module.main
    del sys.modules["bench_fewshot"]


def test_bench_runs_and_checks_the_meta_gradient(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    result = bench(["--meta-batch", "2", "--repeats", "1", "--warmup", "0", "--dtype", "float64",
                    "--threads", "1", "--out", str(out)])
    assert result["grad_rel_error_vs_float64_loop"] < 1e-10
    assert set(result["ms_per_iteration"]) == {"vmap", "loop"}
    assert json.loads(out.read_text())["setting"] == "omniglot-5way-1shot"
    assert "ratio loop/vmap" in capsys.readouterr().out
    assert result["machine"]["torch"] and result["config"]["rounds"] == "3"


def test_a_failed_exactness_check_times_and_writes_nothing(bench, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.modules["bench_fewshot"], "EXACT_TOLERANCE", -1.0)
    with pytest.raises(SystemExit):
        bench(["--meta-batch", "2", "--repeats", "1", "--warmup", "0", "--dtype", "float64",
               "--threads", "1", "--out", str(tmp_path / "bench.json")])
    assert "the vmap path is not exact (nothing was timed)" in capsys.readouterr().err
    assert not (tmp_path / "bench.json").exists()


def test_bench_help_and_clear_errors(bench, capsys):
    with pytest.raises(SystemExit) as exit_help:
        bench(["--help"])
    assert exit_help.value.code == 0
    assert "--compile-mode" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_bad:
        bench(["--setting", "omniglot-3way"])
    assert exit_bad.value.code == 2
    assert "unknown --setting 'omniglot-3way'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench(["--tf32"])
    assert "--tf32 needs --device cuda" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, alpha", [("omniglot-5way-1shot", 0.4), ("omniglot-20way-1shot", 0.1),
                    ("miniimagenet-5way-1shot", 0.01), ("miniimagenet-5way-5shot", 0.01)])
def test_presets_convert_the_papers_step_size_to_a_mean_loss(name, alpha):
    preset = PRESETS[name]
    assert preset["inner_lr"] == pytest.approx(alpha * preset["n_way"])
    assert preset["iterations"] == 60000 and preset["outer_lr"] == 1e-3
    assert preset["meta_batch"] == {"omniglot-5way-1shot": 32, "omniglot-20way-1shot": 16,
                                    "miniimagenet-5way-1shot": 4,
                                    "miniimagenet-5way-5shot": 2}[name]

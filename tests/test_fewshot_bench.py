"""Smoke tests of scripts/benchmarks/bench_fewshot.py and the few-shot presets."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from metarl.supervised.presets import PRESETS

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmarks" / "bench_fewshot.py"


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
    (run,) = result["settings"]
    assert all(c["float64_rel_error"] < 1e-10 for c in run["checks"].values())
    assert set(run["checks"]) == {"batched", "loop"}
    assert set(run["ms_per_iteration"]) == {"batched", "loop", "naive"}
    assert run["chosen"] in ("batched", "loop")
    assert run["naive_over_chosen"] == pytest.approx(
        run["ms_per_iteration"]["naive"] / run["ms_per_iteration"][run["chosen"]])
    assert json.loads(out.read_text())["settings"][0]["setting"] == "omniglot-5way-1shot"
    assert "ratio naive/chosen" in capsys.readouterr().out
    assert result["machine"]["torch"] and result["config"]["rounds"] == "3"


def test_the_hand_written_baseline_is_the_same_network(bench):
    """The naive loop's twin (nn.BatchNorm2d) computes the model's function and meta-gradient."""
    module = sys.modules["bench_fewshot"]
    model = module.conv4_omniglot(5).double()
    twin = module.hand_written_model(model)
    x = torch.rand(6, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(twin(x), model(x), rtol=1e-12, atol=1e-12)
    assert [k for k, _ in twin.named_parameters()] == [k for k, _ in model.named_parameters()]


@pytest.mark.slow
def test_bench_every_preset_shape(bench, capsys):
    result = bench(["--setting", "all", "--meta-batch", "1", "--k-query", "1", "--repeats", "1",
                    "--warmup", "0", "--rounds", "1", "--threads", "1"])
    assert [r["setting"] for r in result["settings"]] == list(sys.modules["bench_fewshot"].SETTINGS)
    assert "naive/chosen" in capsys.readouterr().out


def test_a_failed_exactness_check_times_and_writes_nothing(bench, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.modules["bench_fewshot"], "EXACT_TOLERANCE", -1.0)
    with pytest.raises(SystemExit):
        bench(["--meta-batch", "2", "--repeats", "1", "--warmup", "0", "--dtype", "float64",
               "--threads", "1", "--out", str(tmp_path / "bench.json")])
    assert "the batched path is not exact (nothing was timed)" in capsys.readouterr().err
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

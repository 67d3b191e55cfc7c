"""Smoke runs of scripts/train_supervised.py on the few-shot families (tiny budgets)."""

from __future__ import annotations

import json

import pytest

from metarl.supervised.datafiles import shared_data_dir

from .conftest import run_script

OMNIGLOT = shared_data_dir("omniglot")
TINY = ["--iterations", "4", "--meta-batch", "2", "--eval-every", "2", "--eval-tasks", "4",
        "--test-tasks", "6", "--checkpoint-every", "2", "--eval-inner-steps", "2",
        "--eval-chunk", "3", "--threads", "1"]


@pytest.mark.skipif(not (OMNIGLOT / "images_background.npz").is_file(),
                    reason=f"Omniglot npz not in {OMNIGLOT}")
def test_train_omniglot_preset_end_to_end(tmp_path):
    out = tmp_path / "omniglot"
    proc = run_script("train_supervised.py", "--preset", "omniglot-5way-1shot", *TINY,
                      "--data-root", str(OMNIGLOT), "--out-dir", str(out))
    assert "maml on omniglot: test accuracy over 6 tasks" in proc.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["n_way"] == 5 and res["iterations"] == 4
    assert res["config"]["inner_lr"] == 2.0 and res["config"]["k_query"] == 1
    assert len(res["test"]["accuracy_mean"]) == 3
    assert all(0.0 <= a <= 1.0 for a in res["test"]["accuracy_mean"])
    assert (out / "training.png").is_file() and (out / "adaptation.png").is_file()


def test_train_miniimagenet_without_cache_is_one_clear_error(tmp_path):
    proc = run_script("train_supervised.py", "--preset", "miniimagenet-5way-1shot", *TINY,
                      "--data-root", str(tmp_path), "--out-dir", str(tmp_path / "run"),
                      check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ")
    assert "miniimagenet_train.npz not found; convert the images first" in proc.stderr
    assert "Traceback" not in proc.stderr

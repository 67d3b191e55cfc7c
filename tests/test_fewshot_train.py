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


@pytest.mark.skipif(not (OMNIGLOT / "images_background.npz").is_file(),
                    reason=f"Omniglot npz not in {OMNIGLOT}")
def test_original_batch_norm_trains_resumes_and_evaluates(tmp_path):
    """--batch-norm original end to end: the shifts are learned by the outer update, kept by
    the inner loop; a run from before the flag (no batch_norm in config.json) resumes."""
    import torch

    from metarl.runs.checkpoint import load_checkpoint

    out = tmp_path / "omniglot"
    common = ["--preset", "omniglot-5way-1shot", *TINY, "--data-root", str(OMNIGLOT),
              "--out-dir", str(out)]
    run_script("train_supervised.py", *common, "--batch-norm", "original")
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["batch_norm"] == "original"
    state = load_checkpoint(out / "checkpoints" / "ckpt_00000004.pt")
    assert "blocks.0.norm.weight" not in state["model"]
    assert float(state["model"]["blocks.0.norm.bias"].abs().sum()) > 0  # learned from zero
    proc = run_script("evaluate.py", "--run-dir", str(out), "--tasks", "4", "--steps", "1",
                      "--out", str(tmp_path / "eval.json"))
    assert "Traceback" not in proc.stderr
    assert len(json.loads((tmp_path / "eval.json").read_text())["accuracy_mean"]) == 2

    old = tmp_path / "old"  # a fast-norm run whose config.json predates --batch-norm
    old_args = [*common[:-1], str(old)]
    run_script("train_supervised.py", *old_args, "--iterations", "2")
    config = json.loads((old / "config.json").read_text())
    assert config.pop("batch_norm") == "fast"
    (old / "config.json").write_text(json.dumps(config))
    before = load_checkpoint(old / "checkpoints" / "ckpt_00000002.pt")["model"]
    run_script("train_supervised.py", *old_args, "--resume")
    after = load_checkpoint(old / "checkpoints" / "ckpt_00000004.pt")["model"]
    assert not torch.equal(before["blocks.0.norm.weight"], after["blocks.0.norm.weight"])


def test_train_miniimagenet_without_cache_is_one_clear_error(tmp_path):
    proc = run_script("train_supervised.py", "--preset", "miniimagenet-5way-1shot", *TINY,
                      "--data-root", str(tmp_path), "--out-dir", str(tmp_path / "run"),
                      check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ")
    assert ("miniimagenet_train.npz not found; convert the images first with `metarl data "
            "miniimagenet --images-dir DIR`") in proc.stderr
    assert "Traceback" not in proc.stderr

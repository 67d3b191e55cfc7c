"""Bad input across the scripts: each gets one clear message and changes nothing.

docs/bad_inputs.md lists every case with what the user sees; the cases not covered here are
tested beside the code they concern (named in that table).
"""

from __future__ import annotations

import json

import pytest
import torch

from .conftest import call_script

TINY_SIN = ["--preset", "sinusoid", "--iterations", "4", "--meta-batch", "2", "--eval-every",
            "0", "--test-tasks", "4", "--eval-inner-steps", "1", "--checkpoint-every", "2"]
TINY_NAV = ["--preset", "navigation", "--iterations", "1", "--meta-batch", "2",
            "--episodes-per-task", "2", "--horizon", "6", "--hidden-sizes", "8", "--threads", "1"]


def train(out) -> None:
    assert call_script("train_supervised.py", *TINY_SIN, "--out-dir", str(out)).returncode == 0


def one_line_error(proc, fragment: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines


def test_config_that_does_not_parse(tmp_path):
    proc = call_script("train_supervised.py", "--iterations", "abc", "--out-dir",
                      str(tmp_path / "x"))
    assert proc.returncode == 2 and "Error parsing --iterations" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_unknown_family(tmp_path):
    proc = call_script("train_supervised.py", "--family", "mnist", "--out-dir",
                      str(tmp_path / "x"))
    one_line_error(proc, "unknown --family 'mnist'; choose one of sinusoid")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu(tmp_path):
    proc = call_script("train_supervised.py", "--device", "cuda", "--out-dir",
                      str(tmp_path / "x"))
    one_line_error(proc, "no CUDA GPU is available; use --device cpu")
    proc = call_script("train_rl.py", "--device", "cuda", "--out-dir", str(tmp_path / "y"))
    one_line_error(proc, "no CUDA GPU is available; use --device cpu")


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = call_script("train_supervised.py", *TINY_SIN, "--out-dir", str(blocker / "run"))
    one_line_error(proc, "cannot write to output directory")


def test_resume_with_other_settings_and_nothing_to_resume(tmp_path):
    train(tmp_path / "run")
    proc = call_script("train_supervised.py", *TINY_SIN, "--algo", "fomaml", "--resume",
                      "--out-dir", str(tmp_path / "run"))
    one_line_error(proc, "used different settings for algo")
    proc = call_script("train_supervised.py", *TINY_SIN, "--resume", "--out-dir",
                      str(tmp_path / "new"))
    one_line_error(proc, "nothing to resume")


def test_rerun_after_a_run_that_saved_nothing(tmp_path):
    """What a script that failed during setup leaves (its config.json alone) does not make
    the corrected command fail with "already holds a run"."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"algo": "reptile", "seed": 99}))
    proc = call_script("train_supervised.py", *TINY_SIN, "--out-dir", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    assert "starting it afresh" in proc.stdout
    assert (tmp_path / "run" / "results.json").is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["algo"] != "reptile"


def test_checkpoint_of_another_model(tmp_path):
    train(tmp_path / "k5")
    assert call_script("train_rl.py", *TINY_NAV, "--out-dir", str(tmp_path / "nav")).returncode == 0
    rl_ckpt = next((tmp_path / "nav" / "checkpoints").glob("ckpt_*.pt"))
    sup_ckpt = next((tmp_path / "k5" / "checkpoints").glob("ckpt_*.pt"))
    proc = call_script("evaluate.py", "--run-dir", str(tmp_path / "k5"), "--checkpoint",
                      str(rl_ckpt))
    one_line_error(proc, "is not a supervised meta-training checkpoint (train_supervised.py) "
                         "but a MAML-TRPO checkpoint (train_rl.py)")
    proc = call_script("adapt_rl.py", "--checkpoint", str(sup_ckpt))
    one_line_error(proc, "is not a MAML-TRPO checkpoint (train_rl.py) but a supervised")
    proc = call_script("adapt_rl.py", "--policy", str(rl_ckpt))
    one_line_error(proc, "is not a policy file (baselines_rl.py) but a MAML-TRPO checkpoint")
    (tmp_path / "k5" / "checkpoints" / "best.pt").write_bytes(sup_ckpt.read_bytes())
    proc = call_script("adapt_rl.py", "--run-dir", str(tmp_path / "k5"))  # best.pt, then --last
    one_line_error(proc, "best.pt is not a MAML-TRPO checkpoint (train_rl.py) but a supervised")
    proc = call_script("adapt_rl.py", "--run-dir", str(tmp_path / "k5"), "--last")
    one_line_error(proc, "is not a MAML-TRPO checkpoint (train_rl.py) but a supervised")


def test_adapt_rl_needs_exactly_one_source(tmp_path):
    proc = call_script("adapt_rl.py")
    one_line_error(proc, "give exactly one of --run-dir, --checkpoint or --policy")


def test_evaluate_unknown_split(tmp_path):
    train(tmp_path / "run")
    proc = call_script("evaluate.py", "--run-dir", str(tmp_path / "run"), "--split", "holdout",
                      "--tasks", "2")
    one_line_error(proc, "unknown --split 'holdout'")

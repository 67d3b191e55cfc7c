"""Runs survive being killed: SIGKILL at a random point, resume, same parameters as an
uninterrupted run; a damaged newest checkpoint falls back to the previous good one."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import torch

from metarl.checkpoint import CheckpointDir, load_checkpoint

from .conftest import REPO, run_script

SIN = ["--preset", "sinusoid", "--iterations", "300", "--meta-batch", "5", "--k-shot", "5",
       "--eval-every", "100", "--eval-tasks", "20", "--test-tasks", "20",
       "--checkpoint-every", "25", "--eval-inner-steps", "2"]
NAV = ["--preset", "navigation", "--iterations", "8", "--meta-batch", "2",
       "--episodes-per-task", "2", "--horizon", "10", "--hidden-sizes", "16", "--threads", "1",
       "--checkpoint-every", "1"]


def final_state(run_dir, key: str) -> dict:
    last = CheckpointDir(run_dir / "checkpoints").list()[-1][1]
    return load_checkpoint(last)[key]


def kill_at_random_point(script: str, args: list[str], out, seed: int) -> None:
    """Start a run, SIGKILL it after its first checkpoint at a random moment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / script), *args,
                             "--out-dir", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "checkpoints").glob("ckpt_*.pt")):
        time.sleep(0.05)
    time.sleep(random.Random(seed).uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for path in (out / "checkpoints").glob("ckpt_*.pt"):
        load_checkpoint(path)  # every checkpoint file is whole (a torn write stays a temp file)


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def logged(run_dir) -> list[dict]:
    """metrics.jsonl without the wall-clock times (which differ from run to run)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def test_sigkill_then_resume_equals_uninterrupted_supervised(tmp_path):
    run_script("train_supervised.py", *SIN, "--out-dir", str(tmp_path / "straight"))
    kill_at_random_point("train_supervised.py", SIN, tmp_path / "killed", seed=1)
    run_script("train_supervised.py", *SIN, "--out-dir", str(tmp_path / "killed"), "--resume")
    assert not list((tmp_path / "killed" / "checkpoints").glob(".*.tmp")), "stale temp files"
    assert_same(final_state(tmp_path / "straight", "model"),
                final_state(tmp_path / "killed", "model"))
    # the log too: the checkpoint (every 25) holds the logging window in progress (every 50)
    assert logged(tmp_path / "killed") == logged(tmp_path / "straight")


def test_sigkill_then_resume_equals_uninterrupted_rl(tmp_path):
    run_script("train_rl.py", *NAV, "--out-dir", str(tmp_path / "straight"))
    kill_at_random_point("train_rl.py", NAV, tmp_path / "killed", seed=2)
    run_script("train_rl.py", *NAV, "--out-dir", str(tmp_path / "killed"), "--resume")
    assert_same(final_state(tmp_path / "straight", "policy"),
                final_state(tmp_path / "killed", "policy"))
    assert logged(tmp_path / "killed") == logged(tmp_path / "straight")


def test_damaged_newest_checkpoint_falls_back_to_previous(tmp_path):
    args = [*SIN[:3], "100", *SIN[4:]]
    run_script("train_supervised.py", *args, "--out-dir", str(tmp_path / "straight"))
    part = [*SIN[:3], "50", *SIN[4:]]
    run_script("train_supervised.py", *part, "--out-dir", str(tmp_path / "run"))
    newest = tmp_path / "run" / "checkpoints" / "ckpt_00000050.pt"
    newest.write_bytes(newest.read_bytes()[:-10])  # truncated, e.g. by a full disk
    proc = run_script("train_supervised.py", *args, "--out-dir", str(tmp_path / "run"),
                      "--resume")
    assert "skipping damaged checkpoint" in proc.stderr and "truncated" in proc.stderr
    assert "resumed from" in proc.stderr and "ckpt_00000025.pt" in proc.stderr
    assert_same(final_state(tmp_path / "straight", "model"),
                final_state(tmp_path / "run", "model"))

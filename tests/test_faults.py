"""Runs survive being killed: SIGKILL at a random point, resume, same parameters as an
uninterrupted run; a damaged newest checkpoint falls back to the previous good one."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from metarl.runs.checkpoint import CheckpointDir, load_checkpoint, save_checkpoint

from .conftest import REPO, Outcome, call_script, run_script, snapshot
from .test_bad_inputs import one_line_error

SIN = ["--preset", "sinusoid", "--iterations", "300", "--meta-batch", "5", "--k-shot", "5",
       "--eval-every", "100", "--eval-tasks", "20", "--test-tasks", "20",
       "--checkpoint-every", "25", "--eval-inner-steps", "2", "--task-batching", "batched"]
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


TINY_SIN = ["--preset", "sinusoid", "--task-batching", "batched",
            "--k-shot", "5", "--eval-every", "2", "--eval-tasks", "4",
            "--test-tasks", "4", "--eval-inner-steps", "1", "--checkpoint-every", "2",
            "--log-every", "1"]
"""A few-second sinusoid run: a checkpoint and a validation (best.pt) every 2 iterations. The
path is fixed: with ``auto`` two runs compared bit for bit could time their way to different
(equally exact, not bitwise equal) paths on a loaded machine."""


def sin(out, seed: int, iterations: int, *extra: str, meta_batch: int = 2) -> Outcome:
    """train_supervised.py with :data:`TINY_SIN`, in this process."""
    return call_script("train_supervised.py", *TINY_SIN, "--seed", str(seed), "--iterations",
                       str(iterations), "--meta-batch", str(meta_batch), "--out-dir", str(out),
                       *extra)


def nav(out, seed: int, iterations: int, *extra: str) -> Outcome:
    """train_rl.py with :data:`NAV` for ``iterations``, in this process."""
    args = [*NAV[:2], "--iterations", str(iterations), *NAV[4:]]
    return call_script("train_rl.py", *args, "--seed", str(seed), "--out-dir", str(out), *extra)


@pytest.mark.parametrize(
    "stack,ours,theirs,previous,said",
    [
        # another run's checkpoint of the same iteration: only the run id tells
        ("supervised", 6, 6, 4, ("skipping checkpoint that is not this run's",
                                 "written by another run")),
        # the iteration-1 checkpoint of another run as this run's newest
        ("rl", 3, 1, 2, ("holds iteration 1, not the 3 its name says",)),
    ],
)
def test_a_checkpoint_of_another_run_is_skipped_kept_and_never_resumed(
        tmp_path, stack, ours, theirs, previous, said):
    """Issue 34's reproduction: another run's checkpoint (iteration ``theirs``) copied over
    this run's newest (``ours``). The resume skips it with a warning, continues from this run's
    previous checkpoint exactly as an uninterrupted run would (no history lost or made up), and
    keeps the foreign file (set aside when the run reaches its iteration)."""
    train, key = {"supervised": (sin, "model"), "rl": (nav, "policy")}[stack]
    total = ours + 2
    for name, seed, iterations in (("a", 1, ours), ("b", 2, theirs), ("straight", 1, total)):
        assert train(tmp_path / name, seed, iterations).returncode == 0
    run = tmp_path / "a"
    foreign = (tmp_path / "b" / "checkpoints" / f"ckpt_{theirs:08d}.pt").read_bytes()
    (run / "checkpoints" / f"ckpt_{ours:08d}.pt").write_bytes(foreign)
    proc = train(run, 1, total, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert all(words in proc.stderr for words in said), proc.stderr
    assert f"ckpt_{previous:08d}.pt at iteration {previous}" in proc.stderr
    assert (run / "checkpoints" / f"ckpt_{ours:08d}-set-aside.pt").read_bytes() == foreign
    assert_same(final_state(tmp_path / "straight", key), final_state(run, key))
    assert logged(run) == logged(tmp_path / "straight")
    assert json.loads((run / "results.json").read_text())["iterations"] == total


def _other_model_before_run_ids(run) -> None:
    """Newest checkpoint: one of another model from before run ids (nothing tells it apart
    but the model); best.pt from the part of the run after it (the issue's best.pt rename)."""
    ckpts = run / "checkpoints"
    shutil.copy(ckpts / "ckpt_00000006.pt", ckpts / "best.pt")
    (ckpts / "ckpt_00000006.pt").unlink()
    state = load_checkpoint(ckpts / "ckpt_00000004.pt")
    del state["run_id"]
    state["model_signature"] = {k: [*v, 2] for k, v in state["model_signature"].items()}
    save_checkpoint(ckpts / "ckpt_00000004.pt", state)


def _every_checkpoint_damaged(run) -> None:
    for path in (run / "checkpoints").glob("ckpt_*.pt"):
        path.write_bytes(path.read_bytes()[:-10])


@pytest.mark.parametrize("damage,extra,message", [
    (_other_model_before_run_ids, [], "holds a different model"),
    (_every_checkpoint_damaged, [], "is damaged or not this run's"),
    (lambda run: (run / "config.json").write_text("[]"), [], "config.json as a run's settings"),
    (lambda run: None, ["--meta-batch", "3"], "different settings for meta_batch"),
], ids=["other-model", "all-damaged", "config-damaged", "other-settings"])
def test_a_refused_resume_leaves_the_run_folder_as_it_was(tmp_path, damage, extra, message):
    """Every check of a resume comes before any change to the run folder: a refused one
    leaves every file as it was, bytes and modification time (config.json not rewritten,
    results.json not marked unfinished, best.pt not set aside, no temporary deleted)."""
    run = tmp_path / "run"
    assert sin(run, 1, 6).returncode == 0
    damage(run)
    (run / "checkpoints" / ".ckpt_00000008.pt.x1y2.tmp").write_bytes(b"a killed save's")
    before = snapshot(run)
    meta_batch = int(extra[1]) if extra else 2
    one_line_error(sin(run, 1, 8, "--resume", meta_batch=meta_batch), message)
    assert snapshot(run) == before

"""scripts/device/train.sh, the GPU session's training leg, dry-run on CPU with tiny
budgets: a first leg packs both run folders, a second leg resumes from those archives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from metarl.supervised.datafiles import shared_data_dir

from .conftest import REPO

SCRIPT = REPO / "scripts" / "device" / "train.sh"
TINY = ("--meta-batch 2 --episodes-per-task 2 --horizon 10 --hidden-sizes 8 --threads 1 "
        "--eval-every 1000 --checkpoint-every 1")

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("bash", "timeout", "tar")),
                                reason="needs bash, coreutils' timeout and tar")


def leg(work: Path, out: Path, archives: Path, *, iterations: int, end: int = 170,
        presets: str = "halfcheetah-vel halfcheetah-dir",
        tests: bool = False) -> subprocess.CompletedProcess:
    """One leg in ``work`` (its runs/ folder), files to ``out``, run folders from ``archives``;
    the runs end at ``iterations`` (SIGTERM's stop is tested in test_scripts_rl.py)."""
    work.mkdir()
    out.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OUT": str(out), "SKIP_PIP": "1", "DEV": "cpu", "END": str(end), "GRACE": "20",
           "ARCHIVES": str(archives), "EXTRA": f"{TINY} --iterations {iterations}",
           "PRESETS": presets, "TESTS": "1" if tests else ""}
    return subprocess.run(["bash", str(SCRIPT)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=180)


def packed(archive: Path, name: str) -> str:
    """The text of file ``name`` (e.g. results.json) inside a packed run folder."""
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(f"/{name}"))
        return tar.extractfile(member).read().decode()  # type: ignore[union-attr]


def packed_results(archive: Path) -> dict:
    return json.loads(packed(archive, "results.json"))


def test_two_legs_the_second_resuming_from_the_first(tmp_path):
    first = leg(tmp_path / "w1", tmp_path / "out1", tmp_path / "no-archives", iterations=2)
    assert first.returncode == 0, first.stderr
    names = {p.name for p in (tmp_path / "out1").iterdir()}
    assert names == {"machine.txt", "train-hc-vel-v1.log", "train-hc-dir-v1.log",
                     "hc-vel-v1.tgz", "hc-dir-v1.tgz"}
    assert len(names) <= 8  # what the device tool brings back
    done = {n: packed_results(tmp_path / "out1" / f"hc-{n}-v1.tgz") for n in ("vel", "dir")}
    for name, res in done.items():
        assert res["finished"] is True and res["iterations"] == 2, name
        assert res["config"]["env"] == f"metarl/HalfCheetah{name.capitalize()}-v1"
        assert res["config"]["threads"] == 1 and res["config"]["device"] == "cpu"
    archives = tmp_path / "archives"
    archives.mkdir()
    for name in ("vel", "dir"):
        shutil.copy(tmp_path / "out1" / f"hc-{name}-v1.tgz", archives)
    second = leg(tmp_path / "w2", tmp_path / "out2", archives, iterations=3,
                 presets="halfcheetah-dir",
                 tests=True)
    assert second.returncode == 0, second.stderr
    # TESTS=1: the CUDA tests were collected (skipped without a GPU, run on the device).
    machine = (tmp_path / "out2" / "machine.txt").read_text()
    assert "no CUDA device" in machine and "error" not in machine.lower(), machine
    assert not (tmp_path / "out2" / "hc-vel-v1.tgz").exists()  # PRESETS: only that run
    assert "resumed from runs/hc-dir-v1/checkpoints/" in (
        tmp_path / "out2" / "train-hc-dir-v1.log").read_text()
    res = packed_results(tmp_path / "out2" / "hc-dir-v1.tgz")
    assert res["finished"] is True and res["iterations"] == 3
    metrics = packed(tmp_path / "out2" / "hc-dir-v1.tgz", "metrics.jsonl")
    assert [json.loads(line)["step"] for line in metrics.splitlines()] == [1, 2, 3]


def test_too_small_a_budget_is_refused(tmp_path):
    proc = leg(tmp_path / "w", tmp_path / "out", tmp_path / "none", iterations=1, end=2)
    assert proc.returncode == 2 and "raise END" in proc.stderr
    assert not (tmp_path / "w" / "runs" / "hc-vel-v1").exists()


def test_no_presets_runs_the_tests_and_trains_nothing(tmp_path):
    """Every paper-protocol run has finished, so the default leg trains nothing: TESTS=1
    alone runs the CUDA tests (skipped here) and brings back machine.txt."""
    proc = leg(tmp_path / "w", tmp_path / "out", tmp_path / "none", iterations=1, presets="",
               tests=True)
    assert proc.returncode == 0, proc.stderr
    assert "nothing trained" in proc.stdout
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"machine.txt"}
    assert "no CUDA device" in (tmp_path / "out" / "machine.txt").read_text()
    assert not (tmp_path / "w" / "runs").exists()


PLAN = REPO / "scripts" / "device" / "gpu_plan.sh"


@pytest.fixture
def omniglot_root() -> Path:
    """The shared Omniglot files (the test skips without them)."""
    root = shared_data_dir("omniglot")
    if not (root / "images_background.npz").is_file():
        pytest.skip(f"no Omniglot files in {root}")
    return root

PLAN_TINY = {
    "BENCH_EXTRA": "--meta-batch 2 --repeats 1 --warmup 0 --rounds 1 --threads 1",
    "TRAIN_EXTRA": "--meta-batch 2 --eval-every 1 --eval-tasks 2 --test-tasks 2 "
                   "--checkpoint-every 1 --threads 1 --eval-inner-steps 1",
}


def plan_leg(work: Path, out: Path, committed: Path, iterations: int, data: Path, *,
             bench: bool = True) -> subprocess.CompletedProcess:
    """One dry run of the GPU plan on CPU: benchmarks and a training leg with tiny budgets."""
    work.mkdir()
    out.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OUT": str(out), "SKIP_PIP": "1", "DEV": "cpu", "COMPILE": "0", "END": "900",
           "SLOW": "5", "GRACE": "20", "RUN_DIRS": str(committed),
           "RUNS": "omniglot-20way-1shot", "DATA_ROOT": str(data),
           "BENCH": "1" if bench else "0", "BENCH_EXTRA": PLAN_TINY["BENCH_EXTRA"],
           "TRAIN_EXTRA": f"{PLAN_TINY['TRAIN_EXTRA']} --iterations {iterations}"}
    return subprocess.run(["bash", str(PLAN)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=1000)


def test_gpu_plan_dry_run_benchmarks_then_trains_and_resumes_from_the_committed_folder(
        tmp_path, omniglot_root):
    """The GPU plan on CPU: its benchmarks and their exactness checks, then a leg of the first
    pending run packed to come back; unpacked as the committed folder, the next leg resumes
    it; a finished run is passed over."""
    committed = tmp_path / "committed"
    committed.mkdir()
    first = plan_leg(tmp_path / "w1", tmp_path / "out1", committed, 2, omniglot_root)
    assert first.returncode == 0, first.stdout + first.stderr
    out = tmp_path / "out1"
    names = {p.name for p in out.iterdir()}
    assert names == {"machine.txt", "bench-fewshot.log", "bench-fewshot.jsonl",
                     "train-omniglot-20way-1shot.log", "omniglot-20way-1shot.tgz"}
    benches = [json.loads(line) for line in (out / "bench-fewshot.jsonl").read_text().splitlines()]
    assert [b["dtype"] for b in benches] == ["float32", "float64"]
    assert all(c["float64_rel_error"] < 1e-10
               for b in benches for c in b["settings"][0]["checks"].values())
    with tarfile.open(out / "omniglot-20way-1shot.tgz") as tar:
        members = sorted(m.name for m in tar.getmembers())
        tar.extractall(committed, filter="data")
    assert "omniglot-20way-1shot/checkpoints/ckpt_00000002.pt" in members
    assert "omniglot-20way-1shot/checkpoints/best.pt" in members
    assert not [m for m in members if "/tb/" in m or "ckpt_00000001" in m]

    # a leg that SIGTERM stopped leaves its results.json unfinished (test_scripts_supervised.py)
    results = committed / "omniglot-20way-1shot" / "results.json"
    results.write_text(json.dumps({**json.loads(results.read_text()), "finished": False}))
    second = plan_leg(tmp_path / "w2", tmp_path / "out2", committed, 3, omniglot_root,
                      bench=False)
    assert second.returncode == 0, second.stdout + second.stderr
    log = (tmp_path / "out2" / "train-omniglot-20way-1shot.log").read_text()
    assert "resumed from" in log and "iteration 2" in log
    with tarfile.open(tmp_path / "out2" / "omniglot-20way-1shot.tgz") as tar:
        tar.extractall(committed, filter="data")
    assert json.loads((committed / "omniglot-20way-1shot" / "results.json").read_text())[
        "iterations"] == 3
    third = plan_leg(tmp_path / "w3", tmp_path / "out3", committed, 3, omniglot_root,
                     bench=False)
    assert third.returncode == 0 and not (tmp_path / "out3" / "omniglot-20way-1shot.tgz").exists()

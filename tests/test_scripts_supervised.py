"""End-to-end smoke runs of the supervised scripts, and their one-line errors."""

from __future__ import annotations

import json
import shutil

import pytest

from .conftest import call_script, run_script, snapshot

TINY = ["--preset", "sinusoid", "--iterations", "30", "--meta-batch", "5", "--eval-every", "15",
        "--eval-tasks", "10", "--test-tasks", "20", "--checkpoint-every", "10",
        "--eval-inner-steps", "3", "--k-shot", "5"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "maml"
    proc = run_script("train_supervised.py", *TINY, "--out-dir", str(out))
    assert "results:" in proc.stdout
    return out


def test_train_writes_everything(finished_run):
    for name in ("config.json", "results.json", "metrics.jsonl", "training.png",
                 "adaptation.png", "predictions.png"):
        assert (finished_run / name).is_file(), name
    assert list((finished_run / "tb").iterdir())
    assert sorted(p.name for p in (finished_run / "checkpoints").iterdir())[-1] == \
        "ckpt_00000030.pt"
    res = json.loads((finished_run / "results.json").read_text())
    assert res["algo"] == "maml" and res["iterations"] == 30
    assert len(res["test"]["loss_mean"]) == 4 and res["test"]["n_tasks"] == 20


def test_evaluate_and_plot(finished_run, tmp_path):
    proc = run_script("evaluate.py", "--run-dir", str(finished_run), "--steps", "2",
                      "--tasks", "10")
    first = finished_run / "eval-test-2steps-10tasks.json"
    assert first.is_file() and "written to" in proc.stdout
    assert first.with_suffix(".png").stat().st_size > 0
    assert json.loads(first.read_text())["plots"] == [first.with_suffix(".png").name]
    run_script("evaluate.py", "--run-dir", str(finished_run), "--steps", "2", "--tasks", "10")
    assert (finished_run / "eval-test-2steps-10tasks-2.json").is_file(), "never overwrite"
    assert (finished_run / "eval-test-2steps-10tasks-2.png").is_file()
    run_script("plot.py", "--runs", str(finished_run), str(finished_run), "--labels", "a", "b",
               "--out", str(tmp_path / "cmp.png"))
    assert (tmp_path / "cmp.png").is_file() and (tmp_path / "cmp-predictions.png").is_file()
    # A stopped run (results.json without a test evaluation) gets one clear line.
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "results.json").write_text(json.dumps(
        {"family": "sinusoid", "algo": "maml", "iterations": 7, "finished": False}))
    proc = call_script("plot.py", "--runs", str(stopped), "--out", str(tmp_path / "s.png"))
    assert proc.returncode == 2 and "stopped at iteration 7" in proc.stderr, proc.stderr
    assert ("finish it with `metarl train supervised --resume`, or evaluate a checkpoint with "
            "`metarl evaluate`") in proc.stderr
    assert not (tmp_path / "s.png").exists()


def test_pretrained_baseline_tunes_its_step_size(tmp_path):
    out = tmp_path / "pre"
    run_script("train_supervised.py", *TINY, "--algo", "pretrained", "--out-dir", str(out))
    res = json.loads((out / "results.json").read_text())
    assert res["step_size_tuning"]["chosen"] == res["test"]["inner_lr"]
    assert len(res["step_size_tuning"]["scores"]) == 7
    # evaluate.py adapts the baseline with that tuned step size too, and reproduces the test
    # curve with the run's own seed, tasks and checkpoint
    proc = call_script("evaluate.py", "--run-dir", str(out), "--steps",
                       str(len(res["test"]["steps"]) - 1), "--tasks", str(res["test"]["n_tasks"]),
                       "--out", str(tmp_path / "eval.json"))
    assert proc.returncode == 0, proc.stderr
    again = json.loads((tmp_path / "eval.json").read_text())
    assert again["inner_lr"] == res["step_size_tuning"]["chosen"]
    assert again["inner_lr_source"].startswith("tuned on validation")
    assert again["loss_mean"] == pytest.approx(res["test"]["loss_mean"], rel=1e-6)
    # a baseline whose training has not tuned it yet: its own step size, and a warning saying so
    (out / "results.json").write_text(json.dumps({**res, "step_size_tuning": None}))
    proc = call_script("evaluate.py", "--run-dir", str(out), "--steps", "1", "--tasks", "2",
                       "--out", str(tmp_path / "untuned.json"))
    assert proc.returncode == 0 and "holds no tuned step size" in proc.stderr
    untuned = json.loads((tmp_path / "untuned.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert untuned["inner_lr"] == config["inner_lr"]


def test_existing_run_is_never_overwritten(finished_run):
    before = (finished_run / "results.json").read_bytes()
    proc = call_script("train_supervised.py", *TINY, "--out-dir", str(finished_run))
    assert proc.returncode == 2 and "already holds a run; pass --resume" in proc.stderr
    assert (finished_run / "results.json").read_bytes() == before


def test_missing_and_corrupt_checkpoints(finished_run, tmp_path):
    proc = call_script("evaluate.py", "--run-dir", str(finished_run), "--checkpoint",
                      str(tmp_path / "nope.pt"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes((finished_run / "checkpoints" / "ckpt_00000030.pt").read_bytes()[:-100])
    proc = call_script("evaluate.py", "--run-dir", str(finished_run), "--checkpoint", str(bad))
    assert proc.returncode == 2 and "truncated" in proc.stderr


def test_reproduce_sinusoid_smoke(tmp_path):
    args = ["--out-dir", str(tmp_path), "--eval-shots", "5", "10", "--algos", "maml",
            "pretrained", "--iterations", "20", "--test-tasks", "50"]
    proc = run_script("reproduce_sinusoid.py", *args)
    assert "K=5: MAML below pretrained" in proc.stdout
    for name in ("summary.json", "summary.md", "sinusoid-k5.png", "sinusoid-k10-predictions.png"):
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["runs"]) == {"5", "10"}
    assert "step_size_tuning" in summary["runs"]["5"]["pretrained"]
    # A second call reuses the finished runs instead of retraining or overwriting them.
    again = run_script("reproduce_sinusoid.py", *args)
    assert "training into" not in again.stdout
    # A run whose results.json says it was stopped is resumed, then marked finished.
    stopped = tmp_path / "k5-maml" / "results.json"
    stopped.write_text(json.dumps({**json.loads(stopped.read_text()), "finished": False}))
    third = run_script("reproduce_sinusoid.py", "--out-dir", str(tmp_path), "--eval-shots", "5",
                       "--algos", "maml", "--iterations", "20", "--test-tasks", "50")
    assert "K=5 maml: training into" in third.stdout
    assert json.loads(stopped.read_text())["finished"] is True
    # More --iterations than a finished run has done train it on (resumed, not restarted).
    fourth = run_script("reproduce_sinusoid.py", "--out-dir", str(tmp_path), "--eval-shots", "5",
                        "--algos", "maml", "--iterations", "25", "--test-tasks", "50")
    assert "K=5 maml: training into" in fourth.stdout
    assert json.loads(stopped.read_text())["iterations"] == 25


def test_benchmark_smoke(tmp_path):
    proc = run_script("bench_supervised.py", "--repeats", "3", "--warmup", "1", "--rounds", "1",
                      "--threads", "1", "--out", str(tmp_path / "b.json"))
    assert "x the loop" in proc.stdout
    res = json.loads((tmp_path / "b.json").read_text())
    assert set(res["speedup_over_loop"]) == {"vmap", "stacked"}
    assert all(err < 1e-10 for err in res["grad_rel_error_float64"].values())
    assert res["machine"]["cpus_available"] >= 1
    # a preset of another family is refused, not silently used for its shapes
    proc = call_script("bench_supervised.py", "--family", "omniglot", "--preset", "sinusoid")
    assert proc.returncode == 2
    assert "--preset sinusoid is for the sinusoid family, not omniglot" in proc.stderr


def test_resuming_a_finished_run_changes_nothing(finished_run, tmp_path):
    """--resume on a finished run returns its stored results without re-evaluating or
    rewriting anything (config.json, results.json, plots, checkpoints)."""
    run = tmp_path / "maml"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    proc = run_script("train_supervised.py", *TINY, "--out-dir", str(run), "--resume",
                      "--device", "cpu")
    assert "is a finished run (30 iterations); nothing was changed" in proc.stdout
    assert "test loss over 20 tasks" in proc.stdout  # the stored results, printed
    assert snapshot(run) == before

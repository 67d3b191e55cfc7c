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


def test_batch_norm_setting_that_cannot_apply(tmp_path):
    for args, fragment in [
        (["--family", "omniglot", "--batch-norm", "frozen"],
         "unknown --batch-norm 'frozen'; choose fast or original"),
        (["--batch-norm", "original"],
         "--batch-norm original applies to omniglot and miniimagenet"),
        (["--family", "omniglot", "--algo", "reptile", "--batch-norm", "original"],
         "which reptile cannot learn"),
    ]:
        proc = call_script("train_supervised.py", *args, "--out-dir", str(tmp_path / "x"))
        one_line_error(proc, fragment)
        assert not (tmp_path / "x").exists()


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


def test_the_wrong_script_for_a_run_folder(tmp_path):
    """Resuming (or plotting) one script's run with another is named as such, not as a
    list of every differing setting; a --resume of a folder that does not exist creates
    nothing."""
    train(tmp_path / "sin")
    assert call_script("train_rl.py", *TINY_NAV, "--out-dir", str(tmp_path / "nav")).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "sin").rglob("*") if p.is_file()}
    proc = call_script("train_rl.py", *TINY_NAV, "--resume", "--out-dir", str(tmp_path / "sin"))
    one_line_error(proc, "holds a train_supervised.py run, not a train_rl.py one")
    proc = call_script("train_supervised.py", *TINY_SIN, "--resume", "--out-dir",
                       str(tmp_path / "nav"))
    one_line_error(proc, "holds a train_rl.py run, not a train_supervised.py one")
    assert {p: p.read_bytes() for p in (tmp_path / "sin").rglob("*") if p.is_file()} == before
    proc = call_script("plot.py", "--runs", str(tmp_path / "nav"), "--out",
                       str(tmp_path / "figs" / "p.png"))
    one_line_error(proc, "is not a train_supervised.py run; a train_rl.py run's adaptation is "
                         "plotted with plot_rl.py")
    assert not (tmp_path / "figs").exists()  # a bad input leaves no folder behind
    proc = call_script("train_rl.py", *TINY_NAV, "--resume", "--out-dir",
                       str(tmp_path / "a" / "b"))
    one_line_error(proc, "nothing to resume: ")
    assert not (tmp_path / "a").exists()


def test_files_of_the_wrong_kind_for_the_evaluation_scripts(tmp_path):
    """A CSV, a PNG, a truncated JSON or a folder where a results.json, checkpoint or goals
    file belongs; a folder as a figure's --out; an existing seed summary."""
    assert call_script("train_rl.py", *TINY_NAV, "--out-dir", str(tmp_path / "nav")).returncode == 0
    (tmp_path / "r.csv").write_text("task,x,y\n0,0.1,0.2\n")
    (tmp_path / "p.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    (tmp_path / "cut.json").write_text('{"returns_mean": [1')
    for bad, why in (("r.csv", "it is not JSON"), ("p.png", "it is not JSON"),
                     ("cut.json", "it is not JSON")):
        for script, extra in (("plot_rl.py", ["--out", str(tmp_path / "new" / "f.png")]),
                              ("goal_split.py", []),
                              ("seed_summary.py", ["--out-dir", str(tmp_path / "s")]),
                              ("paired_compare.py", [str(tmp_path / bad)])):  # two of it
            proc = call_script(script, "--results", str(tmp_path / bad), *extra)
            one_line_error(proc, f"cannot read {tmp_path / bad} as the results.json of adapt_rl"
                                 f".py or baselines_rl.py (pass their output folder): {why}")
    assert not (tmp_path / "new").exists()  # a bad input leaves no folder behind
    proc = call_script("adapt_rl.py", "--checkpoint", str(tmp_path / "nav"))
    one_line_error(proc, "is a folder, not a checkpoint file")
    proc = call_script("adapt_rl.py", "--run-dir", str(tmp_path / "nav"), "--goals-file",
                       str(tmp_path))
    one_line_error(proc, "is a folder; give a JSON or text file of goals")
    proc = call_script("adapt_rl.py", "--run-dir", str(tmp_path / "nav"), "--goal")
    one_line_error(proc, "--goal needs the goal's values")
    assert not list((tmp_path / "nav").glob("adapt-*"))
    # a seed summary is not overwritten; a file is no --out-dir
    evaluation = ["--num-tasks", "2", "--timesteps", "12", "--steps", "1", "--threads", "1"]
    assert call_script("adapt_rl.py", "--run-dir", str(tmp_path / "nav"), *evaluation,
                       "--out-dir", str(tmp_path / "e")).returncode == 0
    proc = call_script("plot_rl.py", "--results", str(tmp_path / "e"), "--out", str(tmp_path))
    one_line_error(proc, f"--out {tmp_path} is a folder; give a file path")
    summary = ["--results", str(tmp_path / "e"), str(tmp_path / "e")]
    proc = call_script("seed_summary.py", *summary, "--out-dir", str(tmp_path / "s"))
    assert proc.returncode == 0, proc.stderr
    kept = (tmp_path / "s" / "summary.json").read_bytes()
    proc = call_script("seed_summary.py", *summary, "--out-dir", str(tmp_path / "s"))
    one_line_error(proc, "already holds a seed summary; choose another --out-dir")
    assert (tmp_path / "s" / "summary.json").read_bytes() == kept
    proc = call_script("seed_summary.py", *summary, "--out-dir", str(tmp_path / "r.csv"))
    one_line_error(proc, "is a file, not a folder; choose another path")


def test_damaged_checkpoints_when_evaluating(tmp_path):
    """evaluate.py says which newer checkpoint it skipped; a damaged best.pt points adapt_rl.py
    to an earlier checkpoint, not to a --resume it does not have."""
    train(tmp_path / "sin")
    newest = sorted((tmp_path / "sin" / "checkpoints").glob("ckpt_*.pt"))[-1]
    newest.write_bytes(newest.read_bytes()[:-10])
    proc = call_script("evaluate.py", "--run-dir", str(tmp_path / "sin"), "--tasks", "2",
                       "--steps", "1")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: skipping damaged checkpoint: checkpoint {newest} is truncated" in proc.stderr
    assert call_script("train_rl.py", *TINY_NAV, "--out-dir", str(tmp_path / "nav")).returncode == 0
    best = tmp_path / "nav" / "checkpoints" / "best.pt"
    newest = sorted(best.parent.glob("ckpt_*.pt"))[-1]
    best.write_bytes(newest.read_bytes()[:-10])
    proc = call_script("adapt_rl.py", "--run-dir", str(tmp_path / "nav"))
    one_line_error(proc, "is truncated")
    assert "use an earlier checkpoint of its run" in proc.stderr


def test_unknown_allocator_setting(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("METARL_MALLOC", "glibc")
    proc = call_script("train_supervised.py", *TINY_SIN, "--out-dir", str(tmp_path / "x"))
    one_line_error(proc, "METARL_MALLOC='glibc' is not a known allocator setting")
    assert not (tmp_path / "x").exists()


def test_bench_distributed_too_few_iterations(tmp_path):
    out = tmp_path / "dist.json"
    proc = call_script("bench_distributed.py", "--workloads", "sinusoid", "--iterations",
                       "sinusoid", "1", "--out", str(out))
    one_line_error(proc, "--iterations must be at least 2 per workload")
    assert not out.exists()

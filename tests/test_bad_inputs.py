"""Bad input across the scripts: each gets one clear message and changes nothing.

docs/bad_inputs.md lists every case with what the user sees; the cases not covered here are
tested beside the code they concern (named in that table).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
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


@pytest.mark.parametrize(
    "script,flag,value,choices",
    [
        ("train_supervised.py", "--task-batching", "fast", ("auto", "batched", "loop")),
        ("train_supervised.py", "--family", "mnist", ("sinusoid", "omniglot", "miniimagenet")),
        ("train_supervised.py", "--algo", "maml2", ("maml", "fomaml", "reptile", "pretrained")),
        ("train_supervised.py", "--batch-norm", "frozen", ("fast", "original")),
        ("train_rl.py", "--env", "metarl/Nope-v0", ("metarl/Navigation2D-v0", "metarl/AntPos-v1")),
        ("train_rl.py", "--inner-loss", "dice", ("reinforce", "lvc")),
        ("train_rl.py", "--batch", "trajectories", ("steps", "episodes")),
        ("train_rl.py", "--inner-batches", "reused", ("shared", "fresh")),
        ("train_rl.py", "--select-best", "best", ("validation", "train-return", "last")),
        ("train_rl.py", "--trpo.trust-region", "initial", ("adapted", "adapted+initial")),
    ],
)
def test_a_value_a_choice_option_does_not_have(tmp_path, script, flag, value, choices):
    """tyro's framed message, status 2: it names the flag, the value and the choices."""
    proc = call_script(script, flag, value, "--out-dir", str(tmp_path / "x"))
    said = " ".join(proc.stderr.replace("│", " ").split())  # the box, folded into words
    assert proc.returncode == 2 and f"invalid choice '{value}' for argument '{flag}'" in said
    assert all(repr(choice) in said for choice in choices), said
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "script,args,message",
    [
        ("train_supervised.py", ["--k-shot", "-3"], "--k-shot must be at least 1, got -3"),
        ("train_supervised.py", ["--preset", "nope"], "unknown --preset 'nope'; choose one of"),
        ("train_supervised.py", ["--device", "tpu"], "unknown --device 'tpu'"),
        ("train_rl.py", ["--preset", "walker"], "unknown --preset 'walker'; choose one of"),
        ("train_rl.py", ["--meta-batch", "0"], "--meta-batch must be at least 1"),
        ("train_rl.py", ["--later-inner-lr", "0"],
         "--later-inner-lr must be a positive number, got 0.0"),
    ],
)
def test_a_bad_training_setting_is_one_clear_line(tmp_path, script, args, message):
    proc = call_script(script, *args, "--out-dir", str(tmp_path / "x"))
    one_line_error(proc, message)
    assert not (tmp_path / "x").exists()


def test_batch_norm_setting_that_cannot_apply(tmp_path):
    for args, fragment in [
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
    one_line_error(proc, "is not a supervised meta-training checkpoint (metarl train "
                         "supervised) but a MAML-TRPO checkpoint (metarl train rl); use it "
                         "with the command that wrote it")
    proc = call_script("adapt_rl.py", "--checkpoint", str(sup_ckpt))
    one_line_error(proc, "is not a MAML-TRPO checkpoint (metarl train rl) but a supervised")
    proc = call_script("adapt_rl.py", "--policy", str(rl_ckpt))
    one_line_error(proc, "is not a policy file (metarl baselines) but a MAML-TRPO checkpoint")
    (tmp_path / "k5" / "checkpoints" / "best.pt").write_bytes(sup_ckpt.read_bytes())
    proc = call_script("adapt_rl.py", "--run-dir", str(tmp_path / "k5"))  # best.pt, then --last
    one_line_error(proc, "best.pt is not a MAML-TRPO checkpoint (metarl train rl) but a supervised")
    proc = call_script("adapt_rl.py", "--run-dir", str(tmp_path / "k5"), "--last")
    one_line_error(proc, "is not a MAML-TRPO checkpoint (metarl train rl) but a supervised")


def test_adapt_rl_needs_exactly_one_source(tmp_path):
    proc = call_script("adapt_rl.py")
    one_line_error(proc, "give exactly one of --run-dir, --pretrained, --checkpoint or --policy")


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
    one_line_error(proc, "holds a `metarl train supervised` run, not a `metarl train rl` "
                         "one; resume it with `metarl train supervised` or choose")
    proc = call_script("train_supervised.py", *TINY_SIN, "--resume", "--out-dir",
                       str(tmp_path / "nav"))
    one_line_error(proc, "holds a `metarl train rl` run, not a `metarl train supervised` "
                         "one; resume it with `metarl train rl` or choose")
    assert {p: p.read_bytes() for p in (tmp_path / "sin").rglob("*") if p.is_file()} == before
    proc = call_script("plot.py", "--runs", str(tmp_path / "nav"), "--out",
                       str(tmp_path / "figs" / "p.png"))
    one_line_error(proc, "is not a `metarl train supervised` run; a `metarl train rl` run's "
                         "adaptation is plotted with `metarl plot rl --results <its adapt-* "
                         "folder>`")
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
            one_line_error(proc, f"cannot read {tmp_path / bad} as the results.json of `metarl "
                                 f"adapt` or `metarl baselines` (pass their output folder): "
                                 f"{why}")
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


# --- numbers, outputs and files refused before any work ------------------------------------

EVAL_FAST = ["--tasks", "2", "--steps", "1"]
"""evaluate.py flags for an evaluation of a second."""
ADAPT_FAST = ["--num-tasks", "2", "--timesteps", "12", "--steps", "1", "--threads", "1"]
"""adapt_rl.py flags for an evaluation of a second."""
SEED_RANGE = "must be an integer from 0 to 2^63 - 1"


@pytest.fixture(scope="module")
def sin_run(tmp_path_factory) -> Path:
    """A tiny finished train_supervised.py run, shared by the evaluate.py tests below (each
    writes only outputs of its own names)."""
    out = tmp_path_factory.mktemp("sin") / "run"
    train(out)
    return out


def no_work(*args, **kwargs):
    """Stands in for an evaluation that a refused command must never start."""
    raise AssertionError("the evaluation ran although its input or output was bad")


@contextlib.contextmanager
def read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``folder`` unwritable for this process, as on a read-only filesystem: by its mode bits
    and, since root writes regardless of those, by creating no file under it (EROFS from
    ``os.open``, which ``tempfile`` and so every atomic write of the scripts goes through)."""
    inside = folder.resolve()
    real_open = os.open

    def refuse_creation(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and Path(os.fsdecode(path)).resolve().is_relative_to(inside):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    mode = folder.stat().st_mode
    folder.chmod(0o555)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(os, "open", refuse_creation)
            yield
    finally:
        folder.chmod(mode)


@pytest.mark.parametrize(
    "script,args",
    [
        ("train_supervised.py", [*TINY_SIN, "--seed", "-1"]),
        ("train_supervised.py", [*TINY_SIN, "--seed", str(2**63)]),
        ("train_supervised.py", [*TINY_SIN, "--eval-seed", "-1"]),
        ("train_rl.py", [*TINY_NAV, "--seed", "-1"]),
        ("train_rl.py", [*TINY_NAV, "--seed", str(2**63)]),
        ("train_rl.py", [*TINY_NAV, "--eval-seed", str(2**64)]),
        ("baselines_rl.py", ["--baseline", "random", *ADAPT_FAST, "--seed", "-1"]),
        ("baselines_rl.py", ["--baseline", "random", *ADAPT_FAST, "--train-seed", str(2**63)]),
    ],
)
def test_seed_out_of_range_in_training(tmp_path, script, args):
    """A negative seed or one of 2^63 or more: numpy and torch reject them with a traceback
    deep inside the run (or the run goes on with a seed no int64 holds)."""
    proc = call_script(script, *args, "--out-dir", str(tmp_path / "x"))
    one_line_error(proc, SEED_RANGE)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--seed", "-1"], f"--seed {SEED_RANGE} (9223372036854775807), got -1"),
        (["--seed", str(2**63)], f"--seed {SEED_RANGE}"),
        (["--inner-lr", "nan"], "--inner-lr must be a positive number, got nan"),
        (["--inner-lr", "inf"], "--inner-lr must be a positive number, got inf"),
        (["--inner-lr", "-1"], "--inner-lr must be a positive number, got -1.0"),
    ],
)
def test_evaluate_bad_seed_and_step_size(sin_run, monkeypatch, args, message):
    monkeypatch.setattr("metarl.supervised.evaluation.evaluate", no_work)
    before = sorted(p.name for p in sin_run.iterdir())
    one_line_error(call_script("evaluate.py", "--run-dir", str(sin_run), *EVAL_FAST, *args),
                   message)
    assert sorted(p.name for p in sin_run.iterdir()) == before


@pytest.mark.parametrize(
    "args,message",
    [
        (["--seed", "-1"], f"--seed {SEED_RANGE}"),
        (["--alpha", "nan"], "--alpha must be a positive number, got nan"),
        (["--alpha", "inf"], "--alpha must be a positive number, got inf"),
        (["--alpha", "-0.1"], "--alpha must be a positive number, got -0.1"),
    ],
)
def test_adapt_rl_bad_seed_and_step_size(nav_run, tmp_path, monkeypatch, args, message):
    """A negative α would adapt uphill without a word; NaN and inf wreck every goal."""
    monkeypatch.setattr("metarl.rl.evaluation.run_evaluation", no_work)
    proc = call_script("adapt_rl.py", "--run-dir", str(nav_run), *ADAPT_FAST, *args,
                       "--out-dir", str(tmp_path / "e"))
    one_line_error(proc, message)
    assert not (tmp_path / "e").exists()


def test_unwritable_outputs_are_refused_before_the_evaluation(sin_run, nav_run, tmp_path,
                                                               monkeypatch):
    """A read-only run folder or --out folder, or an --out-dir that is a file, is found before
    the evaluation runs (not after an hour of it), and nothing is written."""
    monkeypatch.setattr("metarl.supervised.evaluation.evaluate", no_work)
    monkeypatch.setattr("metarl.rl.evaluation.run_evaluation", no_work)
    before = sorted(p.name for p in sin_run.iterdir())
    with read_only(sin_run, monkeypatch):
        proc = call_script("evaluate.py", "--run-dir", str(sin_run), *EVAL_FAST)
    one_line_error(proc, f"cannot write to {sin_run} (where outputs go without --out)")
    assert proc.stderr.rstrip().endswith("give --out a writable folder")
    assert sorted(p.name for p in sin_run.iterdir()) == before
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked, monkeypatch):
        proc = call_script("evaluate.py", "--run-dir", str(sin_run), *EVAL_FAST, "--out",
                           str(locked / "e.json"))
        one_line_error(proc, f"cannot write --out {locked / 'e.json'}")
        proc = call_script("adapt_rl.py", "--run-dir", str(nav_run), *ADAPT_FAST,
                           "--out-dir", str(locked / "adapt"))
        one_line_error(proc, f"cannot write to --out-dir {locked / 'adapt'}")
    assert not list(locked.iterdir())
    (tmp_path / "file").write_text("mine")
    proc = call_script("adapt_rl.py", "--run-dir", str(nav_run), *ADAPT_FAST, "--out-dir",
                       str(tmp_path / "file"))
    one_line_error(proc, f"--out-dir {tmp_path / 'file'} is a file, not a folder")
    assert (tmp_path / "file").read_text() == "mine"


def test_evaluate_out_folder_gets_the_result_inside(sin_run, tmp_path):
    """--out an existing folder: the result goes into it under its default name (it used to
    land beside the folder as <folder>-2, without an extension, and <folder>-2.png)."""
    folder = tmp_path / "evals"
    folder.mkdir()
    proc = call_script("evaluate.py", "--run-dir", str(sin_run), *EVAL_FAST, "--out",
                       str(folder))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evals"]
    name = "eval-test-1steps-2tasks"
    assert sorted(p.name for p in folder.iterdir()) == [f"{name}.json", f"{name}.png"]
    assert json.loads((folder / f"{name}.json").read_text())["plots"] == [f"{name}.png"]
    proc = call_script("evaluate.py", "--run-dir", str(sin_run), *EVAL_FAST, "--out",
                       str(folder / "e.png"))
    one_line_error(proc, "would be the figure's name; give the JSON file's")


def test_eval_tasks_zero_is_refused_with_the_way_to_skip_validation(tmp_path):
    """--eval-tasks 0 used to skip validation silently and report the last iteration although
    --select-best was on; skipping validation is asked for with --eval-every 0."""
    proc = call_script("train_supervised.py", *TINY_SIN, "--eval-every", "2", "--eval-tasks",
                       "0", "--out-dir", str(tmp_path / "x"))
    one_line_error(proc, "--eval-tasks must be at least 1, got 0; to train without validation "
                         "pass --eval-every 0")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_eval_inner_lr_that_is_no_step_size(tmp_path, value):
    """NaN made every post-adaptation loss null and best.pt fall back to the last iteration;
    a negative step adapts uphill."""
    proc = call_script("train_supervised.py", *TINY_SIN, "--eval-inner-lr", value,
                       "--out-dir", str(tmp_path / "x"))
    one_line_error(proc, f"--eval-inner-lr must be a positive number, got {float(value)}")
    assert not (tmp_path / "x").exists()


def test_train_rl_infinite_inner_lr(tmp_path):
    """NaN, 0 and negative --inner-lr were refused already; inf slipped through."""
    proc = call_script("train_rl.py", *TINY_NAV, "--inner-lr", "inf", "--out-dir",
                       str(tmp_path / "x"))
    one_line_error(proc, "--inner-lr must be a positive number, got inf")
    assert not (tmp_path / "x").exists()


def test_npz_that_is_not_an_archive(tmp_path):
    """Random bytes (or a .npy) under an npz's name: numpy takes them for a pickle and suggests
    allow_pickle; the error says what the file is not and what to do instead."""
    from metarl.errors import MetaRLError
    from metarl.supervised.omniglot import load_set

    path = tmp_path / "images_background.npz"
    path.write_bytes(b"\x00" + np.random.default_rng(0).bytes(4095))
    with pytest.raises(MetaRLError) as err:
        load_set(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not an npz file (it is not a zip archive)")
    assert "delete it and convert the release again" in message and "pickle" not in message
    with path.open("wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(MetaRLError, match="is not an npz file"):
        load_set(path)


def test_a_damaged_config_json_is_one_clear_line(tmp_path):
    """config.json holding ``[]``, ``null`` or bytes that are not UTF-8: resuming (either
    trainer) or evaluating the run names the file and what to do, and changes nothing."""
    from .conftest import snapshot

    train(tmp_path / "sin")
    assert call_script("train_rl.py", *TINY_NAV, "--out-dir", str(tmp_path / "nav")).returncode == 0
    for content, why in ((b"[]", "it holds [] instead of an object"),
                         (b"null", "it holds null instead of an object"),
                         (b'\xff\xfe{"algo": "maml"}', "it is not JSON")):
        calls = ((tmp_path / "sin", "train_supervised.py", *TINY_SIN, "--resume", "--out-dir"),
                 (tmp_path / "sin", "evaluate.py", "--tasks", "2", "--run-dir"),
                 (tmp_path / "nav", "train_rl.py", *TINY_NAV, "--resume", "--out-dir"))
        for run, script, *args in calls:
            args.append(str(run))
            (run / "config.json").write_bytes(content)
            before = snapshot(run)
            proc = call_script(script, *args)
            one_line_error(proc, f"cannot read {run / 'config.json'} as a run's settings: {why}")
            assert "restore config.json from a copy of the run folder" in proc.stderr
            assert snapshot(run) == before


def test_damaged_metrics_rows_do_not_stop_a_resume(tmp_path):
    """metrics.jsonl with a row that is not UTF-8 and one whose step is no number: the resume
    goes on with one warning line, keeps every good row (those after the damage too) and the
    file as it was beside the log."""
    out = tmp_path / "sin"
    assert call_script("train_supervised.py", *TINY_SIN, "--log-every", "1", "--out-dir",
                       str(out)).returncode == 0
    metrics = out / "metrics.jsonl"
    lines = metrics.read_bytes().splitlines(keepends=True)
    lines[1], lines[2] = b'\xff{"step": 2}\n', b'{"step": "abc"}\n'
    damaged = b"".join(lines)
    metrics.write_bytes(damaged)
    args = [*TINY_SIN[:2], "--iterations", "6", *TINY_SIN[4:]]
    proc = call_script("train_supervised.py", *args, "--log-every", "1", "--resume",
                       "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "metrics.jsonl" in line]
    assert len(warnings) == 1 and "line 2 is damaged (not UTF-8 text) (and 1 more" in warnings[0]
    assert (out / "metrics-damaged.jsonl").read_bytes() == damaged
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == [1, 4, 5, 6]

"""The shared meta-training loop: exact resume, NaN guards, clean stop on signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from metarl.core.batching import choose_path, time_paths
from metarl.errors import MetaRLError
from metarl.runs.checkpoint import CheckpointDir, load_checkpoint
from metarl.supervised.config import SupervisedConfig
from metarl.supervised.problems import build_problem
from metarl.supervised.tasks import SupervisedProblem, TaskBatch
from metarl.supervised.trainer import MetaTrainer

from .conftest import REPO


def small_cfg(tmp_path, **kw) -> SupervisedConfig:
    base = SupervisedConfig(
        family="sinusoid", iterations=12, meta_batch=4, k_shot=5, k_query=5, eval_every=5,
        eval_tasks=8, test_tasks=10, eval_inner_steps=2, checkpoint_every=4, log_every=2,
        out_dir=tmp_path, task_batching="batched",
    )
    return replace(base, **kw)


def trained_params(cfg: SupervisedConfig, run_dir, resume: bool = False) -> dict:
    torch.manual_seed(cfg.seed)
    trainer = MetaTrainer(build_problem(cfg), cfg, run_dir, resume=resume, progress=False)
    trainer.train()
    return {k: v.detach().clone() for k, v in trainer.params.items()}


@pytest.mark.parametrize("algo", ["maml", "fomaml", "reptile", "pretrained"])
def test_resume_reproduces_uninterrupted_run(tmp_path, algo):
    extra = {"inner_steps": 2} if algo == "reptile" else {}
    full = trained_params(small_cfg(tmp_path, algo=algo, **extra), tmp_path / "full")
    # Stop after 8 iterations (a checkpoint boundary), then resume to 12.
    trained_params(small_cfg(tmp_path, algo=algo, iterations=8, **extra), tmp_path / "part")
    resumed = trained_params(small_cfg(tmp_path, algo=algo, **extra), tmp_path / "part",
                             resume=True)
    for k in full:
        assert torch.equal(full[k], resumed[k]), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_resume_on_cuda(tmp_path):
    """A CUDA run resumes (the checkpoint is loaded onto the GPU, torch's CPU RNG state with
    it, which torch.set_rng_state refuses unless moved back)."""
    cfg = small_cfg(tmp_path, device="cuda")
    trained_params(replace(cfg, iterations=8), tmp_path / "part")
    resumed = trained_params(cfg, tmp_path / "part", resume=True)
    assert all(v.is_cuda for v in resumed.values())


def nan_problem(cfg: SupervisedConfig, good_batches: int) -> SupervisedProblem:
    """The sinusoid problem, but every training batch after ``good_batches`` is NaN."""
    base = build_problem(cfg)
    count = {"n": 0}

    class Sampler:
        def sample(self, n_tasks: int, rng: np.random.Generator) -> TaskBatch:
            batch = base.splits["train"].sample(n_tasks, rng)
            count["n"] += 1
            if count["n"] > good_batches:
                x, y = batch.query
                batch = TaskBatch(batch.support, (x, torch.full_like(y, float("nan"))))
            return batch

    return replace(base, splits={**base.splits, "train": Sampler()})


def test_nonfinite_steps_are_skipped_then_training_stops(tmp_path, capsys):
    cfg = small_cfg(tmp_path, iterations=50, checkpoint_every=2, max_nan_steps=3)
    torch.manual_seed(0)
    trainer = MetaTrainer(nan_problem(cfg, good_batches=4), cfg, tmp_path, progress=False)
    with pytest.raises(MetaRLError, match="3 non-finite updates in a row"):
        trainer.train()
    assert all(torch.isfinite(p).all() for p in trainer.params.values())
    assert [it for it, _ in trainer.checkpoints.list()][-1] == 6  # last good one kept
    assert "step skipped" in capsys.readouterr().err
    # each skipped step is marked at the iteration it was (the 5th batch on: 5-7), so a
    # resume from checkpoint 6 keeps the markers of 5 and 6 and cuts 7's with its log
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/skipped_nonfinite" in r] == [5, 6, 7]
    # checkpoint 6 holds two skipped steps in a row: a resume counts on from there and stops
    # at the same step as the run did, not three steps later
    resumed = MetaTrainer(nan_problem(cfg, good_batches=0), cfg, tmp_path, progress=False,
                          resume=True)
    assert (resumed.iteration, resumed.bad_steps) == (6, 2)
    with pytest.raises(MetaRLError, match="3 non-finite updates in a row at iteration 6"):
        resumed.train()


def test_sigterm_saves_checkpoint_and_exits_cleanly(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "train_supervised.py"), "--preset", "sinusoid",
         "--iterations", "1000000", "--checkpoint-every", "1000000", "--out-dir", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "SIGTERM received: checkpoint saved" in err
    saved = CheckpointDir(out / "checkpoints").list()
    assert saved
    assert "training curves so far" in err and (out / "training.png").stat().st_size > 0
    res = json.loads((out / "results.json").read_text())  # the run as it stands, no test numbers
    assert res["finished"] is False and res["iterations"] == saved[-1][0] >= 1
    # the logging window in progress is written at the stop, not lost
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert json.loads(rows[-1])["step"] == saved[-1][0]
    assert "test" not in res


def test_unknown_family_and_bad_numbers_are_clear(tmp_path):
    with pytest.raises(MetaRLError, match="unknown --family 'mnist'"):
        small_cfg(tmp_path, family="mnist").validate()
    with pytest.raises(MetaRLError, match="--inner-lr must be a positive number"):
        small_cfg(tmp_path, inner_lr=-1.0).validate()
    with pytest.raises(MetaRLError, match="--meta-batch must be at least 1"):
        small_cfg(tmp_path, meta_batch=0).validate()


@pytest.mark.parametrize("algo", ["maml", "fomaml", "pretrained"])
def test_outer_step_uses_the_stacked_loss_and_matches_vmap(algo):
    """The sinusoid family's stacked loss (the default eager path) gives the vmap path's
    outer gradient, and the trainer really takes it."""
    from metarl.supervised.sinusoid import sinusoid_problem
    from metarl.supervised.trainer import LoopConfig, make_outer_step

    torch.manual_seed(0)
    problem = sinusoid_problem(5, 10)
    problem.model.double()
    calls = []

    def counting(params, batch):
        calls.append(1)
        return problem.task_losses(params, batch)

    stacked = replace(problem, task_losses=counting)
    plain = replace(problem, task_losses=None)
    batch = problem.splits["train"].sample(6, np.random.default_rng(0))
    batch = TaskBatch(*(tuple(t.double() for t in part) for part in batch))
    params = dict(problem.model.named_parameters())
    cfg = LoopConfig(algo=algo, inner_steps=2)
    g_stacked, _ = make_outer_step(stacked, cfg)(params, batch)
    g_plain, _ = make_outer_step(plain, cfg)(params, batch)
    assert calls, "the stacked loss was not used"
    for k in params:
        assert torch.allclose(g_stacked[k], g_plain[k], rtol=1e-10, atol=1e-14), k


def test_log_window_survives_a_kill_and_the_tail_of_a_run_is_logged(tmp_path):
    """Logging every 4 iterations, checkpoints every 2: a run killed after checkpoint 6 (its
    window holding iterations 5-6) and resumed logs what the uninterrupted run logs; a run
    whose length is not a multiple of 4 logs its last iterations, and trained on from there it
    does not count them twice."""
    def records(run_dir) -> list[dict]:
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if not k.startswith(("time/", "val/"))}
                for r in rows if "train/query_loss" in r]

    cfg = small_cfg(tmp_path, iterations=8, log_every=4, checkpoint_every=2, eval_every=0,
                    keep_checkpoints=10)
    trained_params(cfg, tmp_path / "straight")
    straight = records(tmp_path / "straight")
    assert [r["step"] for r in straight] == [4, 8]
    # "killed" after checkpoint 6: the same run, its later checkpoint and log record removed
    trained_params(cfg, tmp_path / "killed")
    (tmp_path / "killed" / "checkpoints" / "ckpt_00000008.pt").unlink()
    (tmp_path / "killed" / "checkpoints" / "best.pt").unlink(missing_ok=True)
    (tmp_path / "killed" / "results.json").unlink(missing_ok=True)  # written by the script
    log = tmp_path / "killed" / "metrics.jsonl"
    log.write_text("".join(x + "\n" for x in log.read_text().splitlines()
                           if json.loads(x)["step"] <= 6))
    trained_params(cfg, tmp_path / "killed", resume=True)
    assert records(tmp_path / "killed") == straight
    # 6 iterations: the window of 5-6 is logged at 6; trained on to 8, it starts afresh
    trained_params(replace(cfg, iterations=6), tmp_path / "short")
    assert [r["step"] for r in records(tmp_path / "short")] == [4, 6]
    trained_params(cfg, tmp_path / "short", resume=True)
    steps = records(tmp_path / "short")
    assert [r["step"] for r in steps] == [4, 6, 8] and steps[0] == straight[0]
    assert steps[2]["train/query_loss"] != straight[1]["train/query_loss"]  # 7-8 alone


def test_choose_path_keeps_batched_unless_another_is_clearly_faster():
    assert choose_path({"batched": 100.0, "loop": 95.0}) == "batched"  # within the margin
    assert choose_path({"batched": 100.0, "loop": 80.0}) == "loop"
    assert choose_path({"batched": 50.0, "loop": 80.0}) == "batched"


def test_time_paths_alternates_and_ranks_by_the_median():
    calls: list[str] = []

    def step(name: str, seconds: float):
        def run() -> None:
            calls.append(name)
            time.sleep(seconds)
        return run

    ms = time_paths({"slow": step("slow", 0.03), "fast": step("fast", 0.0)}, repeats=3)
    assert ms["slow"] > 25 and ms["fast"] < ms["slow"]
    assert calls == ["slow", "fast"] * 4  # one untimed call each, then alternating rounds


def test_auto_task_batching_times_both_paths_and_a_resume_keeps_the_choice(tmp_path,
                                                                           monkeypatch):
    """auto measures both paths on the run's shapes (without touching the training stream),
    records the choice in every checkpoint and results.json, and a resumed leg keeps it even
    where a new measurement would pick the other path, so the run stays bitwise resumable."""
    import metarl.supervised.trainer as trainer_module

    def prefer(path: str):
        return lambda steps, **kw: {p: (1.0 if p == path else 9.0) for p in steps}

    monkeypatch.setattr(trainer_module, "time_paths", prefer("loop"))
    cfg = small_cfg(tmp_path, task_batching="auto", iterations=8)
    torch.manual_seed(cfg.seed)
    trainer = MetaTrainer(build_problem(cfg), cfg, tmp_path / "run", progress=False)
    assert trainer.task_batching == "loop"
    trainer.train()
    # the same parameters as a run told to loop: the timing drew nothing from its streams
    looped = trained_params(small_cfg(tmp_path, task_batching="loop", iterations=8),
                            tmp_path / "looped")
    for k, v in trainer.params.items():
        assert torch.equal(v.detach(), looped[k]), k

    monkeypatch.setattr(trainer_module, "time_paths", prefer("batched"))
    cfg12 = small_cfg(tmp_path, task_batching="auto")
    torch.manual_seed(cfg12.seed)
    resumed = MetaTrainer(build_problem(cfg12), cfg12, tmp_path / "run", resume=True,
                          progress=False)
    assert resumed.task_batching == "loop"
    assert resumed.state()["task_batching"] == "loop"
    fresh = MetaTrainer(build_problem(cfg12), cfg12, tmp_path / "other", progress=False)
    assert fresh.task_batching == "batched"


def test_a_stop_during_validation_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """SIGTERM arriving mid-validation: the validation finishes, the checkpoint after it holds
    its result, and the resumed run ends with the parameters, validation history and best.pt
    of a run that was never stopped."""
    import os

    full_cfg = small_cfg(tmp_path, iterations=12)
    torch.manual_seed(full_cfg.seed)
    full = MetaTrainer(build_problem(full_cfg), full_cfg, tmp_path / "full", progress=False)
    full.train()

    original = MetaTrainer._validate
    calls = []

    def validate_then_signal(self, logger):
        calls.append(self.iteration)
        if self.iteration == 5:  # the stop request lands while validation runs
            os.kill(os.getpid(), signal.SIGTERM)
        original(self, logger)

    monkeypatch.setattr(MetaTrainer, "_validate", validate_then_signal)
    torch.manual_seed(full_cfg.seed)
    part = MetaTrainer(build_problem(full_cfg), full_cfg, tmp_path / "part", progress=False)
    with pytest.raises(SystemExit):
        part.train()
    assert part.iteration == 5 and calls == [5]
    monkeypatch.setattr(MetaTrainer, "_validate", original)
    torch.manual_seed(full_cfg.seed)
    resumed = MetaTrainer(build_problem(full_cfg), full_cfg, tmp_path / "part", resume=True,
                          progress=False)
    resumed.train()
    for k, v in full.params.items():
        assert torch.equal(v.detach(), resumed.params[k].detach()), k
    assert resumed.val_history == full.val_history
    best = {d: load_checkpoint(tmp_path / d / "checkpoints" / "best.pt") for d in ("full", "part")}
    assert best["full"]["iteration"] == best["part"]["iteration"]
    for k, v in best["full"]["model"].items():
        assert torch.equal(v, best["part"]["model"][k]), k

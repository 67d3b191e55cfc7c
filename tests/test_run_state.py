"""The run state both trainers share (metarl/runs/state.py): keep-best in either direction,
save and resume, results.json, and checkpoints written before it was shared."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from metarl.core.functional import params_of
from metarl.rl.policies import GaussianMLPPolicy, policy_spec
from metarl.runs.checkpoint import (
    MAML_TRPO,
    SUPERVISED,
    CheckpointDir,
    load_checkpoint,
    save_checkpoint,
)
from metarl.runs.state import Best, Direction, RunState
from metarl.supervised.models import conv4_omniglot
from metarl.supervised.problems import build_problem
from metarl.supervised.trainer import MetaTrainer

from .conftest import REPO
from .test_trainer import small_cfg

OMNIGLOT_RUN = REPO / "docs" / "runs" / "omniglot-5way-1shot-maml"
"""A supervised run folder committed mid-run, its checkpoints from before the shared run
state (the best validation loss as ``best_score``)."""
PRETRAINED_RL = REPO / "metarl" / "pretrained" / "halfcheetah-vel" / "checkpoints" / "best.pt"
"""A MAML-TRPO best.pt from before the shared run state (``best`` without its direction)."""


def small_state(tmp_path: Path, direction: Direction, **kw: Any) -> RunState:
    """A run state over a small linear model in ``tmp_path/run``."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    return RunState(tmp_path / "run", kind=SUPERVISED, model=model, model_key="model",
                    best=Best.none_yet(direction, "validation"), config={"seed": 0},
                    keep_checkpoints=2, **kw)


@pytest.mark.parametrize("direction", ["minimise", "maximise"])
def test_keep_best_keeps_the_best_finite_score_in_its_direction(tmp_path, direction):
    scores = [3.0, 2.0, math.nan, 2.0, -math.inf, 5.0, 1.0, math.inf, 4.0]
    run = small_state(tmp_path, direction)
    assert run.best.score == (math.inf if direction == "minimise" else -math.inf)
    kept = []
    best_path = run.checkpoints.root / "best.pt"
    for it, score in enumerate(scores, start=1):
        run.iteration = it
        with torch.no_grad():
            run.model.weight.fill_(float(it))  # the model as it was when scored
        if run.keep_best(score):
            kept.append(it)
        if kept:  # best.pt holds the model of the newest improvement, and only that
            assert load_checkpoint(best_path)["iteration"] == kept[-1]
        else:
            assert not best_path.exists()
    # by hand: minimising, 3 (it 1), 2 (it 2; the tie at it 4 keeps the earlier), 1 (it 7);
    # maximising, 3 (it 1), 5 (it 6); NaN and ±inf never count
    expected = [1, 2, 7] if direction == "minimise" else [1, 6]
    assert kept == expected
    best = load_checkpoint(best_path)
    at = expected[-1]
    assert best["iteration"] == at and torch.all(best["model"]["weight"] == float(at))
    assert best["best"] == {"score": scores[at - 1], "iteration": at,
                            "selected_by": "validation", "direction": direction}
    assert run.best == Best(direction, "validation", scores[at - 1], at)


def test_keep_best_of_a_model_scored_before_its_step(tmp_path):
    """A score earned by the model as it was after ``iteration`` updates (the RL training
    return) keeps that model, under that iteration, in best.pt."""
    run = small_state(tmp_path, "maximise")
    run.iteration = 5
    earlier = {k: torch.zeros_like(v) for k, v in run.model.state_dict().items()}
    assert run.keep_best(1.5, iteration=4, model_state=earlier)
    best = load_checkpoint(run.checkpoints.root / "best.pt")
    assert best["iteration"] == 4 and best["best"]["iteration"] == 4
    assert all(torch.equal(best["model"][k], earlier[k]) for k in earlier)
    assert not run.keep_best(1.5)  # a tie is not better


def test_best_rejects_an_unknown_direction():
    with pytest.raises(ValueError, match="direction"):
        Best("lowest", "validation", 0.0, 0)  # type: ignore[arg-type]


def test_save_and_resume_restore_every_part_of_the_state(tmp_path):
    """Optimiser, generator, torch's random state, the loop's counts, the validation history
    and the selection come back as they were saved; the generator then draws what it would
    have drawn."""
    def build() -> RunState:
        run = small_state(tmp_path, "minimise", rng=np.random.default_rng(7), torch_rng=True)
        run.optimizer = torch.optim.Adam(run.model.parameters(), lr=0.1)
        return run

    with torch.random.fork_rng():
        run = build()
        for _ in range(3):  # give the optimiser moments to save
            run.model(torch.ones(1, 3)).sum().backward()
            assert run.optimizer is not None and run.rng is not None
            run.optimizer.step()
            run.rng.random()
        run.iteration, run.train_seconds, run.bad_steps = 3, 1.25, 1
        run.log_window = {"train/loss": [0.5, 0.25]}
        run.val_history = [{"iteration": 2, "loss_after": 0.3}]
        run.keep_best(0.3, iteration=2)
        path = run.save()
        assert path.name == "ckpt_00000003.pt"
        expected_draw, expected_torch = run.rng.random(), torch.rand(2)
        torch.manual_seed(123)  # a different torch state: the resume must bring the saved one
        resumed = build()
        assert resumed.resume("cpu") == path
        assert resumed.rng is not None and resumed.rng.random() == expected_draw
        assert torch.equal(torch.rand(2), expected_torch)
    assert (resumed.iteration, resumed.train_seconds, resumed.bad_steps) == (3, 1.25, 1)
    assert resumed.log_window == {"train/loss": [0.5, 0.25]}
    assert resumed.val_history == run.val_history and resumed.best == run.best
    assert resumed.optimizer is not None and run.optimizer is not None
    a, b = resumed.optimizer.state_dict()["state"], run.optimizer.state_dict()["state"]
    assert all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in b)
    assert all(torch.equal(x, y) for x, y in zip(resumed.model.parameters(),
                                                 run.model.parameters()))


def test_write_results_writes_results_json_with_the_progress(tmp_path):
    run = small_state(tmp_path, "minimise")
    run.run_dir.mkdir(parents=True)
    run.iteration, run.train_seconds = 4, 2.5
    path = run.write_results({"algo": "x", **run.record(finished=False), "loss": math.nan})
    assert path == run.run_dir / "results.json"
    assert json.loads(path.read_text()) == {"algo": "x", "iterations": 4, "finished": False,
                                            "train_seconds": 2.5, "loss": None}
    assert not list(run.run_dir.glob(".*.tmp"))


def test_an_omniglot_checkpoint_from_before_the_shared_state_resumes(tmp_path):
    """The committed Omniglot run's checkpoints hold the best validation loss alone
    (``best_score``): read as a minimised score of unknown iteration, with the model,
    optimiser and generator of the checkpoint; the state written from then on has the
    shared form."""
    run_dir = tmp_path / "omniglot"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(OMNIGLOT_RUN / "config.json", run_dir)
    saved = sorted((OMNIGLOT_RUN / "checkpoints").glob("*.pt"))
    for path in saved:
        shutil.copy(path, run_dir / "checkpoints")
    newest_path = max((OMNIGLOT_RUN / "checkpoints").glob("ckpt_*.pt"))  # the leg's last
    newest = load_checkpoint(newest_path)
    assert "best" not in newest and "best_score" in newest  # the old form, as committed
    model = conv4_omniglot(5)
    params = params_of(model)
    run = RunState(run_dir, kind=SUPERVISED, model=model, model_key="model",
                   best=Best.none_yet("minimise", "validation"), config={},
                   keep_checkpoints=3, optimizer=torch.optim.Adam(list(params.values())),
                   rng=np.random.default_rng(0), torch_rng=True)
    with torch.random.fork_rng():
        assert run.resume("cpu", resuming=False) == run_dir / "checkpoints" / newest_path.name
    assert run.iteration == newest["iteration"] and run.train_seconds == newest["train_seconds"]
    assert run.best == Best("minimise", "validation", newest["best_score"], None)
    assert run.rng is not None and run.rng.bit_generator.state == newest["rng"]
    assert all(torch.equal(v, newest["model"][k]) for k, v in model.state_dict().items())
    assert len(run.val_history) == len(newest["val_history"])
    state = run.state()
    assert "best_score" not in state
    assert state["best"] == {"score": newest["best_score"], "iteration": None,
                             "selected_by": "validation", "direction": "minimise"}
    # its best.pt, as the final evaluation reads it
    best = load_checkpoint(OMNIGLOT_RUN / "checkpoints" / "best.pt")
    assert run.best.read_from(best).score == best["best_score"]
    assert sorted(p.name for p in (OMNIGLOT_RUN / "checkpoints").glob("*")) == \
        [p.name for p in saved]  # the committed folder is untouched


def test_a_maml_trpo_checkpoint_from_before_the_shared_state_is_read(tmp_path):
    """A committed MAML-TRPO best.pt (its selection without a direction, no loop state) is
    restored with its selection, and rewritten in the shared form."""
    state = load_checkpoint(PRETRAINED_RL)
    assert set(state["best"]) == {"score", "iteration", "selected_by"}
    assert "bad_steps" not in state and "log_window" not in state
    spec = state["policy_spec"]
    policy = GaussianMLPPolicy(spec["obs_dim"], spec["act_dim"], spec["hidden_sizes"],
                               spec["activation"])
    run = RunState(tmp_path / "run", kind=MAML_TRPO, model=policy, model_key="policy",
                   best=Best.none_yet("maximise", "validation"), config=state["config"],
                   keep_checkpoints=3)
    run.restore(state, PRETRAINED_RL)
    old = state["best"]
    assert run.best == Best("maximise", old["selected_by"], old["score"], old["iteration"])
    assert (run.iteration, run.bad_steps, run.log_window) == (state["iteration"], 0, {})
    assert policy_spec(policy) == spec
    assert run.state()["best"] == {**old, "direction": "maximise"}


def to_old_supervised_form(path: Path) -> None:
    """Rewrite a checkpoint as supervised runs wrote them before the shared run state."""
    state = load_checkpoint(path)
    best = state.pop("best")
    save_checkpoint(path, {**state, "best_score": best["score"]})


def to_old_rl_form(path: Path) -> None:
    """Rewrite a checkpoint as MAML-TRPO runs wrote them before the shared run state (and
    before the loop state was saved)."""
    state = load_checkpoint(path)
    state["best"] = {k: state["best"][k] for k in ("score", "iteration", "selected_by")}
    for key in ("bad_steps", "log_window"):
        state.pop(key)
    save_checkpoint(path, state)


def test_supervised_resume_from_the_old_form_equals_an_uninterrupted_run(tmp_path):
    cfg = small_cfg(tmp_path, iterations=12, checkpoint_every=4, eval_every=2)
    torch.manual_seed(cfg.seed)
    full = MetaTrainer(build_problem(cfg), cfg, tmp_path / "full", progress=False)
    full.train()
    torch.manual_seed(cfg.seed)
    part_cfg = replace(cfg, iterations=8)
    MetaTrainer(build_problem(part_cfg), part_cfg, tmp_path / "part", progress=False).train()
    ckpts = CheckpointDir(tmp_path / "part" / "checkpoints")
    to_old_supervised_form(ckpts.path_for(8))
    torch.manual_seed(cfg.seed)
    resumed = MetaTrainer(build_problem(cfg), cfg, tmp_path / "part", resume=True,
                          progress=False)
    assert resumed.iteration == 8 and resumed.best.direction == "minimise"
    resumed.train()
    for k, v in full.params.items():
        assert torch.equal(v.detach(), resumed.params[k].detach()), k
    assert resumed.val_history == full.val_history
    assert resumed.best.score == full.best.score
    assert load_checkpoint(ckpts.path_for(12))["best"]["score"] == full.best.score

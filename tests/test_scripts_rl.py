"""End-to-end smoke runs of the meta-RL scripts with tiny budgets, exact resume, and errors."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from metarl.errors import MetaRLError
from metarl.rl.config import RL_PRESETS, RLConfig, apply_rl_preset
from metarl.rl.evaluation import (
    paired_difference,
    split_by_goal_distance,
    split_by_task_value,
    summarize_seeds,
)
from metarl.rl.protocol import drift_warning
from metarl.rl.trainer import MetaRLTrainer
from metarl.runs.checkpoint import CheckpointDir, load_checkpoint
from metarl.runs.rundir import unique_path

from .conftest import REPO, TINY, call_script, run_script, snapshot
from .test_run_state import to_old_rl_form


def test_train_rl_writes_everything(nav_run):
    for name in ("config.json", "results.json", "metrics.jsonl", "training.png"):
        assert (nav_run / name).is_file(), name
    res = json.loads((nav_run / "results.json").read_text())
    assert res["iterations"] == 2 and res["finished"] is True
    for key in ("returns/before_adaptation", "returns/after_adaptation", "trpo/kl",
                "trpo/kl_initial", "time/sampling", "time/inner", "time/outer",
                "actions/clipped_before_adaptation", "actions/clipped_after_adaptation"):
        assert key in res["last_10_iterations"], key
    logged = [json.loads(line) for line in (nav_run / "metrics.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in logged}) == [1, 2]
    steps = [(r["steps/kept_per_task"], r["steps/simulated_per_task"]) for r in logged
             if "steps/kept_per_task" in r]
    assert len(steps) == 2  # one record per iteration; budget: 2 slots x 12 steps
    assert all(24 <= kept <= simulated < 24 + 2 * 12 for kept, simulated in steps), steps
    ended = [r["episodes/terminated_before_adaptation"] for r in logged
             if "episodes/terminated_before_adaptation" in r]
    assert len(ended) == 2 and all(0.0 <= x <= 1.0 for x in ended)
    distance = [(r["reward_terms/reward_distance_before_adaptation"],
                 r["reward_terms/reward_distance_after_adaptation"]) for r in logged
                if "reward_terms/reward_distance_before_adaptation" in r]
    assert len(distance) == 2 and all(x < 0 and y < 0 for x, y in distance)
    # validation every iteration: returns after 0..2 steps, the best policy kept as best.pt
    assert [v["iteration"] for v in res["validation"]] == [1, 2]
    assert all(len(v["returns"]) == 3 for v in res["validation"])
    scores = [v["score"] for v in res["validation"]]
    assert res["best"]["selected_by"] == "validation" and res["best"]["score"] == max(scores)
    assert res["best"]["iteration"] == 1 + scores.index(max(scores))
    assert (nav_run / "checkpoints" / "best.pt").is_file()
    assert any("val/return_after_2_steps" in r for r in logged)


def test_stopped_leg_rewrites_results(tmp_path):
    """A finished run resumed for more iterations and stopped by SIGTERM (one leg of a long
    run across time-limited calls) leaves results.json and training.png describing the run as
    it stands, marked unfinished -- not the earlier leg's file."""
    out = tmp_path / "nav"
    flags = ["--preset", "navigation", *TINY, "--out-dir", str(out)]
    run_script("train_rl.py", *flags)
    assert json.loads((out / "results.json").read_text())["iterations"] == 2
    metrics = out / "metrics.jsonl"
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "train_rl.py"), *flags,
                             "--iterations", "1000000", "--resume"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and max(
            json.loads(line)["step"] for line in metrics.read_text().splitlines()) < 3:
        time.sleep(0.2)  # until the resumed leg has logged an iteration
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    res = json.loads((out / "results.json").read_text())
    newest = CheckpointDir(out / "checkpoints").list()[-1][0]
    assert res["finished"] is False and res["iterations"] == newest >= 3
    assert len(res["validation"]) == newest  # --eval-every 1
    assert res["config"]["iterations"] == 1000000


def test_adapt_rl_sampled_and_given_goals(nav_run):
    proc = run_script("adapt_rl.py", "--run-dir", str(nav_run), "--num-tasks", "3",
                      "--timesteps", "24", "--steps", "2", "--threads", "1")
    out = nav_run / "adapt-3goals-seed1"
    res = json.loads((out / "results.json").read_text())
    trained = json.loads((nav_run / "results.json").read_text())
    assert res["policy"]["source"].endswith("best.pt")
    assert res["policy"]["iteration"] == trained["best"]["iteration"]
    assert "using " in proc.stdout and "selected by validation" in proc.stdout
    assert res["steps"] == [0, 1, 2] and res["step_sizes"] == [0.1, 0.05]
    assert res["batch"] == "steps" and len(res["episodes_per_task"]) == 3
    assert np.asarray(res["returns_per_task"]).shape == (3, 3)
    norms = np.asarray(res["step_norm_per_task"])  # one column per adaptation step
    assert norms.shape == (2, 3) and (norms > 0).all()
    assert res["step_norm_median"] == [float(np.median(n)) for n in norms]
    assert len(res["log_std_mean_before_step"]) == 2
    assert len(res["clipped_fraction"]) == 3 and all(0 <= f <= 1 for f in res["clipped_fraction"])
    assert (out / "returns.csv").read_text().count("\n") == 4
    assert (out / "adapted_policy.pt").is_file() and "after 2 step(s)" in proc.stdout
    assert (out / "returns.png").stat().st_size > 0 and res["plots"] == ["returns.png"]
    # progress: one line per rollout as it finishes, with that rollout's mean return
    for k, mean in enumerate(res["returns_mean"]):
        assert f"rollout after {k} of 2 step(s) done, mean return {mean:.2f}" in proc.stderr
    assert res["eval_seconds"] > 0 and "evaluated in" in proc.stdout
    run_script("adapt_rl.py", "--run-dir", str(nav_run), "--goal", "0.3", "-0.2",
               "--timesteps", "24", "--steps", "1", "--threads", "1")
    res = json.loads((nav_run / "adapt-goal-0.3_-0.2" / "results.json").read_text())
    assert res["tasks"] == [[0.3, -0.2]] and res["goals"] == "command line"
    # a fixed goal set from a file: JSON, or one goal per line
    (nav_run / "set.json").write_text("[[0.1, -0.3], [-0.45, 0.2]]")
    (nav_run / "set.txt").write_text("# x, y\n0.1, -0.3\n\n-0.45 0.2  # second\n")
    for name in ("set.json", "set.txt"):
        run_script("adapt_rl.py", "--run-dir", str(nav_run), "--goals-file",
                   str(nav_run / name), "--timesteps", "24", "--steps", "1", "--threads", "1",
                   "--out-dir", str(nav_run / f"adapt-{name}"))
        res = json.loads((nav_run / f"adapt-{name}" / "results.json").read_text())
        assert res["tasks"] == [[0.1, -0.3], [-0.45, 0.2]] and res["num_tasks"] == 2
        assert res["goals"] == f"file {nav_run / name}"
        assert np.asarray(res["returns_per_task"]).shape == (2, 2)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--goal", "3.0", "0.0"], "out of range"),
        (["--goal", "0.1"], "has 2 value(s)"),
        (["--steps", "-1"], "--steps must be >= 0"),
        (["--batch", "trajectories"], "unknown --batch 'trajectories'; choose steps or episodes"),
        (["--repeats", "0"], "--repeats must be at least 1, got 0"),
    ],
)
def test_adapt_rl_bad_input(nav_run, args, message):
    proc = call_script("adapt_rl.py", "--run-dir", str(nav_run), *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "does not exist"),
        ("[[0.1, -0.3], [0.2", "cannot read goals"),
        ('{"x": 0.1}', "cannot read goals"),
        ("[]", "holds no goals"),
        ("[[0.1, -0.3, 0.0]]", "has 2 value(s) (x, y); got 3"),
        ("[[0.1, 0.9]]", "out of range"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "is not a text file"),  # binary: no traceback
    ],
)
def test_adapt_rl_bad_goals_file(nav_run, tmp_path, content, message):
    path = tmp_path / "goals.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    proc = call_script("adapt_rl.py", "--run-dir", str(nav_run), "--goals-file", str(path))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (nav_run / "adapt-goals-goals").exists()


def test_a_taken_goal_folder_is_numbered_after_its_whole_name(nav_run, tmp_path):
    """The second evaluation of goal (0.37, 0.1) goes to adapt-goal-0.37_0.1-2, not to
    adapt-goal-0-2.37_0.1 (the folder's name was split at its dot as if it had an extension)."""
    evaluation = ["--run-dir", str(nav_run), "--goal", "0.37", "0.1", "--timesteps", "12",
                  "--steps", "1", "--threads", "1"]
    for _ in range(2):
        assert call_script("adapt_rl.py", *evaluation).returncode == 0
    assert sorted(p.name for p in nav_run.glob("adapt-goal-*0.1*")) == [
        "adapt-goal-0.37_0.1", "adapt-goal-0.37_0.1-2"]
    (tmp_path / "eval.v2.json").write_text("{}")  # a file's number goes before its extension
    assert unique_path(tmp_path / "eval.v2.json").name == "eval.v2-2.json"


def test_adapt_rl_goal_and_goals_file_exclusive(nav_run, tmp_path):
    (tmp_path / "g.json").write_text("[[0.1, 0.1]]")
    proc = call_script("adapt_rl.py", "--run-dir", str(nav_run), "--goal", "0.1", "0.1",
                       "--goals-file", str(tmp_path / "g.json"))
    assert proc.returncode == 2 and "give --goal or --goals-file, not both" in proc.stderr


def test_baselines_and_figure(nav_run, tmp_path):
    common = ["--num-tasks", "2", "--timesteps", "24", "--steps", "1", "--threads", "1",
              "--hidden-sizes", "16", "16"]
    (tmp_path / "goals.txt").write_text("0.2 0.2\n-0.1 0.3\n")
    run_script("baselines_rl.py", "--baseline", "random", "--out-dir", str(tmp_path / "rand"),
               "--goals-file", str(tmp_path / "goals.txt"), *common)
    assert json.loads((tmp_path / "rand" / "results.json").read_text())["tasks"] == [
        [0.2, 0.2], [-0.1, 0.3]]
    # with the default progress bar, which needs rich and tqdm as well as stable-baselines3
    run_script("baselines_rl.py", "--baseline", "pretrained", "--ppo-timesteps", "256",
               "--ppo-envs", "2", "--out-dir", str(tmp_path / "pre"), *common)
    for name in ("rand", "pre"):
        res = json.loads((tmp_path / name / "results.json").read_text())
        assert res["returns_mean"] and (tmp_path / name / "policy.pt").is_file()
    proc = run_script("adapt_rl.py", "--policy", str(tmp_path / "pre" / "policy.pt"),
                      "--num-tasks", "2", "--timesteps", "24", "--steps", "1", "--threads", "1")
    assert "pretrained on metarl/Navigation2D-v0" in proc.stdout
    run_script("plot_rl.py", "--results", str(tmp_path / "rand"), str(tmp_path / "pre"),
               "--out", str(tmp_path / "fig.png"))
    assert (tmp_path / "fig.png").is_file()
    proc = run_script("goal_split.py", "--results", str(tmp_path / "rand"), "--distance", "0.3",
                      "--out", str(tmp_path / "split.json"))
    split = json.loads((tmp_path / "split.json").read_text())[0]
    # goals (0.2, 0.2) and (-0.1, 0.3): norms 0.283 and 0.316
    rand = json.loads((tmp_path / "rand" / "results.json").read_text())["returns_per_task"]
    assert split["near"]["count"] == 1 and split["far"]["count"] == 1
    assert split["near"]["mean"] == rand[0] and split["far"]["mean"] == rand[1]
    assert "1 goals nearer than 0.3, 1 farther" in proc.stdout
    # the reward terms and terminations per goal and step, and their split
    res = json.loads((tmp_path / "rand" / "results.json").read_text())
    distance = np.asarray(res["reward_terms_per_task"]["reward_distance"])
    assert distance.shape == (len(res["steps"]), 2) and (distance < 0).all()
    assert np.asarray(res["terminated_fraction_per_task"]).shape == distance.shape
    np.testing.assert_allclose(split["far"]["terms"]["reward_distance"], distance[:, 1])
    np.testing.assert_allclose(split["near"]["terminated"],
                               np.asarray(res["terminated_fraction_per_task"])[:, 0])
    proc = run_script("goal_split.py", "--terms", "--results", str(tmp_path / "rand"),
                      "--distance", "0.3")
    assert "after 0 step(s), far: distance -" in proc.stdout and "terminated" in proc.stdout
    run_script("goal_split.py", "--by", "task", "--results", str(tmp_path / "rand"),
               "--out", str(tmp_path / "by-task.json"))
    by_task = json.loads((tmp_path / "by-task.json").read_text())[0]
    assert by_task["by"] == "task" and [g["count"] for g in by_task["groups"]] == [1, 1]
    np.testing.assert_allclose([g["task"] for g in by_task["groups"]], [[-0.1, 0.3], [0.2, 0.2]],
                               rtol=1e-6)
    np.testing.assert_allclose(by_task["balanced_mean"], np.mean(rand, axis=0), rtol=1e-12)


def test_missing_ppo_dependency_fails_before_the_run_folder(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "rich", None)  # as if rich were not installed
    out = tmp_path / "pre"
    res = call_script("baselines_rl.py", "--baseline", "pretrained", "--env",
                      "metarl/Navigation2D-v0", "--out-dir", str(out))
    assert res.returncode != 0 and "PPO needs rich" in res.stderr and "--no-progress" in res.stderr
    assert not out.exists()  # a rerun after installing it is not refused as an existing run


def test_split_by_goal_distance_against_numpy():
    rng = np.random.default_rng(0)
    tasks = rng.uniform(-0.5, 0.5, (30, 2))
    returns = rng.normal(-10, 3, (30, 3))
    split = split_by_goal_distance({"tasks": tasks.tolist(), "returns_per_task": returns.tolist(),
                                    "steps": [0, 1, 2]}, 0.4)
    far = np.hypot(tasks[:, 0], tasks[:, 1]) >= 0.4
    assert split["far"]["count"] == far.sum() and split["near"]["count"] == (~far).sum()
    np.testing.assert_allclose(split["far"]["mean"], returns[far].mean(0), rtol=1e-12)
    np.testing.assert_allclose(split["near"]["mean"], returns[~far].mean(0), rtol=1e-12)
    np.testing.assert_allclose(split["near"]["ci95"], 1.96 * returns[~far].std(0, ddof=1)
                               / np.sqrt((~far).sum()), rtol=1e-12)
    np.testing.assert_allclose(split["median"], np.median(returns, 0), rtol=1e-12)
    assert "terms" not in split["far"]  # an evaluation from before they were recorded
    forward = rng.normal(-1, 0.3, (3, 30))  # [steps, goals], as results.json holds them
    ended = rng.uniform(0, 1, (3, 30))
    split = split_by_goal_distance({"tasks": tasks.tolist(), "returns_per_task": returns.tolist(),
                                    "steps": [0, 1, 2],
                                    "reward_terms_per_task": {"reward_forward": forward.tolist()},
                                    "terminated_fraction_per_task": ended.tolist()}, 0.4)
    np.testing.assert_allclose(split["far"]["terms"]["reward_forward"], forward[:, far].mean(1),
                               rtol=1e-12)
    np.testing.assert_allclose(split["near"]["terminated"], ended[:, ~far].mean(1), rtol=1e-12)


def test_split_by_task_value_against_numpy():
    rng = np.random.default_rng(1)
    tasks = rng.choice([-1.0, 1.0], size=(25, 1))
    returns = rng.normal(50, 20, (25, 4))
    split = split_by_task_value({"tasks": tasks.tolist(), "returns_per_task": returns.tolist(),
                                 "steps": [0, 1, 2, 3]})
    back, fwd = split["groups"]
    assert back["task"] == [-1.0] and fwd["task"] == [1.0]
    is_fwd = tasks[:, 0] > 0
    assert fwd["count"] == is_fwd.sum() and back["count"] == (~is_fwd).sum()
    np.testing.assert_allclose(fwd["mean"], returns[is_fwd].mean(0), rtol=1e-12)
    np.testing.assert_allclose(back["ci95"], 1.96 * returns[~is_fwd].std(0, ddof=1)
                               / np.sqrt((~is_fwd).sum()), rtol=1e-12)
    np.testing.assert_allclose(split["balanced_mean"], (returns[is_fwd].mean(0)
                                                        + returns[~is_fwd].mean(0)) / 2,
                               rtol=1e-12)
    with pytest.raises(MetaRLError, match="continuous"):
        split_by_task_value({"tasks": rng.uniform(0, 2, (20, 1)).tolist(),
                             "returns_per_task": returns[:20].tolist(), "steps": [0, 1, 2, 3]})


def test_adapt_rl_last_checkpoint(nav_run, tmp_path):
    out = tmp_path / "last"
    run_script("adapt_rl.py", "--run-dir", str(nav_run), "--last", "--num-tasks", "2",
               "--timesteps", "24", "--steps", "1", "--threads", "1", "--out-dir", str(out))
    res = json.loads((out / "results.json").read_text())
    assert res["policy"]["iteration"] == 2 and res["policy"]["selected_by"] == "checkpoint"


def test_adapt_rl_adapts_with_the_runs_inner_update(tmp_path):
    """A run trained with another inner update (LVC loss, γ 0.9, λ 0.5, raw advantages,
    12-step episodes) is evaluated with that update, not the paper's defaults: adapt_rl.py's
    returns equal run_evaluation's with the run's settings and differ from the defaults'."""
    from metarl.rl.evaluation import (
        EvalSettings,
        draw_tasks,
        make_meta_env,
        policy_from_spec,
        run_evaluation,
    )

    run = tmp_path / "run"
    inner = ["--inner-loss", "lvc", "--gamma", "0.9", "--gae-lambda", "0.5",
             "--no-normalize-advantages"]
    assert call_script("train_rl.py", "--preset", "navigation", *TINY, *inner,
                       "--out-dir", str(run)).returncode == 0
    evaluation = ["--num-tasks", "2", "--timesteps", "24", "--steps", "2", "--threads", "1"]
    assert call_script("adapt_rl.py", "--run-dir", str(run), *evaluation,
                       "--out-dir", str(tmp_path / "eval")).returncode == 0
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert res["inner_update"] == {"inner_loss": "lvc", "gamma": 0.9, "gae_lambda": 0.5,
                                   "normalize_advantages": False}
    assert res["horizon"] == 12

    state = load_checkpoint(run / "checkpoints" / "best.pt")
    policy = policy_from_spec(state["policy_spec"], state["policy"])
    env = make_meta_env("metarl/Navigation2D-v0")

    def evaluation(name: str, **inner_update) -> dict:
        settings = EvalSettings(env="metarl/Navigation2D-v0", num_tasks=2, steps=2,
                                timesteps=24, threads=1, horizon=12, **inner_update)
        return run_evaluation(policy, settings, tmp_path / name, label=name,
                              tasks=draw_tasks(env, settings, None))

    own = evaluation("own", inner_loss="lvc", gamma=0.9, gae_lambda=0.5,
                     normalize_advantages=False)
    assert res["returns_per_task"] == own["returns_per_task"]
    paper = evaluation("paper")
    before = [r[0] for r in paper["returns_per_task"]]
    assert before == [r[0] for r in own["returns_per_task"]]  # the same policy before adapting
    assert paper["returns_per_task"] != own["returns_per_task"]
    # each setting on its own changes the first adaptation step (LVC's first-order step at
    # the sampling policy is REINFORCE's, so the loss alone does not)
    for change in ({"gamma": 0.9}, {"gae_lambda": 0.5}, {"normalize_advantages": False}):
        other = evaluation(str(change), **change)
        assert not np.allclose(other["step_norm_per_task"][0], paper["step_norm_per_task"][0])


def test_repeats_average_independent_draws_of_each_goal(tmp_path):
    """--repeats R equals an evaluation of every goal listed R times, averaged per goal."""
    from metarl.envs import Goal2D
    from metarl.rl.evaluation import EvalSettings, run_evaluation, summary_lines
    from metarl.rl.policies import GaussianMLPPolicy

    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, (16, 16))
    goals = [Goal2D(0.2, 0.2), Goal2D(-0.3, 0.1)]
    common = {"env": "metarl/Navigation2D-v0", "steps": 2, "timesteps": 24, "threads": 1,
              "horizon": 12, "alpha": 0.5}
    rep = run_evaluation(policy, EvalSettings(**common, repeats=3), tmp_path / "rep",
                         label="rep", tasks=goals)
    flat = run_evaluation(policy, EvalSettings(**common), tmp_path / "flat", label="flat",
                          tasks=[g for g in goals for _ in range(3)])
    draws = np.asarray(flat["returns_per_task"]).reshape(2, 3, 3)  # goals, draws, steps
    assert not np.allclose(draws[:, 0], draws[:, 1])  # the draws are independent
    np.testing.assert_allclose(rep["returns_per_task"], draws.mean(1), rtol=1e-12)
    np.testing.assert_allclose(rep["returns_mean_per_draw"], draws.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rep["returns_mean"], draws.mean((0, 1)), rtol=1e-12)
    for name in ("step_norm_per_task", "terminated_fraction_per_task", "episodes_per_task"):
        per_draw = np.asarray(flat[name], dtype=float).reshape(-1, 2, 3)
        np.testing.assert_allclose(rep[name], per_draw.mean(2), rtol=1e-12, err_msg=name)
    distance = np.asarray(flat["reward_terms_per_task"]["reward_distance"]).reshape(-1, 2, 3)
    np.testing.assert_allclose(rep["reward_terms_per_task"]["reward_distance"], distance.mean(2),
                               rtol=1e-12)
    assert rep["tasks"] == [[0.2, 0.2], [-0.3, 0.1]] and rep["repeats"] == 3
    assert "returns_mean_per_draw" not in flat and flat["repeats"] == 1
    kept = load_checkpoint(tmp_path / "rep" / "adapted_policy.pt")["params"]
    every = load_checkpoint(tmp_path / "flat" / "adapted_policy.pt")["params"]
    for k, v in kept.items():  # each goal's first draw
        torch.testing.assert_close(v, every[k][::3], rtol=0, atol=0)
    assert "(3 draws per goal, averaged" in "\n".join(summary_lines(rep))
    with pytest.raises(MetaRLError, match="--repeats must be at least 1"):
        EvalSettings(**common, repeats=0)


def test_train_return_selection_keeps_the_best_training_iteration(tmp_path):
    """The policy kept is the one that earned the best return: θ as sampled in that
    iteration, before its TRPO step (after ``best.iteration`` updates)."""
    cfg = RLConfig(iterations=4, meta_batch=2, episodes_per_task=2, horizon=8,
                   hidden_sizes=(8,), threads=1, select_best="train-return",
                   checkpoint_every=1, keep_checkpoints=10)
    trainer = MetaRLTrainer(cfg, tmp_path / "run", progress=False)
    initial = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    trainer.train()
    after = [h["returns/after_adaptation"] for h in trainer.history]
    assert trainer.best.iteration == int(np.argmax(after))
    assert trainer.best.score == max(after) and not trainer.val_history
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["iteration"] == trainer.best.iteration
    at = best["iteration"]
    scored = initial if at == 0 else load_checkpoint(trainer.checkpoints.path_for(at))["policy"]
    assert all(torch.equal(best["policy"][k], scored[k]) for k in scored)


def test_saturating_policy_is_logged_not_warned_about(tmp_path, capsys):
    """An initial std of 5 puts ≈ 84 % of the action components beyond the ±1 box; the
    fraction is logged, with no warning (healthy HalfCheetah runs clip > 50 %)."""
    cfg = RLConfig(iterations=6, meta_batch=2, episodes_per_task=2, horizon=8,
                   hidden_sizes=(8,), threads=1, init_std=5.0, select_best="last")
    trainer = MetaRLTrainer(cfg, tmp_path / "run", progress=False)
    trainer.train()
    clipped = [h["actions/clipped_before_adaptation"] for h in trainer.history]
    assert min(clipped) > 0.5
    err = capsys.readouterr().err
    assert "action box" not in err and "warning" not in err


def test_drift_warning_compares_the_pre_update_kl_with_the_trust_region():
    hist = [{"iteration": 1, "trpo/kl_initial": 0.008}, {"iteration": 2, "trpo/kl_initial": 0.06}]
    assert drift_warning(hist[:1], max_kl=0.01) is None  # healthy runs stay ≤ 1.4 · max_kl
    message = drift_warning(hist, max_kl=0.01)
    assert message and "iteration 2" in message and "KL 0.06, 6x" in message
    assert "step_anatomy.py --run-dir <this run> --first 2" in message
    assert drift_warning(hist, max_kl=0.02) is None  # 3x a looser region
    assert drift_warning(hist, max_kl=0.01, factor=10) is None
    assert drift_warning([], max_kl=0.01) is None
    assert drift_warning([{"iteration": 1}], max_kl=0.01) is None  # no kl_initial logged


def test_drift_warning_is_given_once_in_training(tmp_path, capsys, monkeypatch):
    """With the threshold at zero every accepted step trips it; the run says so once."""
    import functools

    import metarl.rl.trainer as rl_trainer

    monkeypatch.setattr(rl_trainer, "drift_warning",
                        functools.partial(rl_trainer.drift_warning, factor=0.0))
    cfg = RLConfig(iterations=3, meta_batch=2, episodes_per_task=2, horizon=8,
                   hidden_sizes=(8,), threads=1, select_best="last")
    trainer = MetaRLTrainer(cfg, tmp_path / "run", progress=False)
    trainer.train()
    moved = [h["trpo/kl_initial"] for h in trainer.history]
    first = next(i for i, kl in enumerate(moved) if kl > 0) + 1
    err = capsys.readouterr().err
    assert err.count("moved the pre-update policy") == 1 and f"at iteration {first} " in err


@pytest.mark.parametrize("inner, old_form", [
    ({}, False), ({"inner_steps": 2, "inner_batches": "fresh", "later_inner_lr": 0.05}, False),
    ({}, True)])
def test_rl_resume_reproduces_uninterrupted_run(tmp_path, inner, old_form):
    """A resumed run ends exactly where an uninterrupted one does, also when it resumes from
    a checkpoint written before the shared run state (``old_form``)."""
    base = RLConfig(iterations=4, meta_batch=3, episodes_per_task=2, horizon=10,
                    hidden_sizes=(16,), threads=1, checkpoint_every=2, eval_every=1,
                    eval_tasks=2, eval_timesteps=20, **inner)
    full = MetaRLTrainer(base, tmp_path / "full", progress=False)
    full.train()
    MetaRLTrainer(replace(base, iterations=2), tmp_path / "part", progress=False).train()
    if old_form:
        to_old_rl_form(CheckpointDir(tmp_path / "part" / "checkpoints").path_for(2))
    resumed = MetaRLTrainer(base, tmp_path / "part", resume=True, progress=False)
    assert resumed.iteration == 2
    resumed.train()
    for (k, a), b in zip(full.policy.state_dict().items(), resumed.policy.state_dict().values()):
        assert torch.equal(a, b), k
    assert resumed.best == full.best and resumed.val_history == full.val_history


def test_fresh_inner_batches_are_sampled_by_the_partly_adapted_policy(tmp_path):
    """--inner-batches fresh: inner step k trains on episodes of the policy after k - 1
    steps. The recorded log-probabilities of the second batch's actions must be those of the
    once-adapted policy (and not of θ), and each batch's return is logged."""
    cfg = RLConfig(iterations=1, meta_batch=3, episodes_per_task=2, horizon=10,
                   hidden_sizes=(16,), threads=1, inner_steps=2, inner_batches="fresh",
                   inner_lr=0.3, later_inner_lr=0.1, select_best="last")
    trainer = MetaRLTrainer(cfg, tmp_path / "run", progress=False)
    seen = []
    trainer.before_outer = lambda support, query: seen.append((support, query))
    theta = {k: v.detach().clone() for k, v in trainer.policy.named_parameters()}
    scalars, ok = trainer.step()
    assert ok and trainer.learner.inner_lr == [0.3, 0.1]
    (first, second), query = seen[0]
    policy = trainer.policy

    def behaviour(params, batch):
        logp = policy.log_prob(params, batch.observations, batch.actions)
        return torch.where(batch.mask > 0, logp, torch.zeros_like(logp))

    once = trainer.learner.adapt(theta, [first])  # from θ before the iteration's TRPO step
    twice = trainer.learner.adapt(theta, [first, second])
    stacked_theta = {k: v.expand(3, *v.shape) for k, v in theta.items()}
    for batch, params in ((first, stacked_theta), (second, once), (query, twice)):
        torch.testing.assert_close(batch.log_probs * batch.mask, behaviour(params, batch))
    assert not torch.allclose(second.log_probs * second.mask, behaviour(stacked_theta, second))
    assert set(scalars) >= {"returns/before_adaptation", "returns/after_1_inner_steps",
                            "returns/after_adaptation"}


def test_halfcheetah_smoke(tmp_path):
    out = tmp_path / "hc"
    run_script("train_rl.py", "--preset", "halfcheetah-vel", *TINY, "--out-dir", str(out))
    res = json.loads((out / "results.json").read_text())
    assert np.isfinite(res["last_10_iterations"]["returns/after_adaptation"])
    # the evaluation's reward terms: HalfCheetah never ends an episode early, so each goal's
    # return is the horizon times the sum of its terms' means per step
    proc = run_script("adapt_rl.py", "--run-dir", str(out), "--num-tasks", "2", "--timesteps",
                      "24", "--steps", "1", "--threads", "1", "--out-dir", str(tmp_path / "ev"))
    assert "reward terms per env step" in proc.stdout and "reward_ctrl" in proc.stdout
    ev = json.loads((tmp_path / "ev" / "results.json").read_text())
    terms = {k: np.asarray(v) for k, v in ev["reward_terms_per_task"].items()}
    assert set(terms) == {"reward_forward", "reward_ctrl"}
    np.testing.assert_allclose(12 * sum(terms.values()).T, ev["returns_per_task"], rtol=1e-5)
    assert np.asarray(ev["terminated_fraction_per_task"]).sum() == 0


def test_bench_trpo_smoke(tmp_path):
    out = call_script("bench_trpo.py", "--tasks", "2", "--episodes", "2", "--horizon", "6",
                      "--obs-dim", "3", "--act-dim", "2", "--repeats", "1",
                      "--out", str(tmp_path / "b.json"), "--compare-malloc")
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "b.json").read_text())
    rows = result["rows"]
    assert len(rows) == 6 and all(r["max_abs_diff_vs_reference"] < 1e-5 for r in rows)
    assert rows[0]["mode"] == "loop" and rows[0]["fisher"] == "autograd"  # the reference
    assert rows[0]["ratio_to_reference"] == 1.0 and all(r["ratio_to_reference"] > 0 for r in rows)
    assert "x the reference" in out.stdout and result["machine"]["torch"] == torch.__version__
    # a second run never replaces the first's numbers
    again = call_script("bench_trpo.py", "--tasks", "2", "--episodes", "2", "--horizon", "6",
                        "--obs-dim", "3", "--act-dim", "2", "--repeats", "1", "--modes", "vmap",
                        "--out", str(tmp_path / "b.json"))
    assert again.returncode == 0 and json.loads((tmp_path / "b.json").read_text()) == result
    assert json.loads((tmp_path / "b-2.json").read_text())["rows"][0]["reference"] == \
        "vmap/autograd"
    # --compare-malloc: each round one child process per allocator, both timed
    assert all(r["seconds_default_malloc"] > 0 for r in rows) and "x faster" in out.stdout
    assert out.stdout.index("round 1/1: heap") < out.stdout.index("round 1/1: default")
    assert result["heap_allocator"] in (True, False)  # False off glibc


@pytest.mark.parametrize("name", sorted(RL_PRESETS))
def test_every_rl_preset_is_a_valid_config(name):
    cfg = apply_rl_preset(RLConfig(), name)
    cfg.validate()
    assert cfg.preset == name and cfg.iterations == 500
    expected = {"navigation": (20, 0.1), "navigation-code": (20, 0.5)}.get(name, (40, 0.1))
    assert (cfg.meta_batch, cfg.inner_lr) == expected


def _fake_evaluation(rng: np.random.Generator, goals: np.ndarray, source: str) -> dict:
    """An adapt_rl.py-shaped result on ``goals`` with random returns after 0..2 steps."""
    returns = rng.normal([-40.0, -10.0, -4.0], [5.0, 2.0, 1.0], (len(goals), 3))
    return {"env": "metarl/Navigation2D-v0", "steps": [0, 1, 2], "step_sizes": [0.5, 0.25],
            "tasks": goals.tolist(), "returns_per_task": returns.tolist(),
            "returns_mean": returns.mean(0).tolist(), "policy": {"source": source}}


def test_summarize_seeds_against_numpy():
    rng = np.random.default_rng(3)
    goals = rng.uniform(-0.5, 0.5, (10, 2))
    evals = [_fake_evaluation(rng, goals, f"runs/s{i}/checkpoints/best.pt") for i in range(4)]
    summary = summarize_seeds(evals, reference=[-40.4, -11.7, -3.3])
    means = np.array([e["returns_mean"] for e in evals])
    np.testing.assert_allclose(summary["mean"], means.mean(0), rtol=1e-12)
    np.testing.assert_allclose(summary["std"], means.std(0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(summary["median"], np.median(means, 0), rtol=1e-12)
    assert summary["min"] == means.min(0).tolist() and summary["max"] == means.max(0).tolist()
    assert summary["seeds_reaching_reference"] == [
        int((means[:, k] >= r).sum()) for k, r in enumerate([-40.4, -11.7, -3.3])]
    assert summary["num_seeds"] == 4 and summary["num_goals"] == 10


def test_seed_summary_script_and_mismatched_evaluations(tmp_path):
    rng = np.random.default_rng(4)
    goals = rng.uniform(-0.5, 0.5, (6, 2))
    folders = []
    for i in range(3):
        folder = tmp_path / f"run{i}" / "adapt-6goals-seed1"
        folder.mkdir(parents=True)
        source = str(tmp_path / f"run{i}" / "checkpoints" / "best.pt")
        (folder / "results.json").write_text(json.dumps(_fake_evaluation(rng, goals, source)))
        folders.append(str(folder))
    proc = run_script("seed_summary.py", "--results", *folders, "--reference", "-40", "-10",
                      "--out-dir", str(tmp_path / "summary"))
    summary = json.loads((tmp_path / "summary" / "summary.json").read_text())
    assert summary["labels"] == ["run0", "run1", "run2"]
    assert (tmp_path / "summary" / "seeds.png").is_file()
    assert "3 seeds, 6 goals" in proc.stdout and "reached" in proc.stdout
    proc = call_script("seed_summary.py", "--results", *folders, "--labels", "a",
                       "--out-dir", str(tmp_path / "one-label"))
    assert proc.returncode == 2 and "got 1 --labels for 3 --results" in proc.stderr
    # a policy evaluated on other goals is not a seed of the same comparison
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text(json.dumps(
        _fake_evaluation(rng, goals[::-1].copy(), "x/checkpoints/best.pt")))
    proc = call_script("seed_summary.py", "--results", folders[0], str(other),
                       "--out-dir", str(tmp_path / "bad"))
    assert proc.returncode == 2 and "evaluations were made on different goals" in proc.stderr
    assert not (tmp_path / "bad").exists()


def test_paired_difference_against_a_per_goal_loop():
    """Per step, the mean of the per-goal differences and its 1.96 s/√n half-width, computed
    goal by goal; only the steps both evaluations have (the paper's data has five)."""
    rng = np.random.default_rng(5)
    goals = rng.uniform(-0.5, 0.5, (12, 2))
    a = _fake_evaluation(rng, goals, "a/checkpoints/best.pt")
    b = _fake_evaluation(rng, goals, "b/checkpoints/best.pt")
    b["steps"] = [0, 1, 2, 3]
    b["returns_per_task"] = [row + [-1.0] for row in b["returns_per_task"]]
    out = paired_difference(a, b)
    assert out["steps"] == [0, 1, 2] and out["num_goals"] == 12
    for k in range(3):
        diffs = [ra[k] - rb[k] for ra, rb in zip(a["returns_per_task"], b["returns_per_task"])]
        mean = sum(diffs) / len(diffs)
        sd = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5
        assert out["difference"][k] == pytest.approx(mean, rel=1e-12)
        assert out["difference_ci95"][k] == pytest.approx(1.96 * sd / len(diffs) ** 0.5,
                                                          rel=1e-12)
        assert out["a_higher"][k] == sum(d > 0 for d in diffs)
        assert out["mean_a"][k] - out["mean_b"][k] == pytest.approx(mean, rel=1e-12)
    with pytest.raises(MetaRLError, match="different goals"):
        paired_difference(a, {**b, "tasks": goals[::-1].tolist()})
    with pytest.raises(MetaRLError, match="share no adaptation steps"):
        paired_difference(a, {**b, "steps": [1, 2, 3, 4]})


def test_paired_compare_script(tmp_path):
    rng = np.random.default_rng(6)
    goals = rng.uniform(-0.5, 0.5, (8, 2))
    files = []
    for name in ("ours", "paper"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(_fake_evaluation(rng, goals, f"{name}/checkpoints/best.pt")))
        files.append(str(path))
    proc = run_script("paired_compare.py", "--results", *files, "--labels", "ours", "paper",
                      "--out", str(tmp_path / "paired.json"))
    assert "8 shared goals" in proc.stdout and "after 2 step(s)" in proc.stdout
    out = json.loads((tmp_path / "paired.json").read_text())
    assert out["labels"] == ["ours", "paper"] and len(out["difference"]) == 3
    proc = call_script("paired_compare.py", "--results", files[0],
                       "--out", str(tmp_path / "x.json"))
    assert proc.returncode == 2 and "exactly two evaluations" in proc.stderr
    proc = call_script("paired_compare.py", "--results", *files,
                       "--out", str(tmp_path / "paired.json"))
    assert proc.returncode == 2 and "already exists" in proc.stderr


def test_resuming_a_finished_run_changes_nothing(nav_run, tmp_path):
    """--resume on a run that has done its --iterations leaves every file as it is, even with
    other resumable settings (they used to be written into config.json and results.json);
    a setting that changes the computation is still refused, and more iterations train on.
    The run is a copy under another path: a moved run folder stays resumable."""
    run = tmp_path / "nav"
    shutil.copytree(nav_run, run)
    before = snapshot(run)
    proc = run_script("train_rl.py", "--preset", "navigation", *TINY, "--out-dir", str(run),
                      "--resume", "--torch-threads", "1", "--keep-checkpoints", "4")
    assert "is a finished run (2 iterations); nothing was changed" in proc.stdout
    assert f"evaluate: metarl adapt --run-dir {run}" in proc.stdout
    assert snapshot(run) == before
    proc = call_script("train_rl.py", "--preset", "navigation", *TINY, "--out-dir", str(run),
                       "--resume", "--seed", "7")
    assert proc.returncode == 2 and "used different settings for seed" in proc.stderr
    assert snapshot(run) == before
    run_script("train_rl.py", "--preset", "navigation", *TINY, "--out-dir", str(run),
               "--resume", "--iterations", "3")
    res = json.loads((run / "results.json").read_text())
    assert res["iterations"] == 3 and res["finished"] is True


def test_skipped_step_count_survives_a_resume(tmp_path):
    """The count of non-finite steps in a row is part of the checkpoint (metarl/runs/loop.py)."""
    cfg = RLConfig(iterations=1, meta_batch=2, episodes_per_task=2, horizon=8,
                   hidden_sizes=(8,), threads=1, eval_every=1000)
    trainer = MetaRLTrainer(cfg, tmp_path / "run", progress=False)
    trainer.bad_steps = 2
    path = trainer.save()
    resumed = MetaRLTrainer(cfg, tmp_path / "run", progress=False, resume=True)
    assert (resumed.iteration, resumed.bad_steps) == (0, 2), path

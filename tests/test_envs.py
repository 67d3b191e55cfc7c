"""The metarl/... task envs: API checks, reward formulas, task protocol, batched twin, errors."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import metarl.envs
from metarl.envs import Direction, Goal2D, TargetVelocity
from metarl.envs.physics import PhysicsPool
from metarl.errors import MetaRLError

ENV_IDS = list(metarl.envs.ENV_IDS)
MUJOCO_IDS = [i for i in ENV_IDS if "Navigation" not in i]


def make(env_id: str, **kwargs):
    return gym.make(env_id, **kwargs)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Box observation space m.*infinity.*")
        yield


def rollout_infos(env, steps: int, seed: int = 0):
    """(action, obs_after, reward, terminated, info) for ``steps`` random actions.

    ``info`` also gets the state the formulas need: ``z`` (qpos[2]) and ``cfrc_ext``.
    """
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    data = getattr(env.unwrapped, "data", None)
    out = []
    for _ in range(steps):
        action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float64)
        obs, reward, terminated, _, info = env.step(action)
        if data is not None:
            info = {**info, "z": data.qpos[2], "cfrc_ext": data.cfrc_ext.copy()}
        out.append((action, obs, reward, terminated, info))
        if terminated:
            break
    return out


# --- API conformance --------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("oracle", [False, True])
def test_gymnasium_check_env(env_id, oracle):
    env = make(env_id, oracle=oracle)
    gym_check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == metarl.envs.ENV_IDS[env_id][1]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env(env_id):
    sb3_check_env(make(env_id).unwrapped, warn=False)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_oracle_appends_task(env_id):
    env = make(env_id, oracle=True).unwrapped
    plain = make(env_id).unwrapped
    task = env.sample_tasks(1, np.random.default_rng(3))[0]
    env.set_task(task)
    obs, _ = env.reset(seed=1)
    k = env.task_space.dim
    assert env.observation_space.shape[0] == plain.observation_space.shape[0] + k
    np.testing.assert_array_equal(obs[-k:], task.to_array())
    obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs[-k:], task.to_array())


# --- rewards against their formulas -----------------------------------------------------------
def _ant_common(env, action, info):
    healthy = 0.2 <= info["z"] <= 1.0
    contact = np.clip(info["cfrc_ext"], -1.0, 1.0)
    return {
        "reward_survive": 0.05 * healthy,
        "reward_ctrl": -0.005 * np.sum(action**2),
        "reward_contact": -5e-4 * np.sum(contact**2),
    }


FORMULAS = {
    "metarl/HalfCheetahVel-v0": lambda env, task, a, info: {
        "reward_forward": -abs(info["x_velocity"] - task.velocity),
        "reward_ctrl": -0.05 * np.sum(a**2),
    },
    "metarl/HalfCheetahDir-v0": lambda env, task, a, info: {
        "reward_forward": task.direction * info["x_velocity"],
        "reward_ctrl": -0.05 * np.sum(a**2),
    },
    "metarl/AntVel-v0": lambda env, task, a, info: {
        "reward_forward": -abs(info["x_velocity"] - task.velocity),
        "reward_bonus": 1.0,
        **_ant_common(env, a, info),
    },
    "metarl/AntDir-v0": lambda env, task, a, info: {
        "reward_forward": task.direction * info["x_velocity"],
        "reward_bonus": 0.0,
        **_ant_common(env, a, info),
    },
    "metarl/AntPos-v0": lambda env, task, a, info: {
        "reward_forward": -abs(info["x_position"] - task.x) - abs(info["y_position"] - task.y),
        "reward_bonus": 4.0,
        **_ant_common(env, a, info),
    },
}
FORMULAS.update({k.replace("-v0", "-v1"): f for k, f in FORMULAS.items() if "-v0" in k})


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_reward_matches_formula(env_id):
    env = make(env_id)
    u = env.unwrapped
    task = u.sample_tasks(1, np.random.default_rng(7))[0]
    u.set_task(task)
    for action, _, reward, terminated, info in rollout_infos(env, 40):
        expected = FORMULAS[env_id](env, task, action, info)
        for name, value in expected.items():
            assert info[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
        assert reward == pytest.approx(sum(info[k] for k in u.reward_term_names), abs=1e-12)
        if "Ant" in env_id:
            assert terminated == (not 0.2 <= info["z"] <= 1.0)


def test_ant_v1_has_the_papers_time_step_and_rllabs_starting_pose():
    """v1: 0.02 s per step (two 0.01 s substeps) and the XML's declared standing pose, which
    rllab started from; v0 keeps Gymnasium's 0.05 s and qpos0."""
    standing = [0, 0, 0.55, 1, 0, 0, 0, 0, 1, 0, -1, 0, -1, 0, 1]
    for name in ("Vel", "Dir", "Pos"):
        new, old = make(f"metarl/Ant{name}-v1").unwrapped, make(f"metarl/Ant{name}-v0").unwrapped
        assert new.dt == pytest.approx(0.02) and new.frame_skip == 2
        assert old.dt == pytest.approx(0.05) and old.frame_skip == 5
        np.testing.assert_array_equal(new.init_qpos, standing)
        assert old.init_qpos[2] == 0.75 and not old.init_qpos[7:].any()
        obs, _ = new.reset(seed=0)  # starts there, up to the reset noise U(-0.1, 0.1)
        assert abs(new.data.qpos[2] - 0.55) <= 0.1
    with pytest.raises(ValueError, match="unknown init_pose 'lying'"):
        make("metarl/AntVel-v0", init_pose="lying")


def test_half_cheetah_v1_has_the_papers_time_step():
    """v1: one 0.01 s substep per action, as rllab's HalfCheetah; v0 keeps Gymnasium's five."""
    for name in ("Vel", "Dir"):
        new = make(f"metarl/HalfCheetah{name}-v1").unwrapped
        old = make(f"metarl/HalfCheetah{name}-v0").unwrapped
        assert new.dt == pytest.approx(0.01) and new.frame_skip == 1
        assert old.dt == pytest.approx(0.05) and old.frame_skip == 5
        np.testing.assert_array_equal(new.init_qpos, old.init_qpos)


@pytest.mark.parametrize("version, dt", [("v0", 0.05), ("v1", 0.01)])
def test_half_cheetah_velocity_is_the_root_displacement(version, dt):
    env = make(f"metarl/HalfCheetahVel-{version}")
    previous = env.reset(seed=0)[1]["x_position"]
    for *_, info in rollout_infos(env, 10):
        assert info["x_velocity"] == pytest.approx((info["x_position"] - previous) / dt)
        previous = info["x_position"]


def test_ant_reaches_contact_forces():
    """Contact forces are nonzero once the Ant stands on the floor (mj_rnePostConstraint)."""
    env = make("metarl/AntVel-v0")
    contacts = [info["reward_contact"] for *_, info in rollout_infos(env, 30)]
    assert min(contacts) < 0.0


def test_navigation_reward_and_termination():
    env = make("metarl/Navigation2D-v0", task=Goal2D(0.15, -0.05))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    obs, reward, terminated, _, info = env.step(np.array([5.0, -0.2]))  # x clipped to 1 -> 0.1
    np.testing.assert_allclose(obs, [0.1, -0.02])
    assert reward == pytest.approx(-np.hypot(0.1 - 0.15, -0.02 + 0.05))
    assert info["reward_distance"] == reward and not terminated
    obs, reward, terminated, *_ = env.step(np.array([0.5, -0.25]))  # moves by (0.05, -0.025)
    assert terminated  # |dx| = 0, |dy| = 0.005 < 0.01


# --- the task protocol ------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_task_sampling_is_deterministic(env_id):
    env = make(env_id).unwrapped
    a = env.sample_tasks(50, np.random.default_rng(11))
    b = env.sample_tasks(50, np.random.default_rng(11))
    c = env.sample_tasks(50, np.random.default_rng(12))
    assert a == b and a != c
    values = np.stack([t.to_array() for t in a])
    space = env.task_space
    assert (values >= space.low).all() and (values <= space.high).all()
    if space.choices is not None:
        assert set(values.ravel()) == {-1.0, 1.0}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_set_task_changes_the_reward(env_id):
    env = make(env_id)
    first, second = env.unwrapped.sample_tasks(2, np.random.default_rng(5))
    if first == second:
        second = type(first)(*(-first.to_array()))
    env.unwrapped.set_task(first)
    assert env.unwrapped.get_task() == first
    r1 = [r for _, _, r, _, _ in rollout_infos(env, 5)]
    env.unwrapped.set_task(second)
    r2 = [r for _, _, r, _, _ in rollout_infos(env, 5)]
    assert r1 != r2


def test_task_at_construction_and_mapping():
    env = make("metarl/HalfCheetahVel-v0", task={"velocity": 0.3}).unwrapped
    assert env.get_task() == TargetVelocity(0.3)
    env.set_task(TargetVelocity(velocity=1.7))
    assert env.get_task().velocity == 1.7
    assert make("metarl/AntDir-v0").unwrapped.get_task() == Direction(1.0)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_keeps_task_and_settings(env_id):
    env = make(env_id, oracle=True).unwrapped
    task = env.sample_tasks(1, np.random.default_rng(2))[0]
    env.set_task(task)
    for clone in (pickle.loads(pickle.dumps(env)), copy.deepcopy(env)):
        assert clone.get_task() == task and clone.oracle


# --- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "env_id, task, message",
    [
        ("metarl/HalfCheetahVel-v0", {"vel": 1.0}, r"unknown field\(s\) \['vel'\].*velocity"),
        ("metarl/Navigation2D-v0", {"x": 0.1}, r"missing field\(s\) \['y'\]"),
        ("metarl/Navigation2D-v0", Goal2D(0.7, 0.0), r"out of range.*\[-0.5, 0.5\]"),
        ("metarl/AntPos-v0", Goal2D(0.0, -3.5), r"out of range.*\[-3.0, 3.0\]"),
        ("metarl/AntVel-v0", TargetVelocity(float("nan")), "non-finite"),
        ("metarl/AntDir-v0", Direction(0.5), r"one of \(-1.0, 1.0\)"),
        ("metarl/AntDir-v0", TargetVelocity(1.0), "expected a Direction task"),
    ],
)
def test_bad_tasks_are_rejected(env_id, task, message):
    env = make(env_id).unwrapped
    with pytest.raises(MetaRLError, match=message):
        env.set_task(task)
    with pytest.raises(MetaRLError, match=message):
        make(env_id, task=task)


def test_task_range_widens_the_task_space():
    env = make("metarl/Navigation2D-v0", task_range=(-1.0, 1.0)).unwrapped
    env.set_task(Goal2D(0.9, -0.9))
    assert max(abs(t.x) for t in env.sample_tasks(200, np.random.default_rng(0))) > 0.5
    with pytest.raises(MetaRLError, match="fixed set of tasks"):
        make("metarl/HalfCheetahDir-v0", task_range=(0.0, 1.0))
    with pytest.raises(MetaRLError, match="numpy.random.Generator"):
        env.sample_tasks(3, 0)


def test_task_space_needs_a_range_or_some_choices():
    from metarl.envs.base import TaskSpace

    with pytest.raises(ValueError, match="either low and high, or choices"):
        TaskSpace(Goal2D, low=0.0)
    with pytest.raises(ValueError, match="at least one value"):
        TaskSpace(Goal2D, choices=[])
    with pytest.raises(MetaRLError, match="finite with low <= high"):
        TaskSpace(Goal2D, low=1.0, high=0.0)


# --- rendering --------------------------------------------------------------------------------
def test_navigation_renders_rgb():
    env = make("metarl/Navigation2D-v0", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.array([1.0, 1.0]))
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    assert (frame != 255).any()


def test_render_failure_is_a_clear_error(monkeypatch):
    env = make("metarl/HalfCheetahDir-v0", render_mode="rgb_array").unwrapped
    env.reset(seed=0)

    def broken(mode):
        raise RuntimeError("no OpenGL")

    monkeypatch.setattr(env.mujoco_renderer, "render", broken)
    with pytest.raises(MetaRLError, match="MUJOCO_GL=egl"):
        env.render()


def test_mujoco_renders_rgb_with_egl():
    """In a fresh process with MUJOCO_GL=egl (a GL backend is chosen at first use)."""
    code = (
        "import gymnasium as gym, metarl.envs\n"
        "env = gym.make('metarl/AntPos-v0', render_mode='rgb_array', width=48, height=32)\n"
        "env.reset(seed=0); f = env.render(); print(f.shape, f.dtype)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "MUJOCO_GL": "egl"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        pytest.skip(f"no working EGL here: {result.stderr.strip().splitlines()[-1:]}")
    assert "(32, 48, 3) uint8" in result.stdout


# --- the batched twin equals the Gymnasium env's own step --------------------------------------
def _compare_batched(env_id: str, backend: str, steps: int, tolerance: float) -> None:
    """Step 3 batched copies against 3 Gymnasium envs; halfway, envs 0 and 2 restart
    (``VectorTaskEnv.restart``) as ``reset(seed=...)`` would."""
    env = make(env_id).unwrapped
    rng = np.random.default_rng(0)
    tasks = env.sample_tasks(3, rng)
    seeds = np.array([4, 5, 6])
    actions = rng.uniform(
        env.action_space.low, env.action_space.high, (steps, 3, env.action_space.shape[0])
    )
    pool = PhysicsPool(2)
    venv = env.batched(3, pool=pool, backend=backend)
    obs = venv.reset(env.task_space.to_array(tasks), seeds)
    singles = []
    for i in range(3):
        single = make(env_id).unwrapped
        single.set_task(tasks[i])
        first, _ = single.reset(seed=int(seeds[i]))
        np.testing.assert_array_equal(obs[i], first)
        singles.append(single)
    active = np.ones(3, bool)
    for t in range(steps):
        if t == steps // 2:
            again = np.array([0, 2])
            restarted = venv.restart(again, np.array([7, 8]))
            for row, (i, seed) in enumerate(zip(again, (7, 8), strict=True)):
                first, _ = singles[i].reset(seed=seed)
                np.testing.assert_allclose(restarted[row], first, rtol=tolerance, atol=tolerance)
                active[i] = True
        venv.step_async(actions[t], active)
        step = venv.step_wait()
        for i, single in enumerate(singles):
            if not active[i]:
                continue
            o, r, term, _, info = single.step(actions[t, i])
            np.testing.assert_allclose(step.observations[i], o, rtol=tolerance, atol=tolerance)
            assert step.rewards[i] == pytest.approx(r, rel=tolerance, abs=tolerance)
            terms = [info[k] for k in venv.reward_term_names]
            np.testing.assert_allclose(step.reward_terms[i], terms, rtol=tolerance, atol=tolerance)
            assert step.terminated[i] == term
            active[i] = not term
    venv.close()
    pool.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_batched_twin_equals_env_step_exactly(env_id):
    """The ``threads`` backend makes Gymnasium's calls: bit-identical for a whole episode."""
    _compare_batched(env_id, "threads", steps=60, tolerance=0.0)


needs_mujoco_batch = pytest.mark.skipif(
    importlib.util.find_spec("mujoco.batch") is None, reason="mujoco.batch needs mujoco >= 3.17"
)


@needs_mujoco_batch
@pytest.mark.parametrize("env_id", [i for i in MUJOCO_IDS if "HalfCheetah" in i])
def test_batched_twin_with_batch_backend_equals_env_step_exactly(env_id):
    """``batch`` carries each simulation's solver warm start as the env's ``MjData`` does:
    bit-identical for 200 steps (whole episodes, restarts included), where the chaotic
    HalfCheetah turns any difference in the solver's start into a visible one."""
    _compare_batched(env_id, "batch", steps=200, tolerance=0.0)


@needs_mujoco_batch
def test_batch_backend_refuses_ant_and_rollout_is_gone():
    env = make("metarl/AntVel-v0").unwrapped
    with pytest.raises(MetaRLError, match="backend='threads'"):
        env.batched(2, backend="batch")
    with pytest.raises(MetaRLError, match="'rollout' was removed: mujoco.rollout restarts"):
        make("metarl/HalfCheetahVel-v0").unwrapped.batched(2, backend="rollout")
    with pytest.raises(MetaRLError, match="unknown physics backend"):
        env.batched(2, backend="gpu")


# --- HalfCheetah's settotalmass applied without MuJoCo's deprecation warning ---------------------
HALF_CHEETAH_IDS = [i for i in MUJOCO_IDS if "HalfCheetah" in i]
REFERENCE = os.path.join(os.path.dirname(__file__), "data", "half_cheetah_reference.npz")


@contextlib.contextmanager
def mujoco_warnings() -> Iterator[list[str]]:
    """Collect what MuJoCo warns (``mju_warning``) inside the block, then restore the handler."""
    import mujoco

    caught: list[str] = []
    before = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(caught.append)
    try:
        yield caught
    finally:
        mujoco.set_mju_user_warning(before)


def _model_fields(model) -> dict[str, np.ndarray]:
    """Every array of an ``MjModel``, its option and its statistics, by name."""
    fields = {}
    for owner, prefix in ((model, ""), (model.opt, "opt."), (model.stat, "stat.")):
        for name in dir(owner):
            if name.startswith("_"):
                continue
            value = getattr(owner, name)
            if isinstance(value, (np.ndarray, float, int)) and not isinstance(value, bool):
                fields[prefix + name] = np.asarray(value)
    return fields


@pytest.mark.parametrize("env_id", HALF_CHEETAH_IDS)
def test_half_cheetah_compiles_without_mujoco_warnings(env_id):
    with mujoco_warnings() as caught:
        env = make(env_id)
        env.reset(seed=0)
        env.step(env.action_space.sample())
    assert caught == []


def test_half_cheetah_model_equals_mujocos_settotalmass_compilation():
    """Every array of the model (masses, inertias, the constants derived from them, the
    solver's ``stat.meaninertia``) equals what MuJoCo's compiler makes of the XML's
    ``settotalmass`` itself, bit for bit."""
    import mujoco

    env = make("metarl/HalfCheetahVel-v0").unwrapped
    with mujoco_warnings() as caught:
        legacy = mujoco.MjModel.from_xml_path(env.fullpath)
    assert any("settotalmass" in w for w in caught), "the XML no longer sets settotalmass?"
    ours, theirs = _model_fields(env.model), _model_fields(legacy)
    assert ours.keys() == theirs.keys()
    differ = [k for k in ours if not np.array_equal(ours[k], theirs[k], equal_nan=True)]
    assert differ == []


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahVel-v0", "metarl/HalfCheetahVel-v1"])
def test_half_cheetah_trajectory_equals_the_settotalmass_reference(env_id):
    """200 random-action steps equal, bit for bit, those recorded from the envs as they were
    when MuJoCo's compiler applied ``settotalmass`` (tests/data; recorded with the mujoco
    version stored beside them, whose arithmetic the comparison needs)."""
    import mujoco

    reference = np.load(REFERENCE)
    if str(reference["mujoco_version"]) != mujoco.__version__:
        pytest.skip(f"reference recorded with mujoco {reference['mujoco_version']}")
    env = make(env_id)
    data = env.unwrapped.data
    rng = np.random.default_rng(0)
    env.reset(seed=3)
    qpos, qvel, rewards = [data.qpos.copy()], [data.qvel.copy()], []
    for _ in range(200):
        _, reward, *_ = env.step(rng.uniform(-1.0, 1.0, 6))
        qpos.append(data.qpos.copy())
        qvel.append(data.qvel.copy())
        rewards.append(reward)
    key = env_id.split("/")[1]
    np.testing.assert_array_equal(np.array(qpos), reference[f"{key}/qpos"])
    np.testing.assert_array_equal(np.array(qvel), reference[f"{key}/qvel"])
    np.testing.assert_array_equal(np.array(rewards), reference[f"{key}/reward"])
    np.testing.assert_array_equal(env.unwrapped.model.body_mass, reference[f"{key}/body_mass"])


def test_a_failed_threaded_step_is_waited_for_before_it_is_forgotten(monkeypatch):
    """When one chunk of a threaded step raises, step_wait returns only after the others have
    ended (a reset right after would otherwise race them on their MjData)."""
    import threading
    import time

    import mujoco

    from metarl.envs.physics import PhysicsPool, ThreadedMujocoBatch

    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body><joint name='j' type='slide'/><geom size='.1'/></body>"
        "</worldbody><actuator><motor joint='j'/></actuator></mujoco>")
    pool = PhysicsPool(num_threads=2)
    batch = ThreadedMujocoBatch(model, 4, 1, pool)
    finished = []
    lock = threading.Lock()

    def chunk(lo, hi, ctrl, active):
        if lo == 0:
            raise RuntimeError("chunk 0 failed")
        time.sleep(0.3)
        with lock:
            finished.append(lo)

    monkeypatch.setattr(batch, "_step_chunk", chunk)
    batch.step_async(np.zeros((4, 1)), np.ones(4, dtype=bool))
    with pytest.raises(RuntimeError, match="chunk 0 failed"):
        batch.step_wait()
    assert sorted(finished) == [lo for lo, _ in batch._chunks if lo != 0]
    pool.close()


def test_a_before_after_video_shows_the_whole_episode(tmp_path):
    """adapt_rl.py --video: the start and every step up to the time limit (100 for
    navigation, which renders without OpenGL), saved as an animated GIF."""
    import torch
    from PIL import Image

    from metarl.rl.policies import GaussianMLPPolicy
    from metarl.rl.video import render_episode, save_gif

    env = make("metarl/Navigation2D-v0")
    task = env.unwrapped.sample_tasks(1, np.random.default_rng(0))[0]
    policy = GaussianMLPPolicy(2, 2, (8,))
    params = {k: v.detach() for k, v in policy.named_parameters()}
    last_bias = [k for k in params if k.endswith("bias")][-1]
    params[last_bias] = torch.tensor([0.02, -0.01])  # a mean action that moves the point
    frames = render_episode("metarl/Navigation2D-v0", task, policy, params)
    assert len(frames) == 101 and frames[0].ndim == 3
    assert not np.array_equal(frames[0], frames[-1])
    gif = save_gif(frames, tmp_path / "video.gif")
    assert 1 < Image.open(gif).n_frames <= 101  # the GIF encoder merges repeated frames

"""adapt_rl.py --video on a machine without a display (issue 34, item 9): OpenGL is checked
before the evaluation (EGL, then OSMesa, when MUJOCO_GL is not set), a MUJOCO_GL that cannot
work is one line instead of a traceback at ``import mujoco``, and the video follows the agent
with a caption. The rendering test runs only where some back-end renders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from metarl.rl.evaluation import policy_spec
from metarl.rl.rendering import missing_library
from metarl.runs.checkpoint import POLICY, save_checkpoint

from .conftest import REPO, call_script

ENV = "metarl/HalfCheetahVel-v1"


@pytest.fixture(scope="module")
def cheetah_policy(tmp_path_factory) -> Path:
    """A random HalfCheetahVel policy file, as ``baselines_rl.py --baseline random`` writes."""
    import metarl.envs  # noqa: F401
    from metarl.rl.policies import GaussianMLPPolicy

    env = gym.make(ENV)
    assert env.observation_space.shape and env.action_space.shape
    policy = GaussianMLPPolicy(env.observation_space.shape[0], env.action_space.shape[0], (8,))
    path = tmp_path_factory.mktemp("policy") / "policy.pt"
    save_checkpoint(path, {"kind": POLICY, "policy": policy.state_dict(),
                           "policy_spec": policy_spec(policy), "env": ENV, "oracle": False,
                           "inner_lr": 0.1, "label": "random"})
    return path


def adapt_with_video(policy: Path, out: Path) -> list[str]:
    return ["--policy", str(policy), "--goal", "1.5", "--steps", "1", "--timesteps", "40",
            "--threads", "1", "--video", "--out-dir", str(out)]


def test_video_is_refused_before_the_evaluation_where_nothing_renders(cheetah_policy, tmp_path,
                                                                      monkeypatch):
    """No back-end renders (a headless machine without EGL or OSMesa): one line, before any
    rollout, and no output folder (the evaluation used to run first, then fail)."""
    import metarl.rl.evaluation
    import metarl.rl.rendering

    tried = []

    def no_gl(backend: str, timeout_s: float = 0) -> str:
        tried.append(backend)
        return f"no {backend} here"

    def evaluated(*args: object, **kwargs: object) -> None:
        raise AssertionError("the evaluation ran before rendering was checked")

    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(metarl.rl.rendering, "probe", no_gl)
    monkeypatch.setattr(metarl.rl.evaluation, "run_evaluation", evaluated)
    out = tmp_path / "adapt"
    proc = call_script("adapt_rl.py", *adapt_with_video(cheetah_policy, out))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: --video: cannot render {ENV} on this machine: no headless OpenGL back-end "
        "works (egl: no egl here; osmesa: no osmesa here); install EGL or OSMesa, or drop "
        "--video (nothing was evaluated)"]
    assert tried == ["egl", "osmesa"] and not out.exists()
    assert "MUJOCO_GL" not in os.environ


@pytest.mark.parametrize("value", ["osmesa", "bogus"])
def test_a_mujoco_gl_that_cannot_work_is_one_line_not_a_traceback(cheetah_policy, tmp_path,
                                                                  value):
    """``MUJOCO_GL=osmesa`` without the OSMesa library (or a value MuJoCo does not know) used to
    fail ``import mujoco`` with a traceback, whatever the command: it is set aside with a
    warning, and --video says it cannot render with it."""
    if value == "osmesa" and missing_library("osmesa") is None:
        pytest.skip("OSMesa is installed here")
    out = tmp_path / "adapt"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "adapt_rl.py"),
                           *adapt_with_video(cheetah_policy, out)], capture_output=True,
                          text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "MUJOCO_GL": value, "OMP_NUM_THREADS": "1"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"warning: MUJOCO_GL={value} cannot work here (")
    assert lines[1].startswith(f"error: --video: MUJOCO_GL={value} cannot render {ENV} here (")
    assert "unset MUJOCO_GL" in lines[1] and not out.exists()


FILM = """
import sys
import mujoco, numpy as np, torch
from metarl.envs import TargetVelocity
from metarl.errors import MetaRLError
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.rendering import prepare_rendering
from metarl.rl.video import TRACKING_CAMERA, filmed_env, render_episode

try:
    print("backend", prepare_rendering("{env}"))
except MetaRLError as err:
    print("SKIP", err)
    sys.exit(0)
env = filmed_env("{env}")
env.reset(seed=0)
env.render()
model = env.unwrapped.model
track = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, TRACKING_CAMERA)
print("camera", env.unwrapped.mujoco_renderer.camera_id == track != -1)
policy = GaussianMLPPolicy(17, 6, (8,))
params = {{k: v.detach() for k, v in policy.named_parameters()}}
task = TargetVelocity(1.5)
plain = render_episode("{env}", task, policy, params, max_frames=3)
shown = render_episode("{env}", task, policy, params, max_frames=3, stage="after 1 step")
band = next(r for r in range(plain[0].shape[0]) if (plain[0][r] == shown[0][r]).all())
print("caption", len(shown) == 3, 10 < band < plain[0].shape[0] // 4,
      all((p[band:] == s[band:]).all() and (p[:band] != s[:band]).any()
          for p, s in zip(plain, shown)))
"""


def test_the_video_follows_the_agent_and_carries_a_caption(tmp_path):
    """Where a headless back-end renders (EGL or OSMesa, picked without MUJOCO_GL): the
    tracking camera films the cheetah, and a caption band tops every frame, the rest of the
    frame as without it. In a fresh process: OpenGL settles its platform once per process."""
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    proc = subprocess.run([sys.executable, "-c", FILM.format(env=ENV)], capture_output=True,
                          text=True, timeout=300, cwd=REPO, env={**env, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    if proc.stdout.startswith("SKIP"):
        pytest.skip(proc.stdout.strip())
    lines = proc.stdout.strip().splitlines()
    assert lines[0] in ("backend egl", "backend osmesa"), lines
    assert lines[1:] == ["camera True", "caption True True True"], lines

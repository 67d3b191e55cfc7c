"""Before/after-adaptation animations of one goal, as animated GIFs (Pillow only).

An episode is rolled out in a plain Gymnasium env with ``render_mode="rgb_array"``, acting
with the policy's mean action (no exploration noise), so the animation shows what the
parameters do rather than sampling noise. A MuJoCo agent is filmed by the model's tracking
camera, which follows its centre of mass (Gymnasium's default view stays where the agent
started, and a running cheetah leaves it in a second), and every frame carries a caption: the
goal, which policy acts (before adaptation, or after how many steps) and the return so far.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from metarl.core.functional import Params
from metarl.envs.base import Task
from metarl.errors import MetaRLError
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.rendering import uses_opengl
from metarl.runs.io import atomic_write_bytes

TRACKING_CAMERA = "track"
"""The camera of Gymnasium's HalfCheetah and Ant models that follows the torso's centre of
mass (``mode="trackcom"``)."""


def describe_goal(task: Task) -> str:
    """``Goal2D(x=0.3, y=-0.2)`` as "x 0.3, y -0.2", for a caption."""
    return ", ".join(f"{f.name} {getattr(task, f.name):.3g}" for f in dataclasses.fields(task))


def caption(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """``frame`` with ``lines`` written at its top on a dark band (readable on any scene)."""
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    draw = ImageDraw.Draw(image, "RGBA")
    font = ImageFont.load_default(size=max(10, image.height // 30))
    text = "\n".join(lines)
    left, top, right, bottom = draw.multiline_textbbox((6, 4), text, font=font)
    draw.rectangle((0, 0, image.width, bottom + 4), fill=(0, 0, 0, 150))
    draw.multiline_text((6, 4), text, font=font, fill=(255, 255, 255, 255))
    return np.asarray(image)


def filmed_env(env_id: str, *, oracle: bool = False) -> gym.Env:
    """``env_id`` made to render RGB frames; a MuJoCo env is filmed by its
    :data:`TRACKING_CAMERA`."""
    import metarl.envs  # noqa: F401

    options: dict[str, Any] = {"camera_name": TRACKING_CAMERA} if uses_opengl(env_id) else {}
    return gym.make(env_id, render_mode="rgb_array", oracle=oracle, **options)


def render_episode(env_id: str, task: Task, policy: GaussianMLPPolicy, params: Params, *,
                   oracle: bool = False, seed: int = 0, max_frames: int | None = None,
                   stage: str | None = None) -> list[np.ndarray]:
    """RGB frames of one deterministic episode of ``task`` under ``params``: the start and
    every step until the episode ends (the env's time limit), or ``max_frames`` frames.

    ``stage`` (e.g. "before adaptation", "after 3 adaptation steps"): caption every frame
    with the goal, the stage, the time step and the return so far (:func:`filmed_env` sets
    the camera). Where OpenGL fails (check first with
    :func:`metarl.rl.rendering.prepare_rendering`), one clear :class:`MetaRLError`."""
    try:
        env = filmed_env(env_id, oracle=oracle)
        env.unwrapped.set_task(task)  # type: ignore[attr-defined]
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
    except Exception as err:  # GL back-ends fail in many ways on headless machines
        raise MetaRLError(f"cannot render {env_id} here ({type(err).__name__}: {err}); "
                          "drop --video or set MUJOCO_GL=egl/osmesa") from None
    returns = [0.0]
    device = next(iter(params.values())).device
    done = False
    while not done and (max_frames is None or len(frames) < max_frames):
        with torch.no_grad():
            o = torch.as_tensor(obs, dtype=torch.float32, device=device)
            action = policy.dist(params, o).mean.cpu().numpy()
        obs, reward, terminated, truncated, _ = env.step(action)
        frames.append(env.render())
        returns.append(returns[-1] + float(reward))
        done = terminated or truncated
    env.close()
    shown = [cast(np.ndarray, f) for f in frames]  # rgb_array: one array per render
    if stage is None:
        return shown
    goal = f"{env_id.removeprefix('metarl/')}, goal {describe_goal(task)}"
    return [caption(f, [goal, f"{stage}: step {t}, return {ret:.2f}"])
            for t, (f, ret) in enumerate(zip(shown, returns, strict=True))]


def save_gif(frames: list[np.ndarray], path: Path, fps: int = 20) -> Path:
    """Write ``frames`` as an animated GIF, atomically."""
    if not frames:
        raise MetaRLError("no frames were rendered")
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(1000 / fps), loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return path

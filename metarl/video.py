"""Before/after-adaptation animations of one goal, as animated GIFs (Pillow only).

An episode is rolled out in a plain Gymnasium env with ``render_mode="rgb_array"``, acting
with the policy's mean action (no exploration noise), so the animation shows what the
parameters do rather than sampling noise.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import cast

import gymnasium as gym
import numpy as np
import torch
from PIL import Image

from metarl.envs.base import Task
from metarl.errors import MetaRLError
from metarl.functional import Params
from metarl.io import atomic_write_bytes
from metarl.policies import GaussianMLPPolicy


def render_episode(env_id: str, task: Task, policy: GaussianMLPPolicy, params: Params, *,
                   oracle: bool = False, seed: int = 0,
                   max_frames: int | None = None) -> list[np.ndarray]:
    """RGB frames of one deterministic episode of ``task`` under ``params``: the start and
    every step until the episode ends (the env's time limit), or ``max_frames`` frames."""
    import metarl.envs  # noqa: F401

    try:
        env = gym.make(env_id, render_mode="rgb_array", oracle=oracle)
        env.unwrapped.set_task(task)  # type: ignore[attr-defined]
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
    except Exception as err:  # GL back-ends fail in many ways on headless machines
        raise MetaRLError(f"cannot render {env_id} here ({type(err).__name__}: {err}); "
                          "drop --video or set MUJOCO_GL=egl/osmesa") from None
    device = next(iter(params.values())).device
    done = False
    while not done and (max_frames is None or len(frames) < max_frames):
        with torch.no_grad():
            o = torch.as_tensor(obs, dtype=torch.float32, device=device)
            action = policy.dist(params, o).mean.cpu().numpy()
        obs, _, terminated, truncated, _ = env.step(action)
        frames.append(env.render())
        done = terminated or truncated
    env.close()
    return [cast(np.ndarray, f) for f in frames if f is not None]  # rgb_array: one array each


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

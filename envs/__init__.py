"""Gymnasium task distributions for meta-RL, installed as ``metarl.envs``.

Importing this package registers the environments of the MAML paper (section 5.3) under
``metarl/...`` ids, with the paper's horizon as ``max_episode_steps``:

| id                          | task                          | horizon |
| --------------------------- | ----------------------------- | ------- |
| ``metarl/Navigation2D-v0``  | goal ``(x, y) ~ U[-0.5, 0.5]²`` | 100   |
| ``metarl/HalfCheetahVel-v0``| velocity ``~ U[0, 2]``        | 200     |
| ``metarl/HalfCheetahDir-v0``| direction ``±1``              | 200     |
| ``metarl/AntVel-v0``        | velocity ``~ U[0, 3]``        | 200     |
| ``metarl/AntDir-v0``        | direction ``±1``              | 200     |
| ``metarl/AntPos-v0``        | goal ``(x, y) ~ U[-3, 3]²``   | 200     |

The v1 ids have the paper's time step: ``metarl/HalfCheetahVel-v1`` and ``HalfCheetahDir-v1``
step 0.01 s per action, ``metarl/AntVel-v1``, ``AntDir-v1``, ``AntPos-v1`` 0.02 s from rllab's
standing pose (``ENV_KWARGS``).

>>> import gymnasium as gym, numpy as np, metarl.envs
>>> env = gym.make("metarl/HalfCheetahVel-v1")
>>> tasks = env.unwrapped.sample_tasks(40, np.random.default_rng(0))
>>> env.unwrapped.set_task(tasks[0]); obs, info = env.reset(seed=0)

Each env's class docstring has its definition and its differences from the paper's rllab
version (``help(metarl.envs.AntDirEnv)``).
"""

from collections.abc import Mapping

from gymnasium.envs.registration import register, registry

from metarl.envs.ant import AntDirEnv, AntPosEnv, AntTaskEnv, AntVelEnv
from metarl.envs.base import (
    BatchStep,
    Direction,
    Goal2D,
    MetaEnv,
    TargetVelocity,
    Task,
    TaskSpace,
    VectorTaskEnv,
)
from metarl.envs.half_cheetah import HalfCheetahDirEnv, HalfCheetahTaskEnv, HalfCheetahVelEnv
from metarl.envs.locomotion import LocomotionTaskEnv, MujocoVectorEnv, StepState
from metarl.envs.navigation import Navigation2DEnv, NavigationVectorEnv

ENV_IDS: dict[str, tuple[type, int]] = {
    "metarl/Navigation2D-v0": (Navigation2DEnv, 100),
    "metarl/HalfCheetahVel-v0": (HalfCheetahVelEnv, 200),
    "metarl/HalfCheetahDir-v0": (HalfCheetahDirEnv, 200),
    "metarl/AntVel-v0": (AntVelEnv, 200),
    "metarl/AntDir-v0": (AntDirEnv, 200),
    "metarl/AntPos-v0": (AntPosEnv, 200),
    "metarl/HalfCheetahVel-v1": (HalfCheetahVelEnv, 200),
    "metarl/HalfCheetahDir-v1": (HalfCheetahDirEnv, 200),
    "metarl/AntVel-v1": (AntVelEnv, 200),
    "metarl/AntDir-v1": (AntDirEnv, 200),
    "metarl/AntPos-v1": (AntPosEnv, 200),
}
"""Every registered id, with its class and default horizon."""

ANT_PAPER_TIMING = {"frame_skip": 2, "init_pose": "rllab"}
"""The Ant v1 ids: the paper's 0.02 s per step and rllab's starting pose (envs/ant.py)."""

HALF_CHEETAH_PAPER_TIMING = {"frame_skip": 1}
"""The HalfCheetah v1 ids: the paper's 0.01 s per step, one substep of the XML's 0.01 s."""

ENV_KWARGS: dict[str, Mapping[str, object]] = {
    **{f"metarl/Ant{name}-v1": ANT_PAPER_TIMING for name in ("Vel", "Dir", "Pos")},
    **{f"metarl/HalfCheetah{name}-v1": HALF_CHEETAH_PAPER_TIMING for name in ("Vel", "Dir")},
}
"""Constructor arguments an id fixes (``gym.make`` arguments are added to them)."""

for _id, (_cls, _horizon) in ENV_IDS.items():
    if _id not in registry:
        register(
            id=_id, entry_point=f"{_cls.__module__}:{_cls.__name__}", max_episode_steps=_horizon,
            kwargs=dict(ENV_KWARGS.get(_id, {})),
        )

__all__ = [
    "ANT_PAPER_TIMING",
    "ENV_IDS",
    "ENV_KWARGS",
    "HALF_CHEETAH_PAPER_TIMING",
    "AntDirEnv",
    "AntPosEnv",
    "AntTaskEnv",
    "AntVelEnv",
    "BatchStep",
    "Direction",
    "Goal2D",
    "HalfCheetahDirEnv",
    "HalfCheetahTaskEnv",
    "HalfCheetahVelEnv",
    "LocomotionTaskEnv",
    "MetaEnv",
    "MujocoVectorEnv",
    "Navigation2DEnv",
    "NavigationVectorEnv",
    "StepState",
    "TargetVelocity",
    "Task",
    "TaskSpace",
    "VectorTaskEnv",
]

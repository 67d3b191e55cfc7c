"""HalfCheetah goal-velocity and goal-direction tasks (MAML, section 5.3), on Gymnasium's v5."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from metarl.envs.base import Direction, TargetVelocity, Task
from metarl.envs.locomotion import (
    LocomotionTaskEnv,
    StepState,
    direction_reward,
    velocity_reward,
)

_FAMILY_DOC = r"""
    ## Action Space
    ``Box(-1, 1, (6,), float32)``, Gymnasium's HalfCheetah-v5: torques (scaled by the XML's
    gears 120/90/60/120/60/30) on the back thigh, shin, foot and the front thigh, shin, foot
    (``bthigh bshin bfoot fthigh fshin ffoot``). The env does not clip; MuJoCo clamps the
    control to the range, and the control cost uses the action as given (the sampler clips
    to the box before stepping, as rllab's ``normalize`` did).

    ## Observation Space
    ``Box(-inf, inf, (17,), float64)``, Gymnasium's HalfCheetah-v5 observation:

    | Num   | Observation                                  | Joint (XML)   | Unit  |
    | ----- | -------------------------------------------- | ------------- | ----- |
    | 0     | z of the front tip                           | rootz (slide) | m     |
    | 1     | angle of the front tip                       | rooty (hinge) | rad   |
    | 2-7   | angles of the six leg joints                 | bthigh..ffoot | rad   |
    | 8     | x velocity of the front tip                  | rootx (slide) | m/s   |
    | 9     | z velocity of the front tip                  | rootz (slide) | m/s   |
    | 10    | angular velocity of the front tip            | rooty (hinge) | rad/s |
    | 11-16 | angular velocities of the six leg joints     | bthigh..ffoot | rad/s |
    | 17-   | task parameters (only with ``oracle=True``)  |               |       |

    ``exclude_current_positions_from_observation=False`` adds ``rootx`` in front (18 + task).

    ## Time Step
    v0: Gymnasium's ``frame_skip=5`` on the XML's 0.01 s, ``dt = 0.05`` s per step. v1: the
    paper's time step, ``frame_skip=1`` and ``dt = 0.01`` s, as rllab's XML (``timestep='0.01'``)
    stepped once per action; the 200-step horizon then covers 2 s instead of 10 s.

    ## Starting State
    Gymnasium's: ``qpos = init_qpos + U(-0.1, 0.1)``, ``qvel = init_qvel + 0.1 · N(0, 1)``
    for v0 and v1 (rllab's ``qpos`` noise was ``0.01 · N(0, 1)``; its ``qvel`` noise,
    ``0.1 · N(0, 1)``, is the same as here).

    ## Episode End
    Never terminates; truncated by the registered ``max_episode_steps = 200`` (the paper's
    horizon).

    ## Arguments
    | Parameter                 | Default   | Description                                    |
    | ------------------------- | --------- | ---------------------------------------------- |
    | ``task``                  | see above | the task (a task or a mapping of its fields)   |
    | ``oracle``                | False     | append the task parameters to the observation  |
    | ``task_range``            | see above | (low, high) tasks are drawn from / must lie in |
    | ``ctrl_cost_weight``      | 0.05      | weight of ``‖a‖²`` (the MAML code's 0.5 · 0.1) |
    | ``forward_reward_weight`` | 1.0       | weight of the task term                        |

    Every other Gymnasium HalfCheetah-v5 argument (``frame_skip``, ``reset_noise_scale``,
    ``xml_file``, ``render_mode``, ``width``, ``height``, ...) is passed through.

    ## Differences from the paper's rllab version (cbfinn/maml_rl ``half_cheetah_env_rand*.py``)
    * Gymnasium's v5 model and bindings (MuJoCo 3) instead of mujoco-py 0.5 / MuJoCo 1.31.
    * v0: ``dt = 0.05`` s, not 0.01 s (see Time Step; v1 has the paper's).
    * Observation: Gymnasium's 17 values; rllab's 20 added the torso's centre of mass.
    * Velocity: Gymnasium's ``(x_after - x_before) / dt`` of the root, not the torso's
      instantaneous centre-of-mass velocity (``get_body_comvel``).
    * Control cost ``0.05 ‖a‖²`` as in the original (Gymnasium's default is 0.1).

    ## Version History
    * v1: the paper's time step, ``frame_skip=1`` (``dt = 0.01`` s); otherwise as v0.
    * v0: initial version, on Gymnasium's HalfCheetah-v5 defaults (``frame_skip=5``).
"""


class HalfCheetahTaskEnv(LocomotionTaskEnv, HalfCheetahEnv):
    """HalfCheetah-v5 with a task: the shared base of HalfCheetahVel and HalfCheetahDir."""

    reward_term_names = ("reward_forward", "reward_ctrl")
    family_doc = _FAMILY_DOC
    _forward_reward_weight: float
    _ctrl_cost_weight: float

    def __init__(
        self,
        task: Task | Mapping[str, Any] | None = None,
        *,
        oracle: bool = False,
        task_range: tuple[float, float] | None = None,
        ctrl_cost_weight: float = 0.05,
        **kwargs: Any,
    ) -> None:
        HalfCheetahEnv.__init__(self, ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        settings = {"ctrl_cost_weight": ctrl_cost_weight, **kwargs}
        self._finish_init(task, oracle, task_range, settings)

    def reward_terms(
        self, state: StepState, actions: np.ndarray, tasks: np.ndarray
    ) -> dict[str, np.ndarray]:
        """``reward_forward = w_f · task term``, ``reward_ctrl = -w_c · ‖a‖²``."""
        return {
            "reward_forward": self._forward_reward_weight * self.task_reward(tasks, state),
            "reward_ctrl": -self._ctrl_cost_weight * np.square(actions).sum(-1),
        }


class HalfCheetahVelEnv(HalfCheetahTaskEnv):
    r"""HalfCheetah runs at a goal velocity (MAML, section 5.3, "goal velocity").

    ## Description
    Gymnasium's HalfCheetah-v5 whose reward asks for a forward velocity ``v*`` drawn uniformly
    from ``[0, 2]`` m/s per task. Task: :class:`~metarl.envs.base.TargetVelocity`
    (``velocity``); default ``TargetVelocity(1.0)``.

    ## Rewards
    ``reward = reward_forward + reward_ctrl`` with
    * ``reward_forward = -|vₓ - v*|`` (times ``forward_reward_weight``), ``vₓ`` Gymnasium's
      ``x_velocity`` (in ``info``);
    * ``reward_ctrl = -0.05 ‖a‖²``.
    {family}"""

    task_type = TargetVelocity
    default_task = TargetVelocity(1.0)
    default_task_range = (0.0, 2.0)
    task_reward = staticmethod(velocity_reward)


class HalfCheetahDirEnv(HalfCheetahTaskEnv):
    r"""HalfCheetah runs forward or backward (MAML, section 5.3, "goal direction").

    ## Description
    Gymnasium's HalfCheetah-v5 whose reward asks for running in direction ``d``: +1 (forward)
    or -1 (backward) with equal probability. Task: :class:`~metarl.envs.base.Direction`
    (``direction``); default ``Direction(1.0)``. ``task_range`` is not accepted.

    ## Rewards
    ``reward = reward_forward + reward_ctrl`` with
    * ``reward_forward = d · vₓ`` (times ``forward_reward_weight``);
    * ``reward_ctrl = -0.05 ‖a‖²``.
    {family}"""

    task_type = Direction
    default_task = Direction(1.0)
    task_choices = (-1.0, 1.0)
    task_reward = staticmethod(direction_reward)

"""Ant goal-velocity, -direction and -position tasks (MAML, section 5.3), on Gymnasium's v5."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from metarl.envs.base import Direction, Goal2D, TargetVelocity, Task
from metarl.envs.locomotion import (
    LocomotionTaskEnv,
    StepState,
    direction_reward,
    position_reward,
    velocity_reward,
)

_FAMILY_DOC = r"""
    ## Action Space
    ``Box(-1, 1, (8,), float32)``, Gymnasium's Ant-v5: torques (gear 150) on the hip and ankle
    of each leg, in the XML's actuator order ``hip_4 ankle_4 hip_1 ankle_1 hip_2 ankle_2 hip_3
    ankle_3``. The env does not clip; the sampler clips to the box before stepping.

    ## Observation Space
    ``Box(-inf, inf, (105,), float64)``, Gymnasium's Ant-v5 observation:

    | Num    | Observation                                               | Unit          |
    | ------ | --------------------------------------------------------- | ------------- |
    | 0      | z of the torso                                            | m             |
    | 1-4    | orientation of the torso (quaternion w, x, y, z)          |               |
    | 5-12   | hip and ankle angles of the four legs                     | rad           |
    | 13-15  | linear velocity of the torso (x, y, z)                    | m/s           |
    | 16-18  | angular velocity of the torso                             | rad/s         |
    | 19-26  | hip and ankle angular velocities                          | rad/s         |
    | 27-104 | contact forces/torques on 13 bodies, ``clip(cfrc_ext[1:], -1, 1)`` |       |
    | 105-   | the task parameters (only with ``oracle=True``)           |               |

    With ``exclude_current_positions_from_observation=False`` (AntPos's default) the torso's x
    and y come first and every index above shifts by 2 (107 values).

    ## Time Step
    Gymnasium's ``frame_skip=5`` on the XML's 0.01 s (RK4): ``dt = 0.05`` s per step (the v0
    ids). The paper's rllab Ant stepped once per 0.02 s from the XML's standing pose: the v1 ids
    pass ``frame_skip=2, init_pose="rllab"`` (``envs.ANT_PAPER_TIMING``).

    ## Starting State
    Gymnasium's: ``qpos = init_qpos + U(-0.1, 0.1)``, ``qvel = init_qvel + 0.1 · N(0, 1)``.
    ``init_qpos`` is Gymnasium's ``qpos0`` (torso at z = 0.75, joints at 0) by default, or with
    ``init_pose="rllab"`` the standing pose the XML declares, which rllab started from (torso
    at z = 0.55, ankles at ±1 rad).

    ## Episode End
    * Termination (``terminate_when_unhealthy=True``): the state is not finite, or the torso's
      z leaves ``healthy_z_range = [0.2, 1.0]`` (the original's range).
    * Truncation: the registered ``max_episode_steps = 200`` (the paper's horizon).

    ## Rewards (common terms)
    * ``reward_survive = 0.05`` while healthy (the original's ``survive_reward``);
    * ``reward_ctrl = -0.005 ‖a‖²``: the original's ``0.5 · 1e-2 · ‖a / 150‖²`` on rllab's Ant,
      whose motors took torques in ``[-150, 150]`` with gear 1; Gymnasium's take ``a ∈ [-1, 1]``
      with gear 150, so ``a_rllab / 150 = a`` and the weight is 0.005 (Gymnasium's default: 0.5);
    * ``reward_contact = -5e-4 ‖clip(cfrc_ext, -1, 1)‖²``: the original's ``0.5 · 1e-3``, which
      is also Gymnasium's default.

    ## Arguments
    | Parameter                 | Default   | Description                                    |
    | ------------------------- | --------- | ---------------------------------------------- |
    | ``task``                  | see above | the task (a task or a mapping of its fields)   |
    | ``oracle``                | False     | append the task parameters to the observation  |
    | ``task_range``            | see above | (low, high) tasks are drawn from / must lie in |
    | ``bonus``                 | see above | the constant ``reward_bonus``                  |
    | ``ctrl_cost_weight``      | 0.005     | weight of ``‖a‖²``                             |
    | ``contact_cost_weight``   | 5e-4      | weight of the clipped contact forces squared   |
    | ``healthy_reward``        | 0.05      | ``reward_survive`` while healthy               |
    | ``forward_reward_weight`` | 1.0       | weight of the task term                        |
    | ``init_pose``             | see above | ``"gymnasium"`` (v0) or ``"rllab"`` (v1)       |

    Every other Gymnasium Ant-v5 argument (``frame_skip``, ``healthy_z_range``,
    ``terminate_when_unhealthy``, ``main_body``, ``reset_noise_scale``,
    ``exclude_current_positions_from_observation``, ``render_mode``, ...) is passed through.

    ## Differences from the paper's rllab version (cbfinn/maml_rl ``ant_env_rand*.py``)
    * Gymnasium's v5 model and bindings (MuJoCo 3) instead of mujoco-py 0.5 / MuJoCo 1.31;
      the v5 XML differs (gear 150 with ``ctrlrange [-1, 1]``, timestep 0.01).
    * v0: ``dt = 0.05`` s, not 0.02 s (see Time Step), and Gymnasium's starting pose; v1
      has the paper's 0.02 s and rllab's starting pose.
    * Observation: Gymnasium's 105 values (without x, y; 13 bodies' contact forces); rllab's 125
      had x, y, all 14 bodies' contact forces, the torso's rotation matrix and centre of mass.
    * Velocity: Gymnasium's finite difference of the torso position, not ``get_body_comvel``.
    * ``reward_survive`` is given only while healthy (Gymnasium v5); the original added 0.05 on
      the terminating step too.
    * Contact forces come from ``mj_rnePostConstraint`` (MuJoCo ≥ 2 computes them only there).

    ## Version History
    * v1: the paper's time step and starting pose: ``frame_skip=2`` (``dt = 0.02`` s, as rllab's
      XML stepped once per 0.02 s) and ``init_pose="rllab"``, from which a random policy
      stays in the healthy range longer than from v0's pose.
    * v0: initial version, on Gymnasium's Ant-v5 defaults (``frame_skip=5``).
"""


INIT_POSES = ("gymnasium", "rllab")
"""Where episodes start from (before the reset noise): Gymnasium's ``qpos0`` (torso at
z = 0.75, every joint at 0, outside the ankles' ranges) or the ``init_qpos`` the XML declares
and rllab used (torso at z = 0.55, ankles at ±1 rad: standing)."""


class AntTaskEnv(LocomotionTaskEnv, AntEnv):
    """Ant-v5 with a task: the shared base of AntVel, AntDir and AntPos."""

    reward_term_names = (
        "reward_forward",
        "reward_bonus",
        "reward_survive",
        "reward_ctrl",
        "reward_contact",
    )
    family_doc = _FAMILY_DOC
    needs_contact_forces = True
    default_bonus: float = 0.0
    observe_position: bool = False
    """Default of ``not exclude_current_positions_from_observation`` (True for AntPos)."""
    _forward_reward_weight: float
    _ctrl_cost_weight: float
    _contact_cost_weight: float
    _contact_force_range: tuple[float, float]
    _healthy_reward: float
    _healthy_z_range: tuple[float, float]
    _terminate_when_unhealthy: bool
    _main_body: int | str

    def __init__(
        self,
        task: Task | Mapping[str, Any] | None = None,
        *,
        oracle: bool = False,
        task_range: tuple[float, float] | None = None,
        bonus: float | None = None,
        ctrl_cost_weight: float = 0.005,
        contact_cost_weight: float = 5e-4,
        healthy_reward: float = 0.05,
        init_pose: str = "gymnasium",
        **kwargs: Any,
    ) -> None:
        if init_pose not in INIT_POSES:
            raise ValueError(f"unknown init_pose {init_pose!r}; choose one of "
                             + ", ".join(INIT_POSES))
        kwargs.setdefault("exclude_current_positions_from_observation", not self.observe_position)
        self.bonus = self.default_bonus if bonus is None else float(bonus)
        settings = {
            "ctrl_cost_weight": ctrl_cost_weight,
            "contact_cost_weight": contact_cost_weight,
            "healthy_reward": healthy_reward,
            **kwargs,
        }
        AntEnv.__init__(self, **settings)
        if init_pose == "rllab":  # the XML's own standing pose, which rllab started from
            self.init_qpos = np.array(self.model.numeric("init_qpos").data, dtype=np.float64)
        self._finish_init(task, oracle, task_range,
                          {"bonus": bonus, "init_pose": init_pose, **settings})

    @property
    def velocity_body(self) -> int:
        """The main body (the torso): Gymnasium's Ant differentiates its ``xpos``."""
        return int(self.data.body(self._main_body).id)

    def healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """``[n]`` bool: Gymnasium's ``is_healthy`` (finite state, torso z in range)."""
        low, high = self._healthy_z_range
        finite = np.isfinite(qpos).all(-1) & np.isfinite(qvel).all(-1)
        return finite & (low <= qpos[:, 2]) & (qpos[:, 2] <= high)

    def reward_terms(
        self, state: StepState, actions: np.ndarray, tasks: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Task term, constant bonus, survival, control and contact costs (see the docstring)."""
        assert state.cfrc_ext is not None
        contact = np.clip(state.cfrc_ext, *self._contact_force_range)
        healthy = self.healthy(state.qpos, state.qvel)
        return {
            "reward_forward": self._forward_reward_weight * self.task_reward(tasks, state),
            "reward_bonus": np.full(len(healthy), self.bonus),
            "reward_survive": healthy * self._healthy_reward,
            "reward_ctrl": -self._ctrl_cost_weight * np.square(actions).sum(-1),
            "reward_contact": -self._contact_cost_weight * np.square(contact).sum((-2, -1)),
        }

    def terminated(self, state: StepState) -> np.ndarray:
        return ~self.healthy(state.qpos, state.qvel) & self._terminate_when_unhealthy


class AntVelEnv(AntTaskEnv):
    r"""Ant runs forward at a goal velocity (MAML, section 5.3, "goal velocity").

    ## Description
    Gymnasium's Ant-v5 whose reward asks for a forward velocity ``v*`` drawn uniformly from
    ``[0, 3]`` m/s per task. Task: :class:`~metarl.envs.base.TargetVelocity`; default
    ``TargetVelocity(1.5)``.

    ## Rewards
    ``reward = reward_forward + reward_bonus + reward_survive + reward_ctrl + reward_contact``:
    * ``reward_forward = -|vₓ - v*|`` (times ``forward_reward_weight``), ``vₓ`` as Gymnasium's
      ``x_velocity`` in ``info``;
    * ``reward_bonus = +1`` every step, the original's bonus that keeps the Ant from preferring
      to end the episode (``-|vₓ - v*| + 1.0  # make it happy, not suicidal`` in
      ``ant_env_rand.py``).
    {family}"""

    task_type = TargetVelocity
    default_task = TargetVelocity(1.5)
    default_task_range = (0.0, 3.0)
    default_bonus = 1.0
    task_reward = staticmethod(velocity_reward)


class AntDirEnv(AntTaskEnv):
    r"""Ant runs forward or backward (MAML, section 5.3, "goal direction").

    ## Description
    Gymnasium's Ant-v5 whose reward asks for running in direction ``d = ±1`` along x, with equal
    probability. Task: :class:`~metarl.envs.base.Direction`; default ``Direction(1.0)``.

    ## Rewards
    ``reward = reward_forward + reward_bonus + reward_survive + reward_ctrl + reward_contact``:
    * ``reward_forward = d · vₓ`` (times ``forward_reward_weight``);
    * ``reward_bonus = 0`` (the original direction task has no bonus).
    {family}"""

    task_type = Direction
    default_task = Direction(1.0)
    task_choices = (-1.0, 1.0)
    task_reward = staticmethod(direction_reward)


class AntPosEnv(AntTaskEnv):
    r"""Ant walks to a goal position (beyond the paper, as in its code's ``ant_env_rand_goal.py``).

    ## Description
    Gymnasium's Ant-v5 whose reward asks for reaching a position ``g`` drawn uniformly from
    ``[-3, 3]²``. The observation includes the torso's x and y by default
    (``exclude_current_positions_from_observation=False``), since the reward depends on them
    (the original observed them too). Task: :class:`~metarl.envs.base.Goal2D`; default
    ``Goal2D(1.5, 1.5)``.

    ## Rewards
    ``reward = reward_forward + reward_bonus + reward_survive + reward_ctrl + reward_contact``:
    * ``reward_forward = -(|x - gₓ| + |y - g_y|)`` (an L1 distance, as the original; times
      ``forward_reward_weight``), with x, y the torso position after the step (``info``'s
      ``x_position``, ``y_position``); the original used the whole Ant's centre of mass;
    * ``reward_bonus = +4`` every step (the original's "make it happy, not suicidal").
    {family}"""

    task_type = Goal2D
    default_task = Goal2D(1.5, 1.5)
    default_task_range = (-3.0, 3.0)
    default_bonus = 4.0
    observe_position = True
    task_reward = staticmethod(position_reward)

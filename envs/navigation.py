"""2D point navigation to a goal, the MAML paper's first RL benchmark (section 5.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metarl.envs.base import BatchStep, Goal2D, MetaEnv, Task, TaskSpace


def navigation_step(
    position: np.ndarray, action: np.ndarray, goal: np.ndarray, max_step: float, tolerance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One move of one or many points: ``[..., 2]`` arrays -> (position, distance, reached).

    The single env and its batched twin both step through this function, so they cannot
    disagree. The action lives in ``[-1, 1]²`` (clipped) and moves the point by
    ``max_step · action``, i.e. at most ``max_step`` per coordinate; the episode ends when both
    coordinates are within ``tolerance`` of the goal (``abs(x) < 0.01 and abs(y) < 0.01`` in
    cbfinn/maml_rl ``maml_examples/point_env_randgoal.py``).
    """
    position = position + max_step * np.clip(action, -1.0, 1.0)
    offset = position - goal
    distance = np.sqrt(np.square(offset).sum(-1))
    reached = (np.abs(offset) < tolerance).all(-1)
    return position, distance, reached


class Navigation2DEnv(MetaEnv, gym.Env):
    r"""A point in the plane moves to a goal position (MAML, Finn et al. 2017, section 5.3).

    ## Description
    The agent starts at the origin and must reach a goal drawn uniformly from
    ``[-0.5, 0.5]²``. It does not observe the goal: the task is identified from rewards, which is
    what few-shot adaptation has to do. Pure numpy; no physics engine.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``: the displacement in x and y in units of ``max_step`` (0.1):
    the point moves by ``0.1 · clip(action, -1, 1)``, so at most ±0.1 per coordinate and step.
    This is the original code's set-up: its point env has the action box ±0.1 and is wrapped
    in rllab's ``normalize``, which maps policy outputs in ``[-1, 1]`` onto that box. The scale
    matters for learning: a Gaussian policy starting with standard deviation 1 explores the
    whole step range instead of saturating at ±0.1 on almost every step.

    ## Observation Space
    ``Box(-inf, inf, (2,), float64)``:

    | Num | Observation      | Min  | Max |
    | --- | ---------------- | ---- | --- |
    | 0   | x of the point   | -Inf | Inf |
    | 1   | y of the point   | -Inf | Inf |
    | 2-3 | goal x, y (only with ``oracle=True``) | task_range | task_range |

    ## Rewards
    ``reward = reward_distance = -‖s' - g‖₂``, the Euclidean distance to the goal after the
    move, as in the original code (the paper's text says "squared distance"; its code and the
    later reproductions use the distance). ``info`` carries ``reward_distance`` and
    ``distance``.

    ## Starting State
    ``(0, 0)`` in every episode (the reset draws no random numbers).

    ## Episode End
    * Termination: both coordinates within ``goal_tolerance`` (0.01) of the goal.
    * Truncation: after 100 steps (the registered ``max_episode_steps``).

    ## Arguments
    | Parameter          | Default          | Description                               |
    | ------------------ | ---------------- | ----------------------------------------- |
    | ``task``           | ``(0.25, 0.25)`` | the goal (a Goal2D or ``{"x":, "y":}``)   |
    | ``oracle``         | False            | append the goal to the observation        |
    | ``task_range``     | ``(-0.5, 0.5)``  | goal coordinates are drawn from / lie in  |
    | ``max_step``       | 0.1              | largest move per coordinate and step      |
    | ``goal_tolerance`` | 0.01             | termination distance per coordinate       |
    | ``render_mode``    | None             | ``"rgb_array"``: a 256×256 drawing        |

    ## Differences from the paper's (rllab) version
    None in the dynamics, the reward or the action scaling (rllab's ``normalize`` is built in,
    see Action Space).

    ## Version History
    * v0: initial version (actions in ``[-1, 1]`` scaled by ``max_step``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    task_type = Goal2D
    default_task: Task = Goal2D(0.25, 0.25)
    default_task_range = (-0.5, 0.5)
    reward_term_names = ("reward_distance",)

    def __init__(
        self,
        task: Goal2D | Mapping[str, Any] | None = None,
        *,
        oracle: bool = False,
        task_range: tuple[float, float] | None = None,
        max_step: float = 0.1,
        goal_tolerance: float = 0.01,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.max_step = float(max_step)
        self.goal_tolerance = float(goal_tolerance)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self._position = np.zeros(2)
        self._trail: list[np.ndarray] = []
        self._init_task(task, oracle, task_range)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._position = np.zeros(2)
        self._trail = [self._position]
        distance = float(np.linalg.norm(self._position - self._task_array))
        return self._with_task(self._position.copy()), {"distance": distance}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,):
            raise ValueError(f"Navigation2D takes actions of shape (2,), got {action.shape}")
        self._position, distance, reached = navigation_step(
            self._position, action, self._task_array, self.max_step, self.goal_tolerance
        )
        self._trail.append(self._position)
        reward = -float(distance)
        info = {"distance": float(distance), "reward_distance": reward}
        return self._with_task(self._position.copy()), reward, bool(reached), False, info

    def render(self) -> np.ndarray | None:
        """A 256×256 RGB drawing: the goal (green), the path so far (grey), the point (blue)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode='rgb_array'")
            return None
        return draw_navigation(np.array(self._trail), self._task_array, self.task_space)

    def batched(self, num_envs: int, **options: Any) -> NavigationVectorEnv:
        """``num_envs`` copies stepped as one array operation (``options`` are ignored)."""
        return NavigationVectorEnv(self, num_envs)


class NavigationVectorEnv:
    """Many Navigation2D points, one goal each, advanced by one numpy operation per step."""

    reward_term_names = Navigation2DEnv.reward_term_names

    def __init__(self, env: Navigation2DEnv, num_envs: int) -> None:
        self.env = env
        self.num_envs = num_envs
        self.observation_dim = int(cast(spaces.Box, env.observation_space).shape[0])
        self._position = np.zeros((num_envs, 2))
        self._goals = np.zeros((num_envs, 2))
        self._pending: BatchStep | None = None

    def reset(self, tasks: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        self._goals = np.asarray(tasks, np.float64).reshape(self.num_envs, 2)
        self._position = np.zeros((self.num_envs, 2))
        return self.env._with_task(self._position.copy(), self._goals)

    def restart(self, index: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        self._position[index] = 0.0
        return self.env._with_task(self._position[index].copy(), self._goals[index])

    def step_async(self, actions: np.ndarray, active: np.ndarray) -> None:
        env = self.env
        self._position, distance, reached = navigation_step(
            self._position, actions, self._goals, env.max_step, env.goal_tolerance
        )
        obs = env._with_task(self._position.copy(), self._goals)
        self._pending = BatchStep(obs, -distance, -distance[:, None], reached)

    def step_wait(self) -> BatchStep:
        if self._pending is None:
            raise RuntimeError("step_wait() called without step_async()")
        step, self._pending = self._pending, None
        return step

    def close(self) -> None:
        self._pending = None


def draw_navigation(
    trail: np.ndarray, goal: np.ndarray, space: TaskSpace, size: int = 256
) -> np.ndarray:
    """Draw the goal region, the path and the point on a white ``size × size`` canvas.

    The view spans the goal range with a 20% margin (at least ``[-0.6, 0.6]²``).
    """
    half = max(0.6, 1.2 * float(np.abs(np.concatenate([space.low, space.high])).max()))
    image = np.full((size, size, 3), 255, np.uint8)
    ys, xs = np.mgrid[0:size, 0:size]
    world_x = (xs + 0.5) / size * 2 * half - half
    world_y = half - (ys + 0.5) / size * 2 * half
    pixel = 2 * half / size

    def disc(center: np.ndarray, radius: float, colour: tuple[int, int, int]) -> None:
        inside = (world_x - center[0]) ** 2 + (world_y - center[1]) ** 2 <= radius**2
        image[inside] = colour

    disc(goal, max(0.03, 3 * pixel), (40, 170, 60))
    for point in trail[:-1]:
        disc(point, 1.5 * pixel, (150, 150, 150))
    disc(trail[-1], max(0.02, 2.5 * pixel), (40, 80, 220))
    return image

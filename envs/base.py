"""The task protocol every ``metarl`` environment follows, and the batched view the sampler uses.

A *task* is a frozen dataclass of floats (a goal position, a goal velocity, a direction). Each
environment owns a :class:`TaskSpace` that says which tasks are valid and how they are drawn,
and exposes, in learn2learn's vocabulary:

* ``sample_tasks(n, rng)`` -- ``n`` tasks drawn from a ``numpy.random.Generator`` the caller
  owns (no hidden global randomness: the same generator state gives the same tasks);
* ``set_task(task)`` / ``get_task()`` -- the task of the following episodes (``set_task`` also
  accepts a mapping such as ``{"velocity": 1.2}``); a task can also be given at construction;
* ``oracle=True`` at construction appends the task's parameters to every observation (the
  MAML paper's "oracle" baseline, section 5.3, and ``*_oracle.py`` in cbfinn/maml_rl);
* ``batched(num_envs)`` -- a :class:`VectorTaskEnv`: ``num_envs`` copies with one task each,
  stepped as one, whose rewards come from the same reward function as the env's own ``step``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol, cast

import numpy as np
from gymnasium import spaces

from metarl.errors import MetaRLError


@dataclasses.dataclass(frozen=True)
class Task:
    """Base of the task dataclasses: every field is a float parameter of the task."""

    def to_array(self) -> np.ndarray:
        """The task parameters as a float64 vector, in field order."""
        return np.array([getattr(self, f.name) for f in dataclasses.fields(self)], np.float64)


@dataclasses.dataclass(frozen=True)
class Goal2D(Task):
    """A goal position in the plane (Navigation2D, AntPos)."""

    x: float
    y: float


@dataclasses.dataclass(frozen=True)
class TargetVelocity(Task):
    """A goal forward velocity in m/s (HalfCheetahVel, AntVel)."""

    velocity: float


@dataclasses.dataclass(frozen=True)
class Direction(Task):
    """A running direction along the x axis: +1 forward, -1 backward (HalfCheetahDir, AntDir)."""

    direction: float


class TaskSpace:
    """The valid tasks of one environment and the distribution they are sampled from.

    Either a box (every field uniform in ``[low, high]``, as the MAML paper's goal positions and
    velocities) or a finite set of values (uniform choice, as the ±1 directions).
    """

    def __init__(
        self,
        task_type: type[Task],
        *,
        low: float | None = None,
        high: float | None = None,
        choices: Sequence[float] | None = None,
    ) -> None:
        if (choices is None) == (low is None or high is None):
            raise ValueError("give a TaskSpace either low and high, or choices")
        if choices is not None and len(choices) == 0:
            raise ValueError("a TaskSpace's choices must hold at least one value")
        if choices is None:
            assert low is not None and high is not None  # the check above guarantees both
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise MetaRLError(f"task range ({low}, {high}) must be finite with low <= high")
        self.task_type = task_type
        self.names = tuple(f.name for f in dataclasses.fields(task_type))
        self.choices = None if choices is None else tuple(float(c) for c in choices)
        values = self.choices or (cast(float, low), cast(float, high))
        self.low = np.full(len(self.names), min(values), np.float64)
        self.high = np.full(len(self.names), max(values), np.float64)

    @property
    def dim(self) -> int:
        """Number of task parameters."""
        return len(self.names)

    def __repr__(self) -> str:
        if self.choices is not None:
            return f"{self.task_type.__name__} with {'/'.join(self.names)} in {self.choices}"
        bounds = f"[{self.low[0]}, {self.high[0]}]"
        return f"{self.task_type.__name__} with {', '.join(self.names)} in {bounds}"

    def sample(self, n: int, rng: np.random.Generator) -> list[Task]:
        """``n`` tasks drawn with ``rng`` only (the same generator state gives the same tasks)."""
        if not isinstance(rng, np.random.Generator):
            raise MetaRLError(
                f"sample_tasks needs a numpy.random.Generator, got {type(rng).__name__}; "
                "pass numpy.random.default_rng(seed)"
            )
        if n < 0:
            raise MetaRLError(f"cannot sample {n} tasks; ask for a non-negative number")
        if self.choices is not None:
            values = rng.choice(np.array(self.choices), size=(n, self.dim))
        else:
            values = rng.uniform(self.low, self.high, size=(n, self.dim))
        return [self.task_type(*map(float, row)) for row in values]

    def coerce(self, task: Task | Mapping[str, Any]) -> Task:
        """Check ``task`` (a task or a mapping of its fields) and return it as a task."""
        name = self.task_type.__name__
        if isinstance(task, Mapping):
            unknown = sorted(set(task) - set(self.names))
            missing = [k for k in self.names if k not in task]
            if unknown or missing:
                what = f"unknown field(s) {unknown}" if unknown else f"missing field(s) {missing}"
                raise MetaRLError(f"{what} for a {name} task; its fields are {list(self.names)}")
            task = self.task_type(**{k: task[k] for k in self.names})
        elif not isinstance(task, self.task_type):
            raise MetaRLError(
                f"expected a {name} task (or a mapping of its fields {list(self.names)}), "
                f"got {type(task).__name__}"
            )
        values = task.to_array() if _all_real(task) else None
        if values is None or not np.isfinite(values).all():
            raise MetaRLError(f"task {task} has a non-numeric or non-finite parameter")
        if self.choices is not None:
            if not all(v in self.choices for v in values):
                raise MetaRLError(
                    f"task {task} is not valid: each parameter must be one of {self.choices}"
                )
        elif (values < self.low).any() or (values > self.high).any():
            raise MetaRLError(
                f"task {task} is out of range: {'/'.join(self.names)} must lie in "
                f"[{self.low[0]}, {self.high[0]}] (choose a goal inside it; in Python, an env's "
                "task_range argument widens it)"
            )
        return task

    def to_array(self, tasks: Sequence[Task | Mapping[str, Any]]) -> np.ndarray:
        """Checked tasks stacked into a ``[len(tasks), dim]`` float64 array."""
        return np.stack([self.coerce(t).to_array() for t in tasks]).reshape(len(tasks), self.dim)


def _all_real(task: Task) -> bool:
    return all(
        isinstance(getattr(task, f.name), (int, float, np.integer, np.floating))
        and not isinstance(getattr(task, f.name), bool)
        for f in dataclasses.fields(task)
    )


class BatchStep(NamedTuple):
    """What a :class:`VectorTaskEnv` returns per step; every array has a leading env axis."""

    observations: np.ndarray
    """``[n, obs_dim]`` float64: the observations after the step."""
    rewards: np.ndarray
    """``[n]`` float64: the sum of the reward terms."""
    reward_terms: np.ndarray
    """``[n, len(reward_term_names)]`` float64: the terms, as in the env's ``info``."""
    terminated: np.ndarray
    """``[n]`` bool: the episode ended (goal reached, or the Ant left its healthy range)."""


class VectorTaskEnv(Protocol):
    """``num_envs`` copies of one environment, each with its own task, stepped as one.

    ``step_async`` starts a step (MuJoCo envs return at once and step on a thread pool; the
    sampler runs the policy for other environments meanwhile) and ``step_wait`` finishes it.
    Environments whose ``active`` flag is False may be left unstepped; their results are
    meaningless and must be masked by the caller.
    """

    num_envs: int
    observation_dim: int
    reward_term_names: tuple[str, ...]

    def reset(self, tasks: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Start an episode per env: ``tasks [n, task_dim]``, ``seeds [n]`` -> obs ``[n, d]``.

        Env ``i`` starts as the Gymnasium env does after ``reset(seed=int(seeds[i]))``.
        """
        ...

    def restart(self, index: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Start a new episode in envs ``index`` (same tasks) -> their obs ``[len(index), d]``.

        Env ``index[k]`` starts as the Gymnasium env does after ``reset(seed=int(seeds[k]))``;
        the other envs are left as they are. Called between steps, never with one in flight.
        """
        ...

    def step_async(self, actions: np.ndarray, active: np.ndarray) -> None:
        """Start a step with ``actions [n, act_dim]`` (already inside the action space)."""
        ...

    def step_wait(self) -> BatchStep:
        """Finish the step started by :meth:`step_async`."""
        ...

    def close(self) -> None:
        """Release what the batch holds (simulation data)."""
        ...


class MetaEnv:
    """Mixin of the task protocol: task space, current task, oracle observations.

    Subclasses set the class attributes ``task_type``, ``default_task`` and either
    ``default_task_range`` (a box, uniform sampling) or ``task_choices`` (a finite set), and call
    :meth:`_init_task` at the end of their constructor, after the Gymnasium base has built its
    observation space.
    """

    task_type: type[Task]
    default_task: Task
    default_task_range: tuple[float, float] | None = None
    task_choices: tuple[float, ...] | None = None
    task_space: TaskSpace
    observation_space: spaces.Space[Any]
    """Set by the Gymnasium base class (a box for every metarl env), widened by ``oracle``."""
    oracle: bool
    _task: Task
    steps_asynchronously: bool = False
    """Whether :meth:`batched` envs compute in ``step_async`` off the calling thread (MuJoCo),
    so that the sampler gains by overlapping groups of envs."""

    def _init_task(
        self,
        task: Task | Mapping[str, Any] | None,
        oracle: bool,
        task_range: tuple[float, float] | None,
    ) -> None:
        if self.task_choices is not None:
            if task_range is not None:
                raise MetaRLError(
                    f"{type(self).__name__} has a fixed set of tasks {self.task_choices}; "
                    "drop the task_range argument"
                )
            self.task_space = TaskSpace(self.task_type, choices=self.task_choices)
        else:
            # a subclass without task_choices sets default_task_range
            low, high = cast(tuple[float, float],
                             self.default_task_range if task_range is None else task_range)
            self.task_space = TaskSpace(self.task_type, low=low, high=high)
        self.oracle = bool(oracle)
        self.set_task(self.default_task if task is None else task)
        if self.oracle:  # the task parameters follow the usual observation
            base = cast(spaces.Box, self.observation_space)
            self.observation_space = spaces.Box(
                low=np.concatenate([base.low, self.task_space.low]).astype(base.dtype),
                high=np.concatenate([base.high, self.task_space.high]).astype(base.dtype),
                dtype=base.dtype,  # type: ignore[arg-type]
            )

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """``n`` tasks of this env's distribution, drawn with ``rng`` only."""
        return self.task_space.sample(n, rng)

    def set_task(self, task: Task | Mapping[str, Any]) -> None:
        """Use ``task`` from the next step on (typically followed by ``reset``)."""
        self._task = self.task_space.coerce(task)
        self._task_array = self._task.to_array()

    def get_task(self) -> Task:
        """The current task."""
        return self._task

    def _with_task(self, observation: np.ndarray, tasks: np.ndarray | None = None) -> np.ndarray:
        """Append the task parameters when ``oracle`` (``tasks`` ``[n, k]`` for a batch)."""
        if not self.oracle:
            return observation
        if tasks is None:
            tasks = self._task_array
        return np.concatenate([observation, tasks], axis=-1)

    def batched(self, num_envs: int, **options: Any) -> VectorTaskEnv:
        """``num_envs`` copies of this env (same settings) stepped as one; see the sampler."""
        raise NotImplementedError

"""What the MuJoCo task envs share: the task hooks, the reward path, and the batched twin.

Each concrete env (``HalfCheetahVel``, ``AntDir``, ...) is Gymnasium's v5 class (its XML, its
mujoco bindings, its ``step``) with four things replaced:

* ``_initialize_simulation`` -- the XML is compiled by :func:`compile_model`, which gives the
  same model without MuJoCo's deprecation warning for HalfCheetah's ``settotalmass``;
* ``_get_rew`` -- the reward, computed by the family's vectorised ``reward_terms`` from a
  :class:`StepState` (the single env passes a batch of one);
* ``_get_obs`` -- Gymnasium's observation, plus the task parameters when ``oracle=True``;
* the task protocol of :class:`~metarl.envs.base.MetaEnv`.

:class:`MujocoVectorEnv` steps many copies on a :class:`~metarl.envs.physics.MujocoBatch` and
computes the observations, rewards and terminations for all of them with array operations, from
the same ``reward_terms`` -- so the sampler and ``env.step`` cannot disagree on the reward, and
the tests check the observation and the velocity against Gymnasium's own code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, cast

import mujoco
import numpy as np
from gymnasium import utils

from metarl.envs.base import BatchStep, MetaEnv, Task
from metarl.envs.physics import Backend, PhysicsPool, make_mujoco_batch
from metarl.errors import MetaRLError


class StepState(NamedTuple):
    """What a reward needs about one step, for ``n`` envs at once (leading axis ``n``)."""

    x_velocity: np.ndarray
    """``[n]``: forward velocity over the step, computed exactly as Gymnasium v5 does."""
    qpos: np.ndarray
    """``[n, nq]``: positions after the step."""
    qvel: np.ndarray
    """``[n, nv]``: velocities after the step."""
    cfrc_ext: np.ndarray | None
    """``[n, nbody, 6]``: external contact forces (Ant only), unclipped."""


TaskReward = Callable[[np.ndarray, StepState], np.ndarray]
"""``(tasks [n, k], state) -> [n]``: the task-dependent reward term."""


def compile_model(path: str) -> mujoco.MjModel:
    """The model MuJoCo compiles from the MJCF file ``path``, bit for bit, without warnings about
    a ``settotalmass`` compiler attribute.

    Why: MuJoCo deprecates ``<compiler settotalmass>`` (Gymnasium's HalfCheetah XML sets 14 kg)
    and warns on stderr at every compilation. The attribute is applied here as its deprecation
    notice says, after compiling without it: ``mj_setTotalmass`` scales the masses and inertias
    as the compiler did, ``mj_setConst`` recomputes the constants derived from them, and the two
    statistics the compiler infers from the masses (``stat.meanmass``, and ``stat.meaninertia``,
    which scales the constraint solver's tolerance) are recomputed with the compiler's formulas
    and summation order, unless the file states them.
    """
    spec = mujoco.MjSpec.from_file(path)
    compiler = getattr(spec, "compiler", spec)  # older mujoco kept the settings on the spec
    total = float(getattr(compiler, "settotalmass", -1.0))
    if total <= 0:
        return spec.compile()
    compiler.settotalmass = -1.0
    model = spec.compile()
    mujoco.mj_setTotalmass(model, total)
    mujoco.mj_setConst(model, mujoco.MjData(model))
    if np.isnan(spec.stat.meanmass) and model.nbody > 1:
        model.stat.meanmass = _sequential_sum(model.body_mass[1:]) / (model.nbody - 1)
    if np.isnan(spec.stat.meaninertia) and model.nv > 0:
        model.stat.meaninertia = _sequential_sum(model.dof_M0) / model.nv
    return model


def _sequential_sum(values: np.ndarray) -> float:
    """Left-to-right float64 sum, as MuJoCo's C loops add (numpy's pairwise sum may round
    differently)."""
    total = 0.0
    for v in values.tolist():
        total += v
    return total


def velocity_reward(tasks: np.ndarray, state: StepState) -> np.ndarray:
    """``-|vₓ - v*|``: run at the goal velocity (``*_env_rand.py`` in cbfinn/maml_rl)."""
    return -np.abs(state.x_velocity - tasks[:, 0])


def direction_reward(tasks: np.ndarray, state: StepState) -> np.ndarray:
    """``d · vₓ``: run forward (``d = +1``) or backward (``d = -1``) (``*_rand_direc.py``)."""
    return tasks[:, 0] * state.x_velocity


def position_reward(tasks: np.ndarray, state: StepState) -> np.ndarray:
    """``-‖(x, y) - g‖₁``: reach a goal position (``ant_env_rand_goal.py``; an L1 distance)."""
    return -np.abs(state.qpos[:, :2] - tasks).sum(-1)


class LocomotionTaskEnv(MetaEnv):
    """Mixin for a Gymnasium v5 MuJoCo class: task protocol, reward hook, batched twin.

    A family (HalfCheetah, Ant) supplies :meth:`reward_terms`, :meth:`terminated`,
    ``velocity_body`` and ``needs_contact_forces``; a concrete env supplies the task
    (``task_type``, ``default_task``, ``default_task_range`` or ``task_choices``) and
    ``task_reward``.
    """

    task_reward: TaskReward
    reward_term_names: tuple[str, ...]
    needs_contact_forces: bool = False
    steps_asynchronously = True
    family_doc: str = ""
    """Sections shared by a family's envs, put where a docstring says ``{family}``."""
    # attributes of the Gymnasium v5 base class this mixin relies on
    data: mujoco.MjData
    model: mujoco.MjModel
    frame_skip: int
    init_qpos: np.ndarray
    init_qvel: np.ndarray
    observation_structure: dict[str, int]
    _reset_noise_scale: float
    fullpath: str
    width: int
    height: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__doc__ and "{family}" in cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("{family}", cls.family_doc)

    def _finish_init(
        self,
        task: Task | Mapping[str, Any] | None,
        oracle: bool,
        task_range: tuple[float, float] | None,
        kwargs: dict[str, Any],
    ) -> None:
        """Set up the task, then record every argument so pickling rebuilds this env."""
        self._init_task(task, oracle, task_range)
        utils.EzPickle.__init__(self, task=task, oracle=oracle, task_range=task_range, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = utils.EzPickle.__getstate__(self)  # type: ignore[arg-type]
        state["_ezpickle_kwargs"] = {**state["_ezpickle_kwargs"], "task": self._task}
        return state

    # --- the hooks of the family -------------------------------------------------------------
    @property
    def velocity_body(self) -> int | None:
        """Body whose lagged ``xpos`` gives the velocity (Ant), or None for ``qpos[0]``."""
        return None

    def reward_terms(
        self, state: StepState, actions: np.ndarray, tasks: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The reward terms ``{name: [n]}`` (their sum is the reward), vectorised over envs."""
        raise NotImplementedError

    def terminated(self, state: StepState) -> np.ndarray:
        """``[n]`` bool: which episodes end after this step."""
        return np.zeros(len(state.x_velocity), bool)

    # --- Gymnasium v5 overrides ----------------------------------------------------------------
    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        """Gymnasium's model and data, compiled by :func:`compile_model`."""
        model = compile_model(self.fullpath)
        # as Gymnasium's: grow (never shrink) the offscreen framebuffer to the render size
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def _get_obs(self) -> np.ndarray:
        return self._with_task(super()._get_obs())  # type: ignore[misc]

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        d = self.data
        cfrc = d.cfrc_ext[None].copy() if self.needs_contact_forces else None
        state = StepState(np.array([x_velocity]), d.qpos[None].copy(), d.qvel[None].copy(), cfrc)
        terms = self.reward_terms(state, np.asarray(action)[None], self._task_array[None])
        reward = cast(np.ndarray, sum(terms.values()))
        return float(reward[0]), {k: float(v[0]) for k, v in terms.items()}

    def render(self) -> Any:
        try:
            return super().render()  # type: ignore[misc]
        except Exception as err:  # GL errors come in many types; say what to do, keep the cause
            raise MetaRLError(
                f"rendering {type(self).__name__} failed ({type(err).__name__}: {err}); "
                "a machine without a display needs MUJOCO_GL=egl (or osmesa) set before the "
                "first frame is drawn; `metarl adapt --video` chooses one that works here"
            ) from err

    # --- the vectorised twin -------------------------------------------------------------------
    def batched_observation(
        self, qpos: np.ndarray, qvel: np.ndarray, cfrc_ext: np.ndarray | None, tasks: np.ndarray
    ) -> np.ndarray:
        """``[n, obs_dim]``: Gymnasium's ``_get_obs`` (plus the oracle part) for ``n`` envs."""
        structure = self.observation_structure
        parts = [qpos[:, structure["skipped_qpos"] :], qvel]
        if structure.get("cfrc_ext", 0):
            assert cfrc_ext is not None
            low, high = self._contact_force_range  # type: ignore[attr-defined]
            parts.append(np.clip(cfrc_ext[:, 1:], low, high).reshape(len(qpos), -1))
        return self._with_task(np.concatenate(parts, axis=1), tasks)

    def reset_states(self, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The start states Gymnasium's ``reset(seed=s)`` draws, for each ``s`` in ``seeds``.

        Gymnasium v5 (``reset_model``): ``qpos = init_qpos + U(-c, c)``, then
        ``qvel = init_qvel + c · N(0, 1)``, from ``np.random.default_rng(seed)``.
        """
        c, nq, nv = self._reset_noise_scale, self.model.nq, self.model.nv
        qpos = np.empty((len(seeds), nq))
        qvel = np.empty((len(seeds), nv))
        for i, seed in enumerate(seeds):
            rng = np.random.default_rng(int(seed))
            qpos[i] = self.init_qpos + rng.uniform(low=-c, high=c, size=nq)
            qvel[i] = self.init_qvel + c * rng.standard_normal(nv)
        return qpos, qvel

    def batched(
        self,
        num_envs: int,
        *,
        pool: PhysicsPool | None = None,
        backend: Backend = "auto",
    ) -> MujocoVectorEnv:
        """``num_envs`` copies of this env (same settings), stepped on ``pool``'s threads."""
        return MujocoVectorEnv(self, num_envs, pool=pool, backend=backend)


class MujocoVectorEnv:
    """``num_envs`` copies of a :class:`LocomotionTaskEnv`, one task each, stepped as one."""

    def __init__(
        self,
        env: LocomotionTaskEnv,
        num_envs: int,
        *,
        pool: PhysicsPool | None = None,
        backend: Backend = "auto",
    ) -> None:
        self.env = env
        self.num_envs = num_envs
        self.observation_dim = int(env.observation_space.shape[0])  # type: ignore[attr-defined]
        self.reward_term_names = env.reward_term_names
        self._own_pool = pool is None
        self.pool = PhysicsPool() if pool is None else pool
        self.physics = make_mujoco_batch(
            env.model,
            num_envs,
            env.frame_skip,
            self.pool,
            backend=backend,
            contact_forces=env.needs_contact_forces,
            body=env.velocity_body,
        )
        self._tasks = np.zeros((num_envs, env.task_space.dim))
        self._actions = np.zeros((num_envs, env.model.nu))
        self._x_before = np.zeros(num_envs)

    def _x(self) -> np.ndarray:
        """The x coordinate Gymnasium differentiates: ``qpos[0]``, or the lagged body xpos."""
        p = self.physics
        return p.qpos[:, 0] if p.body_xpos is None else p.body_xpos[:, 0]

    def _observe(self, index: np.ndarray | None = None) -> np.ndarray:
        p = self.physics
        if index is None:
            return self.env.batched_observation(p.qpos, p.qvel, p.cfrc_ext, self._tasks)
        cfrc = None if p.cfrc_ext is None else p.cfrc_ext[index]
        return self.env.batched_observation(p.qpos[index], p.qvel[index], cfrc,
                                            self._tasks[index])

    def reset(self, tasks: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        self._tasks = np.asarray(tasks, np.float64).reshape(self.num_envs, -1)
        self.physics.reset(*self.env.reset_states(seeds))
        return self._observe()

    def restart(self, index: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        index = np.asarray(index, np.int64)
        self.physics.reset(*self.env.reset_states(seeds), index=index)
        return self._observe(index)

    def step_async(self, actions: np.ndarray, active: np.ndarray) -> None:
        self._actions[:] = actions  # the physics reads this buffer until step_wait
        self._x_before[:] = self._x()
        self.physics.step_async(self._actions, active)

    def step_wait(self) -> BatchStep:
        p, env = self.physics, self.env
        p.step_wait()
        x_velocity = (self._x() - self._x_before) / env.dt  # type: ignore[attr-defined]
        state = StepState(x_velocity, p.qpos, p.qvel, p.cfrc_ext)
        terms = env.reward_terms(state, self._actions, self._tasks)
        rewards = sum(terms.values())
        return BatchStep(
            self._observe(),
            np.asarray(rewards),
            np.stack(list(terms.values()), axis=1),
            env.terminated(state),
        )

    def close(self) -> None:
        if self._own_pool:
            self.pool.close()

"""Many MuJoCo simulations of one model, advanced together on a thread pool.

The batched sampler steps hundreds of copies of HalfCheetah or Ant per environment step. Two
ways of doing that without a Python loop per physics substep are implemented, both behind
:class:`MujocoBatch`:

``"rollout"``
    one :func:`mujoco.rollout` call per environment step (``nstep=frame_skip``) over all the
    simulations: a C++ loop on MuJoCo's own thread pool, no Python per simulation. Only the
    state (``qpos``, ``qvel``) comes back. ``rollout`` restarts each call's constraint solver
    from a zero warm start (its state vector does not carry ``qacc_warmstart``), so the result
    equals Gymnasium's step to the solver tolerance, not bit for bit; over long horizons
    chaotic dynamics amplify that into different (equally valid) trajectories.
``"threads"``
    one ``MjData`` per simulation and a Python thread pool over contiguous chunks of them;
    :func:`mujoco.mj_step` releases the GIL, so the chunks run in parallel. It makes the same
    calls as Gymnasium's ``MujocoEnv.step`` (``mj_step`` with ``nstep=frame_skip``, then
    ``mj_rnePostConstraint``), so its trajectories are bit-identical to Gymnasium's, and any
    ``MjData`` field can be read (Ant needs ``cfrc_ext`` and the torso's ``xpos``). It costs a
    few microseconds of Python per simulation per step, which matters only for cheap models.

``backend="auto"`` picks ``"rollout"`` when only the state is needed and ``"threads"``
otherwise; ``docs/benchmarks.md`` has the measurements behind that choice. Both are tested
with mujoco 3.3.0 and 4.0.0.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Literal

import mujoco
import numpy as np

from metarl.errors import MetaRLError

try:  # mujoco.rollout.Rollout (a persistent thread pool) exists from mujoco 3.3 on
    from mujoco.rollout import Rollout as _Rollout
except ImportError:  # pragma: no cover - older mujoco
    _Rollout = None

Backend = Literal["auto", "rollout", "threads"]


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class PhysicsPool:
    """The threads that step simulations, shared by every batch of one sampler.

    Calls through one pool are serialised in submission order (``"rollout"`` calls go through a
    single dispatcher thread; ``"threads"`` chunks queue on one executor), so two batches of the
    same sampler can have a step in flight at once without oversubscribing the CPUs.
    """

    def __init__(self, num_threads: int | None = None) -> None:
        self.num_threads = available_cpus() if num_threads is None else int(num_threads)
        if self.num_threads < 1:
            raise MetaRLError(f"num_threads must be at least 1, got {num_threads}")
        self._executor: ThreadPoolExecutor | None = None
        self._dispatcher: ThreadPoolExecutor | None = None
        self._rollout: _Rollout | None = None
        # per model (kept alive here, so its id is not reused): one MjData per rollout thread
        self._rollout_data: dict[int, tuple[mujoco.MjModel, list[mujoco.MjData]]] = {}

    @property
    def executor(self) -> ThreadPoolExecutor:
        """Worker threads for ``"threads"`` chunks."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.num_threads, "metarl-physics")
        return self._executor

    def submit_rollout(
        self,
        models: list[mujoco.MjModel],
        nstep: int,
        initial_state: np.ndarray,
        control: np.ndarray,
        state: np.ndarray,
        sensordata: np.ndarray,
    ) -> Future[object]:
        """Start one ``mujoco.rollout`` call (arrays preallocated, checks skipped) in order."""
        if self._rollout is None:
            if _Rollout is None:
                raise MetaRLError(
                    f"mujoco {mujoco.__version__} has no mujoco.rollout.Rollout; "
                    "install mujoco>=3.3 or use backend='threads'"
                )
            self._rollout = _Rollout(nthread=self.num_threads)
            self._dispatcher = ThreadPoolExecutor(1, "metarl-rollout")
        model = models[0]
        if id(model) not in self._rollout_data:
            data = [mujoco.MjData(model) for _ in range(self.num_threads)]
            self._rollout_data[id(model)] = (model, data)
        data = self._rollout_data[id(model)][1]
        call = self._rollout.rollout
        assert self._dispatcher is not None
        return self._dispatcher.submit(
            lambda: call(
                models,
                data,
                initial_state,
                control,
                control_spec=int(mujoco.mjtState.mjSTATE_CTRL),
                skip_checks=True,
                nstep=nstep,
                state=state,
                sensordata=sensordata,
            )
        )

    def close(self) -> None:
        """Stop the threads (a later call starts them again)."""
        for pool in (self._executor, self._dispatcher):
            if pool is not None:
                pool.shutdown(wait=True)
        if self._rollout is not None:
            self._rollout.close()
        self._executor = self._dispatcher = self._rollout = None
        self._rollout_data.clear()


class MujocoBatch:
    """``n`` simulations of ``model``; each :meth:`step_async` advances ``frame_skip`` substeps.

    After :meth:`step_wait` (and after :meth:`reset`):

    * ``qpos [n, nq]``, ``qvel [n, nv]`` -- the state;
    * ``cfrc_ext [n, nbody, 6]`` -- only with ``contact_forces=True``: the external contact
      forces computed by ``mj_rnePostConstraint`` after the step, as Gymnasium's Ant reads them;
    * ``body_xpos [n, 3]`` -- only with ``body`` given: ``data.xpos[body]`` after the step,
      which (as with any ``mj_step``) is the body position *before the last substep*; Gymnasium's
      Ant computes its velocity from it.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        n: int,
        frame_skip: int,
        pool: PhysicsPool,
        *,
        contact_forces: bool = False,
        body: int | None = None,
    ) -> None:
        self.model = model
        self.n = n
        self.frame_skip = frame_skip
        self.pool = pool
        self.qpos = np.zeros((n, model.nq))
        self.qvel = np.zeros((n, model.nv))
        self.cfrc_ext = np.zeros((n, model.nbody, 6)) if contact_forces else None
        self.body = body
        self.body_xpos = np.zeros((n, 3)) if body is not None else None

    def reset(self, qpos: np.ndarray, qvel: np.ndarray, index: np.ndarray | None = None) -> None:
        """Start simulations from ``qpos``/``qvel`` as Gymnasium's reset does: all of them, or
        those in ``index`` (``qpos``/``qvel`` then hold one row per index)."""
        raise NotImplementedError

    def step_async(self, ctrl: np.ndarray, active: np.ndarray) -> None:
        """Start ``frame_skip`` substeps with controls ``ctrl [n, nu]`` (float64, read until
        :meth:`step_wait` returns); simulations with ``active`` False may be skipped."""
        raise NotImplementedError

    def step_wait(self) -> None:
        """Wait for the step; the state arrays then hold its result."""
        raise NotImplementedError


class ThreadedMujocoBatch(MujocoBatch):
    """One ``MjData`` per simulation; chunks of them stepped on the pool's Python threads."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.data = [mujoco.MjData(self.model) for _ in range(self.n)]
        # a few chunks per thread balance the load when some simulations have terminated
        edges = np.linspace(0, self.n, min(self.n, 4 * self.pool.num_threads) + 1).astype(int)
        self._chunks = [
            (int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a
        ]
        self._futures: list[Future[None]] = []

    def reset(self, qpos: np.ndarray, qvel: np.ndarray, index: np.ndarray | None = None) -> None:
        self.step_wait()  # a step left in flight (an interrupted rollout) must not race us
        m = self.model
        which = range(self.n) if index is None else index
        for row, i in enumerate(which):
            d = self.data[i]
            mujoco.mj_resetData(m, d)
            d.qpos[:] = qpos[row]
            d.qvel[:] = qvel[row]
            mujoco.mj_forward(m, d)
            self._read(i, d)

    def _read(self, i: int, d: mujoco.MjData) -> None:
        self.qpos[i] = d.qpos
        self.qvel[i] = d.qvel
        if self.cfrc_ext is not None:
            self.cfrc_ext[i] = d.cfrc_ext
        if self.body_xpos is not None:
            self.body_xpos[i] = d.xpos[self.body]

    def _step_chunk(self, lo: int, hi: int, ctrl: np.ndarray, active: np.ndarray) -> None:
        m, fs, contact = self.model, self.frame_skip, self.cfrc_ext is not None
        for i in range(lo, hi):
            if not active[i]:
                continue
            d = self.data[i]
            d.ctrl[:] = ctrl[i]
            mujoco.mj_step(m, d, fs)  # releases the GIL
            if contact:
                mujoco.mj_rnePostConstraint(m, d)
            self._read(i, d)

    def step_async(self, ctrl: np.ndarray, active: np.ndarray) -> None:
        submit = self.pool.executor.submit
        self._futures = [submit(self._step_chunk, a, b, ctrl, active) for a, b in self._chunks]

    def step_wait(self) -> None:
        # Every chunk ends before the step is forgotten: if one raised (or the wait was
        # interrupted) while others still ran, a later reset would race them on their MjData.
        wait(self._futures)
        futures, self._futures = self._futures, []
        for f in futures:
            f.result()


class RolloutMujocoBatch(MujocoBatch):
    """All simulations as one :func:`mujoco.rollout` call of ``frame_skip`` steps per step."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if self.cfrc_ext is not None or self.body_xpos is not None:
            raise MetaRLError(
                "backend='rollout' returns only qpos/qvel; this env needs contact forces or "
                "body positions, so use backend='threads' (or 'auto')"
            )
        m, n, fs = self.model, self.n, self.frame_skip
        spec = mujoco.mjtState
        full = int(spec.mjSTATE_FULLPHYSICS)
        self._nstate = mujoco.mj_stateSize(m, full)
        # the state vector stores its components in the order of their mjtState bits
        q0 = mujoco.mj_stateSize(m, full & (int(spec.mjSTATE_QPOS) - 1))
        v0 = mujoco.mj_stateSize(m, full & (int(spec.mjSTATE_QVEL) - 1))
        self._qpos = slice(q0, q0 + m.nq)
        self._qvel = slice(v0, v0 + m.nv)
        self._template = np.empty(self._nstate)
        d = mujoco.MjData(m)
        mujoco.mj_getState(m, d, self._template, full)
        self._state = np.tile(self._template, (n, 1))
        self._control = np.zeros((n, fs, m.nu))
        self._out = np.zeros((n, fs, self._nstate))
        self._sensordata = np.zeros((n, fs, m.nsensordata))
        self._models = [m] * n
        self._future: Future[object] | None = None

    def reset(self, qpos: np.ndarray, qvel: np.ndarray, index: np.ndarray | None = None) -> None:
        if self._future is not None:  # a step left in flight must not race us
            self._future.result()
            self._future = None
        rows = slice(None) if index is None else index
        self._state[rows] = self._template
        self._state[rows, self._qpos] = qpos
        self._state[rows, self._qvel] = qvel
        self.qpos[rows] = qpos
        self.qvel[rows] = qvel

    def step_async(self, ctrl: np.ndarray, active: np.ndarray) -> None:
        self._control[:] = ctrl[:, None, :]  # the same control for every substep
        self._future = self.pool.submit_rollout(
            self._models, self.frame_skip, self._state, self._control, self._out, self._sensordata
        )

    def step_wait(self) -> None:
        if self._future is None:
            raise RuntimeError("step_wait() called without step_async()")
        wait([self._future])  # ended before it is forgotten
        future, self._future = self._future, None
        future.result()
        self._state[:] = self._out[:, -1]
        self.qpos[:] = self._state[:, self._qpos]
        self.qvel[:] = self._state[:, self._qvel]


def make_mujoco_batch(
    model: mujoco.MjModel,
    n: int,
    frame_skip: int,
    pool: PhysicsPool,
    *,
    backend: Backend = "auto",
    contact_forces: bool = False,
    body: int | None = None,
) -> MujocoBatch:
    """A :class:`MujocoBatch` on ``backend`` (``"auto"``: rollout if only the state is needed)."""
    if backend == "auto":
        state_only = not contact_forces and body is None
        backend = "rollout" if state_only and _Rollout is not None else "threads"
    classes = {"rollout": RolloutMujocoBatch, "threads": ThreadedMujocoBatch}
    if backend not in classes:
        raise MetaRLError(
            f"unknown physics backend {backend!r}; choose 'auto', 'rollout' or 'threads'"
        )
    return classes[backend](model, n, frame_skip, pool, contact_forces=contact_forces, body=body)

"""Many MuJoCo simulations of one model, advanced together on a thread pool.

The batched sampler steps hundreds of copies of HalfCheetah or Ant per environment step. Two
ways of doing that are implemented, both behind :class:`MujocoBatch`, and both step exactly
the physics of Gymnasium's ``MujocoEnv.step`` (``mj_step`` with ``nstep=frame_skip`` on an
``MjData`` that persists between steps), so a sampled episode replays bit for bit in the env
a user makes with ``gym.make``:

``"batch"``
    one :class:`mujoco.batch.Batch` (mujoco 3.17 and later) for all the simulations: each
    simulation's integration state (``mjSTATE_INTEGRATION``: the state, the controls and the
    solver's warm start ``qacc_warmstart``) is kept in a row and advanced by a C++ loop on
    MuJoCo's own threads, with no Python per simulation. Only the state is read back.
``"threads"``
    one ``MjData`` per simulation and a Python thread pool over contiguous chunks of them;
    :func:`mujoco.mj_step` releases the GIL, so the chunks run in parallel. It makes the same
    calls as Gymnasium's step (``mj_step``, then ``mj_rnePostConstraint``), so any ``MjData``
    field can be read (Ant needs ``cfrc_ext`` and the torso's ``xpos``). It costs a few
    microseconds of Python per simulation per step, which matters only for cheap models.

Why not :func:`mujoco.rollout`, which an earlier version used: it restarts the constraint
solver from a zero warm start on every call and returns no warm start to carry over, so its
steps equal Gymnasium's only to the solver tolerance, and chaotic dynamics (HalfCheetah)
amplify that into visibly different episodes.

``backend="auto"`` picks ``"batch"`` when only the state is needed and mujoco has
``mujoco.batch``, ``"threads"`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Literal

import mujoco
import numpy as np

from metarl.errors import MetaRLError
from metarl.runs.machine import available_cpus

try:  # mujoco.batch (one model, many integration states, C++ threads): mujoco >= 3.17
    from mujoco.batch import Batch as _Batch
except ImportError:  # pragma: no cover - older mujoco
    _Batch = None

Backend = Literal["auto", "batch", "threads"]


class PhysicsPool:
    """The threads that step simulations, shared by every batch of one sampler.

    Calls through one pool are serialised in submission order (``"batch"`` calls go through a
    single dispatcher thread; ``"threads"`` chunks queue on one executor), so two batches of the
    same sampler can have a step in flight at once without oversubscribing the CPUs.
    """

    def __init__(self, num_threads: int | None = None) -> None:
        self.num_threads = available_cpus() if num_threads is None else int(num_threads)
        if self.num_threads < 1:
            raise MetaRLError(f"num_threads must be at least 1, got {num_threads}")
        self._executor: ThreadPoolExecutor | None = None
        self._dispatcher: ThreadPoolExecutor | None = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        """Worker threads for ``"threads"`` chunks."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.num_threads, "metarl-physics")
        return self._executor

    def submit_serial(self, call: Callable[[], object]) -> Future[object]:
        """Run ``call`` (which brings its own threads) on the dispatcher thread, in order."""
        if self._dispatcher is None:
            self._dispatcher = ThreadPoolExecutor(1, "metarl-dispatch")
        return self._dispatcher.submit(call)

    def close(self) -> None:
        """Stop the threads (a later call starts them again)."""
        for pool in (self._executor, self._dispatcher):
            if pool is not None:
                pool.shutdown(wait=True)
        self._executor = self._dispatcher = None


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


class NativeMujocoBatch(MujocoBatch):
    """All simulations in one :class:`mujoco.batch.Batch`, stepped on its C++ threads.

    The batch keeps every simulation's integration state, the solver's warm start included,
    from one step to the next, as the ``MjData`` of a Gymnasium env does; resets start from
    ``mj_resetData`` (warm start zero), as Gymnasium's do.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if _Batch is None:
            raise MetaRLError(
                f"mujoco {mujoco.__version__} has no mujoco.batch (mujoco 3.17 and later); "
                "use backend='threads' (or 'auto')"
            )
        if self.cfrc_ext is not None or self.body_xpos is not None:
            raise MetaRLError(
                "backend='batch' returns only qpos/qvel; this env needs contact forces or "
                "body positions, so use backend='threads' (or 'auto')"
            )
        # the batch's threads include the calling one (the pool's dispatcher)
        self._batch = _Batch(self.model, self.n, nthread=self.pool.num_threads)
        self._ctrl = self._batch.bind("ctrl")
        self._state_qpos = self._batch.bind("qpos")
        self._state_qvel = self._batch.bind("qvel")
        self._future: Future[object] | None = None

    def _finish(self) -> None:
        """Wait for a step left in flight, so that nothing races it on the state rows."""
        if self._future is not None:
            wait([self._future])  # ended before it is forgotten
            future, self._future = self._future, None
            future.result()

    def reset(self, qpos: np.ndarray, qvel: np.ndarray, index: np.ndarray | None = None) -> None:
        self._finish()
        ids = None if index is None else np.sort(np.asarray(index, np.int64))
        rows = slice(None) if index is None else np.asarray(index, np.int64)
        none, forward = int(mujoco.mjtStage.mjSTAGE_NONE), int(mujoco.mjtStage.mjSTAGE_ACC)
        # Gymnasium's reset: mj_resetData, the new qpos/qvel, mj_forward
        self._batch.reset(ids, stage=none)
        self._state_qpos[rows] = qpos
        self._state_qvel[rows] = qvel
        self._batch.forward(ids, stage=forward)
        self.qpos[rows] = qpos
        self.qvel[rows] = qvel

    def step_async(self, ctrl: np.ndarray, active: np.ndarray) -> None:
        self._finish()
        self._ctrl[:] = ctrl  # the same control for every substep
        ids = None if active.all() else np.flatnonzero(active)
        batch, nstep = self._batch, self.frame_skip
        self._future = self.pool.submit_serial(lambda: batch.step(ids, nstep=nstep))

    def step_wait(self) -> None:
        if self._future is None:
            raise RuntimeError("step_wait() called without step_async()")
        self._finish()
        self.qpos[:] = self._state_qpos
        self.qvel[:] = self._state_qvel


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
    """A :class:`MujocoBatch` on ``backend`` (``"auto"``: ``"batch"`` if only the state is
    needed and mujoco has it, else ``"threads"``)."""
    if backend == "auto":
        state_only = not contact_forces and body is None
        backend = "batch" if state_only and _Batch is not None else "threads"
    classes: dict[str, type[MujocoBatch]] = {
        "batch": NativeMujocoBatch, "threads": ThreadedMujocoBatch}
    if backend not in classes:
        removed = (" ('rollout' was removed: mujoco.rollout restarts the solver's warm start "
                   "on every call, so its episodes differed from the env's)"
                   if backend == "rollout" else "")
        raise MetaRLError(
            f"unknown physics backend {backend!r}; choose 'auto', 'batch' or 'threads'{removed}"
        )
    return classes[backend](model, n, frame_skip, pool, contact_forces=contact_forces, body=body)

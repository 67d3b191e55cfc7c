"""Batched multi-task sampler: every (task, episode) pair of a meta-batch rolled out at once.

MAML-RL (Finn et al. 2017, section 3.2 and 5.3) rolls out ``episodes_per_task`` episodes for
each of a meta-batch of tasks, twice per meta-iteration: with the pre-update parameters θ
(shared by all tasks) and with each task's adapted parameters θ'ᵢ. This module does both in one
call, with all ``tasks × episodes`` environments stepping together::

    sampler = MultiTaskSampler("metarl/HalfCheetahVel-v1", episodes_per_task=20, device="cuda")
    tasks = sampler.env.sample_tasks(40, rng)
    before = sampler.sample(tasks, policy, params_of(policy), rng)    # θ for every task
    adapted = stack([adapt(...) for i in range(40)])                  # or one vmapped adapt
    after = sampler.sample(tasks, policy, adapted, rng)               # θ'ᵢ, leading task axis
    before.rewards.shape == (40, 20, 200)

Each environment step runs

1. one policy forward for all environments: ``policy.sample(params, obs [T, E, obs_dim])`` --
   with stacked per-task parameters that is one batched matmul per layer
   (:class:`~metarl.rl.policies.GaussianMLPPolicy`), on ``device``;
2. the actions are copied to the host, clipped to the action space (as rllab's ``normalize``
   wrapper did for the MAML experiments, and as SB3 does), and the environments step in bulk:
   MuJoCo envs on a :class:`~metarl.envs.physics.PhysicsPool` (``mujoco.batch`` or ``mj_step`` on
   threads, no Python loop per substep), Navigation2D as one numpy operation;
3. observations, reward terms and terminations come back as arrays
   (:class:`~metarl.envs.base.VectorTaskEnv`), computed by the env's own vectorised reward.

The environments are split into ``pipeline`` groups of tasks: while one group's physics runs
(it releases the GIL), the policy runs for the next group, so a GPU forward and its transfers
overlap the CPU physics. Output tensors stay on ``device`` for the whole rollout; observations
and actions are staged through fixed (pinned, on CUDA) host buffers, so a step allocates only
the policy's own temporaries.

Each task has ``episodes_per_task`` *slots* (environments). What a slot holds depends on
``batch``:

* ``"episodes"``: exactly one episode. One that terminates early (Navigation2D's goal, Ant's
  healthy range) leaves the rest of its row masked: ``mask`` is 0.0 and everything is zero
  after termination, and the environment is not stepped again (``"threads"`` backend) or its
  results are ignored.
* ``"steps"``: a budget of ``episodes_per_task × horizon`` environment steps per task, the
  way the original MAML-RL code counts its batch (rllab's ``batch_size`` is a number of
  steps: 20 × 100 per task in meta-training, 4000 per goal at test). A slot whose episode
  ends early starts a new one while its task has taken fewer steps than the budget. The batch
  then keeps a task's episodes in the order they started (ties by slot) up to the first that
  brings it to the budget, and drops the later ones: the whole episodes a single environment
  would run one after another until the budget (rllab's ``whole_paths``), between ``budget``
  and ``budget + horizon - 1`` steps per task. An episode is stepped until it ends or until
  the budget is sure to drop it (``stop_dropped``; the batch is the same bit for bit).
  Without that cut the task's other slots would each add the rest of their last episode (up
  to ``horizon - 1`` simulated steps each, all dropped). Whether an episode is kept
  depends only on the episodes started before it, never on its own outcome, so short
  episodes are not favoured, as they would be by dropping the unfinished ones (the original
  code's training sampler did that). A policy that reaches a goal in 5 steps thus yields
  hundreds of episodes, not 20 rows of 5 valid steps. Rows then hold several episodes back
  to back (``dones`` marks the last step of each, ``timesteps`` the step within the episode)
  and are at most ``2 × horizon`` long. With episodes that never end early both modes
  coincide.

``Episodes.table`` lists every episode (task, slot, first step, length, reset seed, return).

Reproducibility: ``rng`` (numpy) draws the reset seed of every episode and the seed of a torch
generator for the action noise; every group draws its noise at every time step of the call,
live slots or not, so no episode's actions depend on when other episodes end. The same
``rng`` state, tasks, parameters and sampler settings give the same episodes. ``table.seed``
replays any episode, whatever the physics backend, in the env ``gymnasium.make`` gives:
``env.unwrapped.set_task(task)``, ``env.reset(seed=seed)`` and the clipped actions of its steps
reproduce it bit for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metarl.core.functional import Params
from metarl.envs.base import MetaEnv, Task, VectorTaskEnv
from metarl.envs.physics import Backend, PhysicsPool
from metarl.errors import MetaRLError
from metarl.rl.policies import GaussianMLPPolicy

Batch = Literal["steps", "episodes"]


class EpisodeTable(NamedTuple):
    """One entry per episode, ordered by (task, slot, first step); ``[N]`` tensors."""

    task: Tensor
    """int64: index of the episode's task in the ``tasks`` given to ``sample``."""
    slot: Tensor
    """int64: the row (slot) of its task that holds it."""
    start: Tensor
    """int64: its first time step in that row."""
    length: Tensor
    """int64: number of steps."""
    seed: Tensor
    """int64: the Gymnasium reset seed it started from."""
    returns: Tensor
    """float32: undiscounted return."""
    terminated: Tensor
    """bool: ended by the env's termination (goal, fall), not by the horizon."""


class Episodes(NamedTuple):
    """Rollouts of ``T`` tasks × ``S`` slots × ``L`` steps, as tensors on the sampler's device.

    Time step ``t`` of a row holds the observation ``o_t``, the action ``a_t`` drawn at it, and
    the reward ``r_t`` of that transition. Entries of padding (``mask`` 0) are zero. With
    ``batch="episodes"`` a row is one episode and ``L`` is the horizon; with ``"steps"`` a row
    may hold several episodes back to back (see the module docstring).
    """

    observations: Tensor
    """``[T, S, L, obs_dim]`` float32."""
    actions: Tensor
    """``[T, S, L, act_dim]`` float32: the sampled actions (before clipping to the action space;
    the environment received ``clip(actions, low, high)``)."""
    rewards: Tensor
    """``[T, S, L]`` float32."""
    log_probs: Tensor
    """``[T, S, L]`` float32: ``log π(a_t | o_t)`` of the behaviour policy, summed over action
    dimensions."""
    mask: Tensor
    """``[T, S, L]`` float32: 1.0 on steps of an episode, 0.0 on padding."""
    terminated: Tensor
    """``[T, S, L]`` bool: True at the step where the env ended the episode (goal, fall)."""
    dones: Tensor
    """``[T, S, L]`` bool: True at the last step of every episode (terminated, or at the
    horizon)."""
    timesteps: Tensor
    """``[T, S, L]`` int64: each step's index within its episode (0 at an episode's start)."""
    task_index: Tensor
    """``[T, S]`` int64: the index, in the ``tasks`` passed to :meth:`MultiTaskSampler.sample`,
    of each row's task."""
    reward_terms: dict[str, Tensor]
    """``{name: [T, S, L]}`` float32: the reward's terms, as in the env's ``info``."""
    table: EpisodeTable
    """Every episode: its task, row, first step, length, seed, return."""

    def task_returns(self) -> Tensor:
        """``[T]``: the mean undiscounted return of each task's episodes (rllab's
        ``AverageReturn``)."""
        return self._mean_per_task(self.table.returns)

    def _mean_per_task(self, per_episode: Tensor) -> Tensor:
        """``[T]``: the mean of a per-episode quantity (one entry per row of ``table``) over
        each task's episodes."""
        num_tasks = self.rewards.shape[0]
        task = self.table.task
        totals = torch.zeros(num_tasks, device=per_episode.device).index_add_(
            0, task, per_episode.float())
        return totals / torch.bincount(task, minlength=num_tasks).clamp_min(1)

    def task_reward_terms(self) -> dict[str, Tensor]:
        """``{name: [T]}``: each reward term's mean per environment step over a task's steps.

        Where a return comes from: for AntVel ``reward_forward`` is ``-|vₓ - v*|``, so its
        per-step mean is the speed error itself, which the return mixes with the bonus, the
        costs and the episode lengths."""
        steps = self.mask.sum((1, 2)).clamp_min(1.0)
        return {name: (term * self.mask).sum((1, 2)) / steps
                for name, term in self.reward_terms.items()}

    def task_terminated_fraction(self) -> Tensor:
        """``[T]``: the fraction of each task's episodes the environment ended (a fall, a goal
        reached) rather than the horizon."""
        return self._mean_per_task(self.table.terminated)


@dataclass
class _Group:
    """A contiguous range of tasks whose envs step together, with its staging buffers."""

    lo: int
    hi: int
    venv: VectorTaskEnv
    obs_host: Tensor  # [n, obs_dim] float32 (pinned on CUDA)
    obs_dev: Tensor  # [n, obs_dim] float32 on the device (obs_host itself on CPU)
    act_host: Tensor  # [n, act_dim] float32 (pinned on CUDA)
    ctrl: np.ndarray  # [n, act_dim] float64, clipped actions for the env
    event: torch.cuda.Event | None
    obs: np.ndarray | None = None  # latest observations from the env
    pending: bool = False


def budget_prefix(task: np.ndarray, slot: np.ndarray, start: np.ndarray, length: np.ndarray,
                  budget: int) -> np.ndarray:
    """Which episodes a step budget keeps: per task, in the order they started (ties by slot),
    each episode while the ones before it hold fewer than ``budget`` steps.

    The episodes kept are those a single environment running whole episodes back to back
    would have run before reaching the budget; returns a boolean array over the episodes.
    """
    keep = np.zeros(len(task), bool)
    for i in np.unique(task):
        rows = np.flatnonzero(task == i)
        rows = rows[np.lexsort((slot[rows], start[rows]))]
        before = np.cumsum(length[rows]) - length[rows]
        keep[rows[before < budget]] = True
    return keep


class _Bookkeeping:
    """Per-slot episode state of one ``sample`` call, and the finished episodes."""

    def __init__(self, num_tasks: int, slots: int) -> None:
        shape = (num_tasks, slots)
        self.alive = np.ones(shape, bool)  # the slot is inside an episode
        self.step = np.zeros(shape, np.int64)  # steps taken in the current episode
        self.start = np.zeros(shape, np.int64)  # row time of the current episode's first step
        self.ret = np.zeros(shape)  # return so far of the current episode
        self.seed = np.full(shape, -1, np.int64)  # its reset seed (-1: the first seed table)
        self.started = np.ones(shape, np.int64)  # episodes started in the slot
        self.task_steps = np.zeros(num_tasks, np.int64)
        self.finished: list[tuple[int, int, int, int, int, float, bool]] = []
        # (start, slot, length) of each task's finished episodes, for freeze()
        self.by_task: list[list[tuple[int, int, int]]] = [[] for _ in range(num_tasks)]
        # set when a task reaches its budget (it starts no more episodes): see stop_dropped()
        self.frozen = np.zeros(num_tasks, bool)
        self.finished_before = np.zeros(shape, np.int64)  # finished steps before each episode
        self.precedes = np.zeros((num_tasks, slots, slots), np.int64)  # [k, j]: k's before j's

    def advance(self, rows: slice, live: np.ndarray, ended: np.ndarray, reward: np.ndarray,
                horizon: int) -> np.ndarray:
        """Count one step of the live slots in ``rows``; close and return the episodes that
        ``ended`` (terminated) or reached the horizon."""
        self.ret[rows] += reward
        self.step[rows] += live
        self.task_steps[rows] += live.sum(axis=1)
        done = ended | (live & (self.step[rows] >= horizon))
        self._close(rows, done, ended)
        return done

    def _close(self, rows: slice, done: np.ndarray, ended: np.ndarray) -> None:
        """Record the episodes of the slots ``done`` marks in ``rows`` as finished."""
        for i, j in zip(*np.nonzero(done), strict=True):
            ti, tj = rows.start + int(i), int(j)
            start, length = int(self.start[ti, tj]), int(self.step[ti, tj])
            self.finished.append((ti, tj, start, length, int(self.seed[ti, tj]),
                                  float(self.ret[ti, tj]), bool(ended[i, j])))
            self.by_task[ti].append((start, tj, length))
        self.alive[rows] &= ~done

    def stop_dropped(self, rows: slice, budget: int) -> None:
        """End the live episodes in ``rows`` that the budget will drop (:func:`budget_prefix`)
        whatever happens next.

        An episode is dropped when the episodes that started before it (start order, ties by
        slot) hold ``budget`` steps. Their lengths only grow, so once today's lengths reach the
        budget the episode cannot be kept, and stepping it further is wasted physics. Such an
        episode exists only after its task has taken ``budget`` steps, and from then on the
        task starts no more episodes (``freeze``), so the order of its episodes is fixed.
        Stopping never changes what is kept: every episode before a kept one is itself kept,
        so it is never stopped and runs to its end as it would have.
        """
        newly = (self.task_steps[rows] >= budget) & ~self.frozen[rows]
        for i in np.flatnonzero(newly):
            self._freeze(rows.start + int(i))
        live = self.alive[rows] & self.frozen[rows, None]
        if not live.any():
            return
        before = self.finished_before[rows] + np.einsum(
            "ik,ikj->ij", self.step[rows], self.precedes[rows])
        doomed = live & (before >= budget)
        self._close(rows, doomed, np.zeros_like(doomed))

    def _freeze(self, ti: int) -> None:
        """Task ``ti`` has reached its budget: note, for each of its live episodes, the steps
        of the finished episodes before it and which live episodes come before it."""
        self.frozen[ti] = True
        start, slot = self.start[ti], np.arange(self.alive.shape[1])
        live = self.alive[ti]
        first = (start[:, None] < start[None, :]) | (
            (start[:, None] == start[None, :]) & (slot[:, None] < slot[None, :]))
        self.precedes[ti] = first & live[:, None]
        if self.by_task[ti]:
            f_start, f_slot, f_len = np.asarray(self.by_task[ti], np.int64).T
            earlier = (f_start[:, None] < start[None, :]) | (
                (f_start[:, None] == start[None, :]) & (f_slot[:, None] < slot[None, :]))
            self.finished_before[ti] = np.where(live, f_len @ earlier, 0)

    def begin(self, task: np.ndarray, slot: np.ndarray, t: int, seeds: np.ndarray) -> None:
        """New episodes in slots ``(task, slot)`` from row time ``t``."""
        self.alive[task, slot] = True
        self.step[task, slot] = 0
        self.ret[task, slot] = 0.0
        self.start[task, slot] = t
        self.seed[task, slot] = seeds
        self.started[task, slot] += 1

    def keep_budget(self, budget: int) -> list[tuple[int, int, int, int]]:
        """Drop the finished episodes beyond each task's step budget (:func:`budget_prefix`);
        returns them as ``(task, slot, start, length)``."""
        if not self.finished:
            return []
        task, slot, start, length = (np.asarray(c, np.int64)
                                     for c in list(zip(*self.finished, strict=True))[:4])
        keep = budget_prefix(task, slot, start, length, budget)
        dropped = [e[:4] for e, k in zip(self.finished, keep, strict=True) if not k]
        self.finished = [e for e, k in zip(self.finished, keep, strict=True) if k]
        return dropped

    def table(self, first_seeds: np.ndarray, device: torch.device) -> EpisodeTable:
        """The finished episodes, ordered by (task, slot, start)."""
        rows = sorted(self.finished)
        cols = list(zip(*rows, strict=True)) if rows else [()] * 7
        task, slot, start, length, seed, ret, term = (np.asarray(c) for c in cols)
        task, slot = task.astype(np.int64), slot.astype(np.int64)
        seed = np.where(seed.astype(np.int64) < 0, first_seeds[task, slot], seed)

        def ints(x: np.ndarray) -> Tensor:
            return torch.as_tensor(np.asarray(x, np.int64), device=device)

        return EpisodeTable(
            task=ints(task), slot=ints(slot), start=ints(start), length=ints(length),
            seed=ints(seed),
            returns=torch.as_tensor(np.asarray(ret, np.float64), device=device).float(),
            terminated=torch.as_tensor(np.asarray(term, bool), device=device),
        )


class MultiTaskSampler:
    """Roll out many tasks × episodes of one environment with per-task policy parameters.

    Args:
        env: a registered id (``"metarl/AntVel-v0"``) or an env following the task protocol
            (:class:`~metarl.envs.base.MetaEnv`).
        episodes_per_task: environments (slots) per task; the episodes per task and call
            with ``batch="episodes"`` (the MAML paper's ``K``).
        horizon: steps per episode; default the env's registered ``max_episode_steps``.
        batch: ``"episodes"`` (one episode per slot) or ``"steps"`` (a budget of
            ``episodes_per_task × horizon`` steps per task, episodes that end early are
            followed by new ones: the original MAML-RL sampler); see the module docstring.
        device: where the policy runs and the returned tensors live (``"cpu"``, ``"cuda"``).
        env_kwargs: constructor arguments when ``env`` is an id (e.g. ``{"oracle": True}``).
        num_threads: physics threads; default every CPU this process may use.
        backend: MuJoCo stepping, ``"auto"``, ``"batch"`` or ``"threads"`` (see
            :mod:`metarl.envs.physics`); every backend steps the env's own physics, bit for bit.
        pipeline: number of task groups whose policy forward and physics overlap (1: none).
        policy_threads: torch intra-op threads for a CPU policy while sampling (restored
            after each call); None leaves torch's setting. One is the default because torch's
            OpenMP workers would compete with the physics threads for the same cores.
        stop_dropped: with ``batch="steps"``, stop stepping an episode as soon as the budget
            is sure to drop it (:meth:`_Bookkeeping.stop_dropped`); the batch is the same
            either way, bit for bit. False simulates every episode to its end (for
            measuring what the stop saves: ``last_steps_simulated``).
    """

    def __init__(
        self,
        env: str | gym.Env,
        episodes_per_task: int,
        *,
        horizon: int | None = None,
        batch: Batch = "episodes",
        device: str | torch.device = "cpu",
        env_kwargs: Mapping[str, Any] | None = None,
        num_threads: int | None = None,
        backend: Backend = "auto",
        pipeline: int = 2,
        policy_threads: int | None = 1,
        stop_dropped: bool = True,
    ) -> None:
        if isinstance(env, str):
            try:
                made = gym.make(env, **dict(env_kwargs or {}))
            except gym.error.Error as err:
                raise MetaRLError(
                    f"cannot make env {env!r}: {err} (import metarl.envs first)"
                ) from err
        else:
            if env_kwargs:
                raise MetaRLError(
                    "env_kwargs apply only when env is an id; configure the env itself"
                )
            made = env
        unwrapped = made.unwrapped
        if not isinstance(unwrapped, MetaEnv):
            raise MetaRLError(
                f"{type(unwrapped).__name__} does not follow the task protocol "
                "(metarl.envs.base.MetaEnv); use one of the metarl/... envs"
            )
        spec_horizon = made.spec.max_episode_steps if made.spec is not None else None
        horizon = horizon if horizon is not None else spec_horizon
        if horizon is None or horizon < 1:
            raise MetaRLError(f"horizon must be a positive number of steps, got {horizon}")
        if episodes_per_task < 1:
            raise MetaRLError(f"episodes_per_task must be at least 1, got {episodes_per_task}")
        if pipeline < 1:
            raise MetaRLError(f"pipeline must be at least 1, got {pipeline}")
        if batch not in ("episodes", "steps"):
            raise MetaRLError(f"batch must be 'episodes' or 'steps', got {batch!r}")
        self.env: MetaEnv = unwrapped
        self.batch: Batch = batch
        self.episodes_per_task = int(episodes_per_task)
        self.horizon = int(horizon)
        self.device = torch.device(device)
        self.backend: Backend = backend
        self.pipeline = int(pipeline)
        self.policy_threads = policy_threads
        self.stop_dropped = bool(stop_dropped)
        self.last_steps_simulated = 0
        """Environment steps the last ``sample`` call simulated, dropped episodes included."""
        self.pool = PhysicsPool(num_threads)
        space = unwrapped.action_space  # type: ignore[attr-defined]
        self._low = np.asarray(space.low, np.float64)
        self._high = np.asarray(space.high, np.float64)
        self._groups: dict[int, list[_Group]] = {}
        # an unusable backend ("batch" for an env that needs contact forces) fails here
        self.env.batched(1, pool=self.pool, backend=backend).close()

    # --- public API --------------------------------------------------------------------------
    def sample(
        self,
        tasks: Sequence[Task | Mapping[str, Any]],
        policy: GaussianMLPPolicy,
        params: Params,
        rng: np.random.Generator,
    ) -> Episodes:
        """Roll out every task in ``tasks`` (``episodes_per_task`` slots each, see ``batch``).

        Args:
            tasks: the meta-batch (``env.sample_tasks(n, rng)``), ``T`` tasks.
            policy: supplies the computation; its own parameters are not used.
            params: one parameter set for every task (``params_of(policy)``: θ), or a stack with
                a leading task axis of size ``T`` (``functional.stack``: θ'ᵢ per task).
            rng: draws the reset seeds and the action-noise seed.
        """
        if not isinstance(rng, np.random.Generator):
            raise MetaRLError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        num_tasks = len(tasks)
        if num_tasks == 0:
            raise MetaRLError("sample() needs at least one task")
        task_array = self.env.task_space.to_array(tasks)
        params, stacked = self._check_params(policy, params, num_tasks)
        groups = self._groups_for(num_tasks)
        self._check_policy(policy, groups[0].venv)

        S, H, dev = self.episodes_per_task, self.horizon, self.device
        restart = self.batch == "steps"
        # Under the step budget every slot is busy until its task has taken S·H steps, i.e.
        # until time H; episodes started before then end by 2H. A slot starts at most H
        # episodes (one per time step before H).
        L, per_slot = (2 * H, H) if restart else (H, 1)
        budget = S * H
        obs_dim, act_dim = policy.obs_dim, policy.act_dim
        first = rng.integers(0, 2**31 - 1, size=(num_tasks, S, 1))
        generator = torch.Generator(device=dev)
        generator.manual_seed(int(rng.integers(0, 2**63 - 1)))
        # seeds of the restarts, drawn last: with no restart both modes draw the same numbers
        later = rng.integers(0, 2**31 - 1, size=(num_tasks, S, per_slot - 1))
        seeds = np.concatenate([first, later], axis=2)

        observations = torch.zeros(num_tasks, S, L, obs_dim, device=dev)
        actions = torch.zeros(num_tasks, S, L, act_dim, device=dev)
        log_probs = torch.zeros(num_tasks, S, L, device=dev)
        names = groups[0].venv.reward_term_names
        rewards = np.zeros((num_tasks, S, L))
        terms = np.zeros((num_tasks, S, L, len(names)))
        terminated = np.zeros((num_tasks, S, L), bool)
        dones = np.zeros((num_tasks, S, L), bool)
        timesteps = np.zeros((num_tasks, S, L), np.int64)
        mask = np.zeros((num_tasks, S, L), bool)
        book = _Bookkeeping(num_tasks, S)

        for g in groups:
            g.obs = g.venv.reset(
                np.repeat(task_array[g.lo : g.hi], S, axis=0), seeds[g.lo : g.hi, :, 0].reshape(-1)
            )
            g.pending = False

        def finish(g: _Group, t: int) -> None:
            """Collect group ``g``'s step ``t``; envs that were not alive contribute nothing."""
            step = g.venv.step_wait()
            g.pending = False
            rows = slice(g.lo, g.hi)
            live = book.alive[rows].copy()
            shape = (g.hi - g.lo, S)
            reward = np.where(live.reshape(-1), step.rewards, 0.0).reshape(shape)
            rewards[rows, :, t] = reward
            terms[rows, :, t] = np.where(live.reshape(-1, 1), step.reward_terms, 0.0).reshape(
                *shape, len(names)
            )
            ended = step.terminated.reshape(shape) & live
            terminated[rows, :, t] = ended
            done = book.advance(rows, live, ended, reward, H)
            dones[rows, :, t] = done
            g.obs = step.observations
            if not restart:
                return
            again = (done & (book.task_steps[rows, None] < budget)
                     & (book.started[rows] < per_slot) & (t + 1 + H <= L))
            slot_index = np.flatnonzero(again)
            if slot_index.size:
                task_i, slot_i = np.divmod(slot_index, S)
                count = book.started[rows][task_i, slot_i]
                new_seeds = seeds[g.lo + task_i, slot_i, count]
                g.obs = g.obs.copy()
                g.obs[slot_index] = g.venv.restart(slot_index, new_seeds)
                book.begin(g.lo + task_i, slot_i, t + 1, new_seeds)
            if self.stop_dropped:
                book.stop_dropped(rows, budget)

        t = 0
        with torch.no_grad(), self._policy_threads():
            for t in range(L):
                for g in groups:
                    if g.pending:
                        finish(g, t - 1)
                    alive = book.alive[g.lo : g.hi]
                    live = bool(alive.any())
                    group_params = (
                        {k: v[g.lo : g.hi] for k, v in params.items()} if stacked else params
                    )
                    # A group with no live slot still draws its step's noise (from the
                    # observations staged last), so the other groups' actions do not depend on
                    # when this one finished (or was stopped: stop_dropped keeps every bit).
                    staged = self._to_device(g, g.obs) if live else g.obs_dev
                    obs = staged.view(g.hi - g.lo, S, obs_dim)
                    act, logp = policy.sample(group_params, obs, generator)
                    if not live:
                        continue
                    mask[g.lo : g.hi, :, t] = alive
                    timesteps[g.lo : g.hi, :, t] = np.where(alive, book.step[g.lo : g.hi], 0)
                    observations[g.lo : g.hi, :, t] = obs
                    actions[g.lo : g.hi, :, t] = act
                    log_probs[g.lo : g.hi, :, t] = logp
                    active = alive.reshape(-1).copy()  # read while the step runs
                    g.venv.step_async(self._to_env(g, act), active)
                    g.pending = True
                if not book.alive.any() and not any(g.pending for g in groups):
                    break
            for g in groups:
                if g.pending:
                    finish(g, t)

        self.last_steps_simulated = int(book.task_steps.sum())
        if restart:  # the whole episodes up to each task's budget (module docstring)
            for i, j, s, n in book.keep_budget(budget):
                for x in (mask, rewards, terms, terminated, dones, timesteps):
                    x[i, j, s : s + n] = 0
        used = L if not restart else int(np.nonzero(mask.any(axis=(0, 1)))[0].max()) + 1
        valid = torch.from_numpy(mask[..., :used]).to(dev)
        observations, actions, log_probs = (
            x[:, :, :used] for x in (observations, actions, log_probs))
        # zero what finished envs left behind (masked_fill, not a product: it could be inf/nan)
        observations.masked_fill_(~valid[..., None], 0.0)
        actions.masked_fill_(~valid[..., None], 0.0)
        log_probs.masked_fill_(~valid, 0.0)
        host = {"rewards": rewards, **{n: terms[..., k] for k, n in enumerate(names)}}
        on_device = {
            k: torch.from_numpy(v[:, :, :used]).to(dev, torch.float32) for k, v in host.items()
        }
        reward_tensor = on_device.pop("rewards")
        task_index = torch.arange(num_tasks, device=dev)[:, None].expand(num_tasks, S)
        return Episodes(
            observations=observations,
            actions=actions,
            rewards=reward_tensor,
            log_probs=log_probs,
            mask=valid.float(),
            terminated=torch.from_numpy(terminated[:, :, :used]).to(dev),
            dones=torch.from_numpy(dones[:, :, :used]).to(dev),
            timesteps=torch.from_numpy(timesteps[:, :, :used]).to(dev),
            task_index=task_index.contiguous(),
            reward_terms=on_device,
            table=book.table(seeds[:, :, 0], dev),
        )

    def clipped_fraction(self, episodes: Episodes) -> float:
        """The fraction of the action components of ``episodes`` (steps with ``mask`` 1) that
        lay outside the action box, so that the environment received the box's edge instead.

        Why it is worth watching: the reward does not depend on how far beyond the edge an
        action was, so for a policy whose samples mostly fall outside the box the REINFORCE
        gradient of the inner step is mostly noise (a navigation run fails this way when its
        pre-update mean action leaves the box). A Gaussian with mean 0 and standard deviation
        1 in a ±1 box (the initial policy) has 0.32.
        """
        low = torch.as_tensor(self._low, dtype=episodes.actions.dtype,
                              device=episodes.actions.device)
        high = torch.as_tensor(self._high, dtype=episodes.actions.dtype,
                               device=episodes.actions.device)
        outside = ((episodes.actions < low) | (episodes.actions > high)).float()
        steps = episodes.mask.sum() * len(self._low)
        return float((outside * episodes.mask.unsqueeze(-1)).sum() / steps.clamp_min(1.0))

    def close(self) -> None:
        """Release the simulations and the physics threads."""
        for groups in self._groups.values():
            for g in groups:
                g.venv.close()
        self._groups.clear()
        self.pool.close()

    def __enter__(self) -> MultiTaskSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _policy_threads(self) -> Iterator[None]:
        """Run a CPU policy with ``policy_threads`` intra-op threads, then restore torch's."""
        if self.device.type != "cpu" or self.policy_threads is None:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.policy_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _groups_for(self, num_tasks: int) -> list[_Group]:
        """The task groups for a meta-batch of ``num_tasks`` (built once per size)."""
        if num_tasks in self._groups:
            return self._groups[num_tasks]
        E, cuda = self.episodes_per_task, self.device.type == "cuda"
        count = min(self.pipeline, num_tasks) if self.env.steps_asynchronously else 1
        edges = np.linspace(0, num_tasks, count + 1).astype(int)
        obs_dim = int(self.env.observation_space.shape[0])  # type: ignore[attr-defined]
        act_dim = len(self._low)
        groups = []
        for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
            n = (hi - lo) * E
            obs_host = torch.empty(n, obs_dim, pin_memory=cuda)
            groups.append(
                _Group(
                    lo=lo,
                    hi=hi,
                    venv=self.env.batched(n, pool=self.pool, backend=self.backend),
                    obs_host=obs_host,
                    obs_dev=torch.empty(n, obs_dim, device=self.device) if cuda else obs_host,
                    act_host=torch.empty(n, act_dim, pin_memory=cuda),
                    ctrl=np.empty((n, act_dim)),
                    event=torch.cuda.Event() if cuda else None,
                )
            )
        self._groups[num_tasks] = groups
        return groups

    def _to_device(self, g: _Group, obs: np.ndarray | None) -> Tensor:
        """Stage float64 host observations as float32 on the device.

        The pinned buffer is overwritten only in the next step of this group, after the
        event synchronisation in :meth:`_to_env`, which follows this copy in stream order.
        """
        assert obs is not None
        g.obs_host.copy_(torch.from_numpy(obs))
        if g.obs_dev is not g.obs_host:
            g.obs_dev.copy_(g.obs_host, non_blocking=True)
        return g.obs_dev

    def _to_env(self, g: _Group, act: Tensor) -> np.ndarray:
        """Copy the actions to the host and clip them into the action space (float64)."""
        g.act_host.copy_(act.reshape(g.act_host.shape), non_blocking=True)
        if g.event is not None:  # wait for this copy only (and what precedes it on the stream)
            g.event.record(torch.cuda.current_stream(self.device))
            g.event.synchronize()
        return np.clip(g.act_host.numpy(), self._low, self._high, out=g.ctrl)

    def _check_policy(self, policy: GaussianMLPPolicy, venv: VectorTaskEnv) -> None:
        if policy.obs_dim != venv.observation_dim or policy.act_dim != len(self._low):
            raise MetaRLError(
                f"the policy maps {policy.obs_dim} observations to {policy.act_dim} actions, but "
                f"{type(self.env).__name__} has {venv.observation_dim} observations and "
                f"{len(self._low)} actions (oracle=True adds the task parameters)"
            )

    def _check_params(
        self, policy: GaussianMLPPolicy, params: Params, num_tasks: int
    ) -> tuple[Params, bool]:
        """Detach ``params`` onto the device; say whether they are stacked per task."""
        reference = {k: tuple(v.shape) for k, v in policy.named_parameters()}
        if set(params) != set(reference):
            raise MetaRLError(
                f"params have keys {sorted(params)} but the policy expects {sorted(reference)}"
            )
        kinds = set()
        for k, shape in reference.items():
            got = tuple(params[k].shape)
            if got == shape:
                kinds.add("single")
            elif got == (num_tasks, *shape):
                kinds.add("stacked")
            else:
                raise MetaRLError(
                    f"parameter {k!r} has shape {got}; expected {shape} (one set for every task) "
                    f"or {(num_tasks, *shape)} (a stack over the {num_tasks} tasks)"
                )
        if len(kinds) > 1:
            raise MetaRLError(
                "params mix stacked and unstacked tensors; stack every tensor over the tasks "
                "(metarl.core.functional.stack) or none"
            )
        moved = {k: v.detach().to(self.device) for k, v in params.items()}
        return moved, kinds == {"stacked"}

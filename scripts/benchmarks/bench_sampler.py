"""Env-steps per second of the batched sampler against the physics ceiling and Gymnasium.

For HalfCheetah and Ant (Gymnasium's v5 models, ``frame_skip=5``), with the same number of
environments (tasks × episodes) and the same threads, in one run:

* ``ceiling`` -- one open-loop ``mujoco.rollout`` call over all environments (random controls
  held for ``frame_skip`` substeps, no policy, no observations, no rewards): what MuJoCo alone
  does on these threads;
* ``sync`` -- Gymnasium's ``SyncVectorEnv`` of ``HalfCheetah-v5``/``Ant-v5`` with random
  actions (no policy);
* ``subproc`` (``--subproc``) -- Stable-Baselines3's ``SubprocVecEnv`` with random actions;
* ``sampler`` -- :class:`metarl.rl.sampler.MultiTaskSampler` on ``HalfCheetahVel``/``AntVel`` with
  a Gaussian MLP policy (2×100 by default) sampling every action.

The Ant runs with ``terminate_when_unhealthy=False`` everywhere, so every method steps every
environment for the whole horizon. Each measurement is repeated ``--repeats`` times, methods
interleaved, and the best rate is kept (other engineers share this machine; ``cpu µs/step``,
the process's CPU time per env step, is less sensitive to their load). Prints a table with the
ratios and writes ``--out`` (JSON).

    python scripts/benchmarks/bench_sampler.py                 # 40 tasks × 20 episodes × 200 steps
    python scripts/benchmarks/bench_sampler.py --device cuda --threads 16
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import gymnasium as gym
import mujoco
import numpy as np
import torch
import tyro
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from mujoco.rollout import Rollout

import metarl.envs  # noqa: F401  (registers the envs)
from metarl.core.functional import params_of
from metarl.envs.physics import Backend
from metarl.errors import MetaRLError, require
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.sampler import MultiTaskSampler
from metarl.runs.cli import cli_errors
from metarl.runs.machine import available_cpus, machine, write_results

MODELS = {
    "HalfCheetah": ("HalfCheetah-v5", "metarl/HalfCheetahVel-v0", {}),
    "Ant": ("Ant-v5", "metarl/AntVel-v0", {"terminate_when_unhealthy": False}),
}


@dataclass
class Config:
    """Benchmark of the batched multi-task sampler (see the module docstring)."""

    models: tuple[Literal["HalfCheetah", "Ant"], ...] = ("HalfCheetah", "Ant")
    """Which models to measure."""
    tasks: int = 40
    """Tasks in the meta-batch (the MAML paper's locomotion meta-batch is 40)."""
    episodes_per_task: int = 20
    """Episodes per task; tasks × episodes environments step together."""
    steps: int = 200
    """Environment steps of the ceiling and sampler measurements (the paper's horizon)."""
    baseline_steps: int = 50
    """Environment steps of the Gymnasium/SB3 baselines (they are slow; the rate is per step)."""
    threads: int | None = None
    """Physics threads for the ceiling and the sampler; default every CPU this process may use."""
    hidden_sizes: tuple[int, ...] = (100, 100)
    """Hidden layers of the policy in the sampler's loop."""
    device: str = "cpu"
    """Where the sampler's policy runs (cpu or cuda)."""
    backends: tuple[Backend, ...] = ("auto",)
    """The sampler's MuJoCo backends to measure (see metarl.envs.physics); one row each."""
    pipeline: int = 2
    """Task groups whose policy forward overlaps the other groups' physics (1: no overlap)."""
    repeats: int = 3
    """Measurements per method; the best rate is reported."""
    subproc: bool = False
    """Also measure Stable-Baselines3's SubprocVecEnv (one process per env)."""
    subproc_envs: int = 8
    """Number of environments (= processes) of the SubprocVecEnv."""
    profile: bool = False
    """After the measurements, profile one sampler call per model (cProfile of the main thread,
    and the split of CPU time between the main thread and the physics threads)."""
    seed: int = 0
    """Seed of the initial states, controls, tasks and action noise."""
    out: Path = field(default_factory=lambda: Path("runs/bench_sampler/results.json"))
    """Where to write the results (JSON)."""


def timed(fn: Callable[[], int]) -> tuple[float, float]:
    """Run ``fn`` (which returns its number of env steps): (steps/s, CPU µs per step)."""
    wall, cpu = time.perf_counter(), time.process_time()
    steps = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return steps / wall, cpu / steps * 1e6


def ceiling(gym_id: str, n: int, steps: int, threads: int, seed: int) -> Callable[[], int]:
    """One open-loop ``mujoco.rollout`` of ``steps × frame_skip`` substeps over ``n`` envs."""
    env = cast(MujocoEnv, gym.make(gym_id).unwrapped)
    model, fs = env.model, env.frame_skip
    spec = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)
    rng = np.random.default_rng(seed)
    initial = np.empty((n, mujoco.mj_stateSize(model, spec)))
    for i in range(n):
        env.reset(seed=int(rng.integers(2**31)))
        mujoco.mj_getState(model, env.data, initial[i], spec)
    control = np.repeat(rng.uniform(-1, 1, (n, steps, model.nu)), fs, axis=1)
    data = [mujoco.MjData(model) for _ in range(threads)]
    pool = Rollout(nthread=threads)

    def run() -> int:
        pool.rollout([model] * n, data, initial, control, nstep=steps * fs, skip_checks=True)
        return n * steps

    return run


def sync_vector_env(gym_id: str, n: int, steps: int, kwargs: dict, seed: int) -> Callable[[], int]:
    """Gymnasium's ``SyncVectorEnv`` with random actions."""
    venv = gym.vector.SyncVectorEnv([lambda: gym.make(gym_id, **kwargs) for _ in range(n)])
    venv.reset(seed=seed)
    action_shape = cast(tuple[int, ...], venv.action_space.shape)
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, *action_shape))

    def run() -> int:
        for t in range(steps):
            venv.step(actions[t])
        return n * steps

    return run


def subproc_vec_env(gym_id: str, n: int, steps: int, kwargs: dict, seed: int) -> Callable[[], int]:
    """Stable-Baselines3's ``SubprocVecEnv`` with random actions."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = make_vec_env(gym_id, n, seed=seed, vec_env_cls=SubprocVecEnv, env_kwargs=kwargs)
    venv.reset()
    act_dim = cast(tuple[int, ...], venv.action_space.shape)[0]
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, n, act_dim))

    def run() -> int:
        for t in range(steps):
            venv.step(actions[t])
        return n * steps

    return run


def sampler_run(
    cfg: Config, env_id: str, kwargs: dict, threads: int, backend: Backend
) -> Callable[[], int]:
    """The batched sampler with a Gaussian MLP policy on ``cfg.device``."""
    sampler = MultiTaskSampler(
        env_id,
        cfg.episodes_per_task,
        horizon=cfg.steps,
        device=cfg.device,
        env_kwargs=kwargs,
        num_threads=threads,
        backend=backend,
        pipeline=cfg.pipeline,
    )
    space = sampler.env.observation_space.shape[0], sampler.env.action_space.shape[0]
    policy = GaussianMLPPolicy(*space, cfg.hidden_sizes).to(cfg.device)
    rng = np.random.default_rng(cfg.seed)
    tasks = sampler.env.sample_tasks(cfg.tasks, rng)

    def run() -> int:
        episodes = sampler.sample(tasks, policy, params_of(policy), rng)
        if episodes.mask.is_cuda:
            torch.cuda.synchronize()
        return int(episodes.mask.sum().item())

    return run


def profile(name: str, run: Callable[[], int]) -> dict[str, float]:
    """Where one sampler call spends its time: top functions, main-thread vs other CPU."""
    profiler = cProfile.Profile()
    wall, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
    profiler.enable()
    steps = run()
    profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    main = time.thread_time() - main
    split = {
        "wall_us_per_step": wall / steps * 1e6,
        "cpu_us_per_step": cpu / steps * 1e6,
        "main_thread_cpu_us_per_step": main / steps * 1e6,
        "other_threads_cpu_us_per_step": (cpu - main) / steps * 1e6,
    }
    print(
        f"\nprofile of one {name} sampler call: "
        + ", ".join(f"{k} {v:.1f}" for k, v in split.items())
    )
    stats = io.StringIO()
    pstats.Stats(profiler, stream=stats).sort_stats("tottime").print_stats(12)
    print(stats.getvalue().split("\n\n", 1)[-1].rstrip())
    return split


@cli_errors
def main(cfg: Config) -> dict:
    require(cfg.repeats >= 1 and cfg.steps >= 1, "repeats and steps must be at least 1")
    warnings.filterwarnings("ignore", message=".*settotalmass.*")
    # the v0 task envs on purpose: they step as Gymnasium's -v5 models (MODELS), the ceiling
    warnings.filterwarnings("ignore", message=".*is out of date. You should consider upgrading")
    # mujoco 4 warns about Gymnasium's Ant XML once per model load (800 loads for SyncVectorEnv)
    mujoco.set_mju_user_warning(lambda msg: None if "settotalmass" in msg else print(msg))
    threads = cfg.threads or available_cpus()
    n = cfg.tasks * cfg.episodes_per_task
    config = asdict(cfg)
    config["out"] = str(cfg.out)
    results: dict[str, Any] = {"config": config, "machine": machine(), "results": {}}
    print(f"{n} envs, {threads} threads, policy {cfg.hidden_sizes} on {cfg.device}")
    lines = [  # a markdown table
        f"| {'model':11} | {'method':15} | {'env-steps/s':>11} | ×ceiling | ×sync | cpu µs/step |",
        f"| {'-' * 11} | {'-' * 15} | {'-' * 10}: | -------: | ----: | ----------: |",
    ]
    for name in cfg.models:
        gym_id, env_id, kwargs = MODELS[name]
        methods = {
            "ceiling": ceiling(gym_id, n, cfg.steps, threads, cfg.seed),
            "sync": sync_vector_env(gym_id, n, cfg.baseline_steps, kwargs, cfg.seed),
        }
        for backend in cfg.backends:
            label = "sampler" if backend == "auto" else f"sampler-{backend}"
            try:
                methods[label] = sampler_run(cfg, env_id, kwargs, threads, backend)
            except MetaRLError as err:  # e.g. "batch" cannot give the Ant its contact forces
                print(f"{name}: skipping {label}: {err}")
        if cfg.subproc:
            methods["subproc"] = subproc_vec_env(
                gym_id, cfg.subproc_envs, cfg.baseline_steps, kwargs, cfg.seed
            )
        for run in methods.values():  # untimed: thread pools, buffers, the first policy call
            run()
        best: dict[str, tuple[float, float]] = {}
        for _ in range(cfg.repeats):  # interleaved, so that load changes hit every method
            for method, run in methods.items():
                rate, cpu_us = timed(run)
                if method not in best or rate > best[method][0]:
                    best[method] = (rate, cpu_us)
        top, sync = best["ceiling"][0], best["sync"][0]
        rows = {}
        for method, (rate, cpu_us) in best.items():
            rows[method] = {
                "env_steps_per_s": rate,
                "ratio_to_ceiling": rate / top,
                "ratio_to_sync": rate / sync,
                "cpu_us_per_step": cpu_us,
            }
            lines.append(
                f"| {name:11} | {method:15} | {rate:11,.0f} | {rate / top:8.2f} |"
                f" {rate / sync:5.2f} | {cpu_us:11.1f} |"
            )
        if cfg.profile:
            for label in [m for m in methods if m.startswith("sampler")]:
                rows[f"profile-{label}"] = profile(name, methods[label])  # type: ignore[assignment]
        results["results"][name] = rows  # type: ignore[index]
    print("\n".join(lines))
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    write_results(cfg.out, results)  # never over an earlier run's file
    return results


if __name__ == "__main__":
    main(tyro.cli(Config))

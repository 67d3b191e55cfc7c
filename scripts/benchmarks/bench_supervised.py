#!/usr/bin/env python
"""Time meta-iterations of our vectorised paths against a plain per-task loop, same run.

The reference is the way MAML is commonly written by hand (learn2learn style): a Python loop
over the tasks of the meta-batch with ``torch.autograd.grad(create_graph=True)`` for the inner
step (:mod:`metarl.core.reference`). Ours is :func:`metarl.core.meta.maml_objective`: one
``torch.func.vmap`` call over tasks (``vmap``), and, for families whose model takes
task-stacked parameters (sinusoid MLP), the stacked path that the trainer uses in eager mode
(``stacked``, ``metarl.core.adapt.adapt(..., autograd=True)``); ``--compile`` adds the vmap
path under ``torch.compile``. All run on the same model, the same meta-batches and the same
device; a meta-iteration is forward + backward + Adam step. Before timing, the vmap and
stacked paths' meta-gradients are compared with the loop's in float64 (the compiled path is
not checked).

Example::

    python scripts/benchmarks/bench_supervised.py --family sinusoid --meta-batch 25 --k-shot 10
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro

from metarl.core.functional import flatten, params_of
from metarl.core.meta import grads_of, maml_objective
from metarl.core.reference import loop_maml_loss
from metarl.errors import require
from metarl.runs.cli import cli_errors
from metarl.runs.machine import machine, write_results
from metarl.supervised.config import Family, SupervisedConfig, apply_preset
from metarl.supervised.presets import SupervisedPreset
from metarl.supervised.problems import build_problem

FAMILY_PRESETS = {"sinusoid": "sinusoid", "omniglot": "omniglot-5way-1shot",
                  "miniimagenet": "miniimagenet-5way-1shot"}
"""The preset each family is benchmarked with unless --preset names another."""


@dataclass
class BenchConfig:
    """Benchmark one second-order meta-iteration: vmap path vs per-task loop."""

    family: Family = "sinusoid"
    """Task family."""
    preset: SupervisedPreset | None = None
    """Preset to take the shapes from (explicit flags below override; default: the family's
    paper setting: sinusoid, omniglot-5way-1shot, miniimagenet-5way-1shot)."""
    meta_batch: int | None = None
    """Tasks per meta-batch (default: the preset's)."""
    k_shot: int | None = None
    """Support examples per task / class (default: the preset's)."""
    inner_steps: int | None = None
    """Inner steps (default: the preset's)."""
    algo: Literal["maml", "fomaml"] = "maml"
    """maml (second order) or fomaml."""
    device: str = "cpu"
    """cpu or cuda."""
    threads: int | None = None
    """torch intra-op threads (default: torch's choice)."""
    warmup: int = 10
    """Untimed iterations before timing each path."""
    repeats: int = 200
    """Timed iterations per path."""
    rounds: int = 3
    """Alternate the paths this many times; the median round is reported."""
    compile: bool = False
    """Also time the vmap path under torch.compile (its compile time is reported)."""
    data_root: Path | None = None
    """Dataset folder for the image families."""
    out: Path | None = None
    """Write the numbers to this JSON file."""


def _time_path(step, batches, repeats: int, warmup: int, device: torch.device) -> float:
    for i in range(warmup):
        step(batches[i % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    for i in range(repeats):
        step(batches[i % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - tic) / repeats


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(BenchConfig, args=argv, description=__doc__)
    facts = machine()  # the load when the benchmark starts
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = apply_preset(SupervisedConfig(family=cfg.family),
                       cfg.preset or FAMILY_PRESETS.get(cfg.family))
    require(run.family == cfg.family,
            f"--preset {cfg.preset} is for the {run.family} family, not {cfg.family}; name a "
            f"{cfg.family} preset, e.g. --preset {FAMILY_PRESETS.get(cfg.family, 'sinusoid')}")
    overrides = {k: getattr(cfg, k) for k in ("meta_batch", "k_shot", "inner_steps")
                 if getattr(cfg, k) is not None}
    run = replace(run, family=cfg.family, device=cfg.device, algo=cfg.algo,
                  data_root=cfg.data_root, **overrides)
    run.validate()
    device = torch.device(cfg.device)
    first_order = cfg.algo == "fomaml"
    lr = run.inner_lr

    # Correctness first: the two meta-gradients in float64 on one batch.
    torch.manual_seed(0)
    problem = build_problem(run)
    problem.model.to(device=device, dtype=torch.float64)
    params = params_of(problem.model)
    batch = problem.splits["train"].sample(run.meta_batch, np.random.default_rng(0))
    as64 = [tuple(t.double() if t.is_floating_point() else t for t in part) for part in batch]
    ref = loop_maml_loss(problem.loss_fn, params, as64[0], as64[1], run.meta_batch,
                         run.inner_steps, lr, first_order)
    g_ref = flatten(grads_of(ref, params))
    variants = {"vmap": None, "stacked": problem.task_losses}
    rel_err = {}
    for name, stacked in variants.items():
        if name == "stacked" and stacked is None:
            continue
        ours = maml_objective(problem.loss_fn, params, as64[0], as64[1], steps=run.inner_steps,
                              lr=lr, first_order=first_order, stacked=stacked).loss
        rel_err[name] = float((flatten(grads_of(ours, params)) - g_ref).norm() / g_ref.norm())

    # Timing in float32, fresh model, same batches for both paths.
    torch.manual_seed(0)
    problem = build_problem(run)
    problem.model.to(device)
    params = params_of(problem.model)
    opt = torch.optim.Adam(params.values(), lr=run.outer_lr)
    rng = np.random.default_rng(1)
    batches = [problem.splits["train"].sample(run.meta_batch, rng) for _ in range(8)]

    def make_step(stacked):
        def step(b) -> None:
            out = maml_objective(problem.loss_fn, params, b.support, b.query,
                                 steps=run.inner_steps, lr=lr, first_order=first_order,
                                 stacked=stacked)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
        return step

    compiled_objective = torch.compile(
        lambda p, sup, qry: maml_objective(problem.loss_fn, p, sup, qry, steps=run.inner_steps,
                                           lr=lr, first_order=first_order).loss)

    def step_compiled(b) -> None:
        loss = compiled_objective(params, b.support, b.query)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def step_loop(b) -> None:
        loss = loop_maml_loss(problem.loss_fn, params, b.support, b.query, run.meta_batch,
                              run.inner_steps, lr, first_order)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    paths = {"vmap": make_step(None), "loop": step_loop}
    if problem.task_losses is not None:
        paths["stacked"] = make_step(problem.task_losses)
    compile_seconds = None
    if cfg.compile:
        tic = time.perf_counter()
        step_compiled(batches[0])
        if device.type == "cuda":
            torch.cuda.synchronize()
        compile_seconds = time.perf_counter() - tic
        paths["vmap+compile"] = step_compiled
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(cfg.rounds):
        for name, fn in paths.items():
            times[name].append(_time_path(fn, batches, cfg.repeats, cfg.warmup, device))
    med = {k: float(np.median(v)) for k, v in times.items()}
    speedup = {k: med["loop"] / v for k, v in med.items() if k != "loop"}
    result = {
        "benchmark": "supervised meta-iteration", "family": cfg.family, "algo": cfg.algo,
        "meta_batch": run.meta_batch, "k_shot": run.k_shot, "inner_steps": run.inner_steps,
        "device": cfg.device, "threads": torch.get_num_threads(),
        "ms_per_iteration": {k: v * 1e3 for k, v in med.items()},
        "iterations_per_second": {k: 1.0 / v for k, v in med.items()},
        "speedup_over_loop": speedup, "grad_rel_error_float64": rel_err,
        "compile_seconds": compile_seconds,
        "machine": facts, "config": {k: str(v) for k, v in asdict(cfg).items()},
    }
    print(f"{cfg.family} {cfg.algo}: meta-batch {run.meta_batch}, K={run.k_shot}, "
          f"{run.inner_steps} inner step(s), {cfg.device}, {torch.get_num_threads()} threads")
    for name, t in med.items():
        extra = "" if name == "loop" else f"  {speedup[name]:6.2f}x the loop"
        if name in rel_err:
            extra += f"  (float64 meta-gradient vs loop: {rel_err[name]:.1e})"
        if name == "vmap+compile":
            extra += f"  (compiling took {compile_seconds:.1f} s)"
        print(f"  {name:13s}: {t * 1e3:8.2f} ms/iter  ({1 / t:7.1f} it/s){extra}")
    if cfg.out:
        write_results(cfg.out, result)


if __name__ == "__main__":
    main()

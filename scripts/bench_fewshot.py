#!/usr/bin/env python
"""Time one second-order MAML meta-iteration at the paper's few-shot shapes.

A meta-iteration is: draw a meta-batch of episodes from a uint8 tensor resident on the device,
the meta-objective (inner steps + query loss), backward, and an Adam step. Two paths run on
the same device in the same process, on the same model and meta-batches:

* ``loop``: the plain per-task loop of :mod:`metarl.reference` (``autograd.grad`` with
  ``create_graph=True``, one task at a time), as MAML is usually written by hand;
* ``vmap``: :func:`metarl.meta.maml_objective`, all tasks in one ``torch.func.vmap`` call,
  optionally under ``torch.compile`` (``--compile``, ``--compile-mode reduce-overhead`` for CUDA
  graphs) and with TF32 tensor-core maths on CUDA (``--tf32``).

The paths alternate in ``--rounds`` rounds and each draws the same sequence of meta-batches.
Before timing, on one meta-batch: the same path (compiled if asked) run in float64 must match
the float64 loop to 1e-10 (exactness), and the timed precision (float32, or TF32) must stay
within a stated tolerance of it (see ``LOW_PRECISION_TOLERANCE``). The first call of the timed
path is reported as the compile time (it is part of the user's wait). Pixels are random: the
cost of an episode does not depend on what the images show.

Examples::

    python scripts/bench_fewshot.py                                  # Omniglot 5-way 1-shot
    python scripts/bench_fewshot.py --setting omniglot-20way-1shot --repeats 5
    python scripts/bench_fewshot.py --device cuda --compile --compile-mode reduce-overhead --tf32
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import tyro
from torch import Tensor, nn

from metarl.benchmarking import machine, write_results
from metarl.errors import cli_errors, require
from metarl.functional import Params, flatten, functional_loss, params_of
from metarl.meta import grads_of, maml_objective
from metarl.reference import loop_maml_loss
from metarl.supervised.episodes import EpisodeSampler
from metarl.supervised.models import conv4_miniimagenet, conv4_omniglot
from metarl.supervised.presets import PRESETS
from metarl.tasks import TaskBatch

SHAPES = {  # family -> (model factory, resident split shape [classes, images, C, H, W])
    "omniglot": (conv4_omniglot, (4400, 20, 1, 28, 28)),
    "miniimagenet": (conv4_miniimagenet, (64, 40, 3, 84, 84)),
}
EXACT_TOLERANCE = 1e-10
"""float64: the vmap path (compiled or not) must match the loop to rounding (measured ~1e-15)."""
LOW_PRECISION_TOLERANCE = {"float32": 1e-2, "tf32": 3e-2}
"""float32 / TF32: bound on the relative error against the float64 loop, or 10× the error of
the plain loop run in the same precision on the same batch, whichever is larger.

In low precision the error is set mostly by the conditioning of the batch: transductive batch
norm over a handful of query images amplifies rounding a hundredfold on some episodes
(measured on CPU: the float32 *loop* itself is 1e-4 to 3e-3 off on 32-task Omniglot batches,
7e-2 on a 20-way batch with 5 inner steps; the compiled float32 path, whose Inductor
reductions accumulate in a different order, 4e-3). TF32 further rounds matmul/convolution
inputs to 10 mantissa bits (~5e-4 per product). Exactness is what the float64 check proves;
that low precision leaves the accuracy unharmed is shown by training runs.
"""


@dataclass
class BenchConfig:
    """Benchmark a second-order meta-iteration: vmap (optionally compiled) vs per-task loop."""

    setting: str = "omniglot-5way-1shot"
    """A few-shot preset of supervised/presets.py giving N, K, query size, meta-batch, inner
    steps and α (omniglot-5way-1shot, omniglot-20way-1shot, miniimagenet-5way-1shot, ...)."""
    meta_batch: int | None = None
    """Override the preset's tasks per meta-batch."""
    k_query: int | None = None
    """Override the preset's query images per class."""
    inner_steps: int | None = None
    """Override the preset's inner steps."""
    device: str = "cpu"
    """cpu or cuda."""
    dtype: Literal["float32", "float64"] = "float32"
    """Precision of the timed runs."""
    tf32: bool = False
    """CUDA only: TF32 tensor cores for float32 matmuls and convolutions (otherwise both are
    pinned to full IEEE float32 precision)."""
    compile: bool = False
    """Wrap the vmap meta-objective in torch.compile."""
    compile_mode: Literal["default", "reduce-overhead", "max-autotune-no-cudagraphs"] = "default"
    """torch.compile mode; reduce-overhead replays CUDA graphs (CUDA only)."""
    fresh_compile: bool = False
    """Disable Inductor's on-disk caches, so the reported compile time is a first run's
    (with warm caches a re-run compiles in seconds)."""
    loop: bool = True
    """Also time the per-task loop (the baseline of the ratio)."""
    warmup: int = 3
    """Untimed iterations of each path before timing (after the compile call)."""
    repeats: int = 20
    """Timed iterations per path; the median is reported."""
    rounds: int = 3
    """The paths alternate in this many rounds (--repeats split between them), so that a
    change of load during the run hits both alike."""
    threads: int | None = None
    """torch intra-op threads (default: torch's choice); note it when cores are shared."""
    seed: int = 0
    """Seed of the model initialisation and the episode draws."""
    out: Path | None = None
    """Also write the numbers to this JSON file."""


def configure_precision(device: torch.device, tf32: bool) -> str:
    """Set TF32 on or off for CUDA matmuls and convolutions; return the precision's name."""
    if device.type != "cuda":
        require(not tf32, "--tf32 needs --device cuda (TF32 is a tensor-core format)")
        return "ieee"
    mode = "tf32" if tf32 else "ieee"
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode  # type: ignore[attr-defined]  # torch ≥ 2.9, not in its stubs
    return mode


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], None], n: int, device: torch.device) -> list[float]:
    """Wall-clock seconds of each of ``n`` calls of ``step`` (device-synchronised)."""
    out = []
    for _ in range(n):
        sync(device)
        tic = time.perf_counter()
        step()
        sync(device)
        out.append(time.perf_counter() - tic)
    return out


def relative_error(grads: Params, reference: Params) -> float:
    """``‖g − g_ref‖ / ‖g_ref‖`` over all parameters, in float64."""
    a = flatten({k: grads[k].double().cpu() for k in reference})
    b = flatten({k: v.double().cpu() for k, v in reference.items()})
    return float((a - b).norm() / b.norm())


Objective = Callable[[Params, Any, Any], Tensor]
"""``(params, support, query) -> mean query loss after adaptation`` (differentiable)."""


def vmap_objective_for(model: nn.Module, steps: int, lr: float,
                       compile_mode: str | None) -> Objective:
    """Our path on ``model``: one vmap over tasks, optionally through ``torch.compile``."""
    loss_fn = functional_loss(model, nn.functional.cross_entropy)

    def objective(p: Params, support: Any, query: Any) -> Tensor:
        return maml_objective(loss_fn, p, support, query, steps=steps, lr=lr).loss

    return objective if compile_mode is None else torch.compile(objective, mode=compile_mode)


def loop_objective_for(model: nn.Module, steps: int, lr: float) -> Objective:
    """The plain per-task loop on ``model`` (:func:`metarl.reference.loop_maml_loss`)."""
    loss_fn = functional_loss(model, nn.functional.cross_entropy)

    def objective(p: Params, support: Any, query: Any) -> Tensor:
        return loop_maml_loss(loss_fn, p, support, query, len(support[1]), steps, lr)

    return objective


def meta_gradient(objective: Objective, model: nn.Module, batch: TaskBatch) -> Params:
    """∇θ of ``objective`` on ``batch`` (cast to the model's dtype), without an optimiser."""
    dtype = next(model.parameters()).dtype
    support, query = (tuple(t.to(dtype) if t.is_floating_point() else t for t in part)
                      for part in batch)
    params = params_of(model)
    return grads_of(objective(params, support, query), params)


@cli_errors
def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = tyro.cli(BenchConfig, args=argv, description=__doc__)
    facts = machine()  # the load when the benchmark starts
    require(cfg.setting in PRESETS and PRESETS[cfg.setting].get("family") in SHAPES,
            f"unknown --setting {cfg.setting!r}; choose one of "
            + ", ".join(k for k, v in PRESETS.items() if v.get("family") in SHAPES))
    require(cfg.repeats >= 1 and cfg.warmup >= 0, "--repeats must be >= 1 and --warmup >= 0")
    require(cfg.rounds >= 1, "--rounds must be at least 1")
    preset = PRESETS[cfg.setting]
    n_way, k_shot, lr = preset["n_way"], preset["k_shot"], preset["inner_lr"]
    k_query = cfg.k_query or preset["k_query"]
    meta_batch = cfg.meta_batch or preset["meta_batch"]
    steps = cfg.inner_steps if cfg.inner_steps is not None else preset["inner_steps"]
    require(cfg.device == "cpu" or torch.cuda.is_available(),
            f"--device {cfg.device} was asked for but no CUDA GPU is available")
    device = torch.device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.fresh_compile:
        import torch._inductor.config as inductor_config

        inductor_config.force_disable_caches = True
    precision = configure_precision(device, cfg.tf32)
    dtype = getattr(torch, cfg.dtype)

    factory, shape = SHAPES[preset["family"]]
    torch.manual_seed(cfg.seed)
    model = factory(n_way).to(device=device, dtype=dtype)
    params = params_of(model)
    opt = torch.optim.Adam(params.values(), lr=preset["outer_lr"])
    pixels = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator()
                           .manual_seed(cfg.seed)).to(device)
    sampler = EpisodeSampler(pixels, n_way, k_shot, k_query, dtype=dtype, name="synthetic")

    mode = cfg.compile_mode if cfg.compile else None
    vmap_objective = vmap_objective_for(model, steps, lr, mode)
    loop_objective = loop_objective_for(model, steps, lr)

    def make_step(fn: Callable[[Params, Any, Any], Tensor]) -> Callable[[], None]:
        rng = np.random.default_rng(cfg.seed)  # every path draws the same meta-batches

        def step() -> None:
            batch = sampler.sample(meta_batch, rng)
            opt.zero_grad(set_to_none=True)
            fn(params, batch.support, batch.query).backward()
            opt.step()

        return step

    # The first call of the timed path (it compiles, when asked), then the checks on its batch.
    check_batch = sampler.sample(meta_batch, np.random.default_rng(cfg.seed + 1))
    sync(device)
    tic = time.perf_counter()
    ours = grads_of(vmap_objective(params, check_batch.support, check_batch.query), params)
    sync(device)
    first_call = time.perf_counter() - tic
    model64 = copy.deepcopy(model).double()
    reference = meta_gradient(loop_objective_for(model64, steps, lr), model64, check_batch)
    error = relative_error(ours, reference)
    if cfg.dtype == "float64":
        exact_error, floor, tolerance = error, None, EXACT_TOLERANCE
    else:
        same_path = vmap_objective_for(model64, steps, lr, mode)
        exact_error = relative_error(meta_gradient(same_path, model64, check_batch), reference)
        floor = relative_error(meta_gradient(loop_objective, model, check_batch), reference)
        tolerance = max(LOW_PRECISION_TOLERANCE["tf32" if cfg.tf32 else "float32"], 10 * floor)

    require(exact_error <= EXACT_TOLERANCE,
            f"the float64 meta-gradient differs from the loop by {exact_error:.1e}, more than "
            f"{EXACT_TOLERANCE:.0e}: the vmap path is not exact (nothing was timed)")
    require(error <= tolerance, f"the {cfg.dtype}/{precision} meta-gradient differs from the "
            f"float64 loop by {error:.1e}, more than the {tolerance:.1e} allowed (nothing was "
            "timed)")

    paths = {"vmap": make_step(vmap_objective)}
    if cfg.loop:
        paths["loop"] = make_step(loop_objective)
    warm_s = {name: sum(time_steps(step, cfg.warmup, device)) for name, step in paths.items()}
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    per_round = [cfg.repeats // cfg.rounds + (r < cfg.repeats % cfg.rounds)
                 for r in range(cfg.rounds)]
    for n in per_round:  # alternating, so that a change of load hits every path alike
        for name, step in paths.items():
            seconds[name] += time_steps(step, n, device)
    ms = {name: 1e3 * statistics.median(s) for name, s in seconds.items()}
    sample_rng = np.random.default_rng(cfg.seed)
    sample_ms = 1e3 * statistics.median(
        time_steps(lambda: sampler.sample(meta_batch, sample_rng), cfg.repeats, device))

    result = {
        "setting": cfg.setting, "n_way": n_way, "k_shot": k_shot, "k_query": k_query,
        "meta_batch": meta_batch, "inner_steps": steps, "inner_lr": lr,
        "device": str(device), "machine": facts,
        "dtype": cfg.dtype, "fp32_precision": precision, "threads": torch.get_num_threads(),
        "compile": cfg.compile, "compile_mode": cfg.compile_mode if cfg.compile else None,
        "ms_per_iteration": ms, "episode_sampling_ms": sample_ms,
        "loop_over_vmap": ms["loop"] / ms["vmap"] if "loop" in ms else None,
        "first_call_s": first_call,
        "compile_s": first_call - ms["vmap"] / 1e3 if cfg.compile else None,
        "warmup_s": warm_s, "grad_rel_error_vs_float64_loop": error,
        "loop_rel_error_same_precision": floor, "tolerance": tolerance,
        "float64_rel_error_same_path": exact_error, "float64_tolerance": EXACT_TOLERANCE,
        "config": {k: str(v) for k, v in asdict(cfg).items()},
    }
    where = result["machine"]["gpu"] if device.type == "cuda" else result["machine"]["cpu"]
    print(f"{cfg.setting}: {n_way}-way {k_shot}-shot, {k_query} query/class, meta-batch "
          f"{meta_batch}, {steps} inner step(s), second order; {where}, "
          f"{cfg.dtype} ({precision}), {torch.get_num_threads()} threads"
          + (f", torch.compile mode={cfg.compile_mode}" if cfg.compile else ""))
    for name, value in ms.items():
        print(f"  {name:5s} {value:10.2f} ms / meta-iteration")
    if result["loop_over_vmap"] is not None:
        print(f"  ratio loop/vmap: {result['loop_over_vmap']:.1f}x")
    print(f"  episode sampling: {sample_ms:.3f} ms of each iteration")
    if cfg.compile:
        print(f"  compile: {result['compile_s']:.1f} s (first call {first_call:.1f} s), "
              f"then {warm_s['vmap']:.2f} s of {cfg.warmup} warm-up iterations")
    print(f"  exactness: this path in float64 vs the float64 loop: {exact_error:.1e} "
          f"(tolerance {EXACT_TOLERANCE:.0e})")
    if floor is not None:
        print(f"  {cfg.dtype}/{precision}: {error:.1e} from the float64 loop (tolerance "
              f"{tolerance:.1e}; the loop itself in {cfg.dtype}/{precision}: {floor:.1e})")
    if cfg.out is not None:
        write_results(cfg.out, result)
    return result


if __name__ == "__main__":
    main()

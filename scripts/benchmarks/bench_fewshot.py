#!/usr/bin/env python
"""Time one second-order MAML meta-iteration at the paper's few-shot shapes: our path against
the per-task loop users write by hand.

A meta-iteration is: draw a meta-batch of episodes from a uint8 tensor resident on the device,
the meta-objective (inner steps + query loss), backward, and an Adam step. In one process, on
copies of one model and the same meta-batches:

* ``naive``: the baseline, MAML as learn2learn/higher users write it -- ``nn.BatchNorm2d``
  without running statistics (its fused kernel), ``functional_call``, a Python loop over
  tasks with ``torch.autograd.grad(create_graph=True)``;
* ``batched`` and ``loop``: the trainer's two paths (:mod:`metarl.core.batching`): the meta-batch
  in one ``torch.func.vmap`` call, or our own per-task loop; both compute the query accuracy
  too, as training does. ``batched`` can run under ``torch.compile`` (``--compile``,
  ``--compile-mode reduce-overhead`` for CUDA graphs; the loop is then not timed) and with TF32
  tensor-core maths on CUDA (``--tf32``);
* ``chosen``: the one of our paths that ``--task-batching auto`` picks from these timings;
  the printed ratio is naive / chosen (above 1: ours is faster).

The paths alternate in ``--rounds`` rounds and each draws the same sequence of meta-batches.
Before timing, on a meta-batch of a few tasks: each of our paths (compiled if asked) run in
float64 must match the float64 plain loop of :mod:`metarl.core.reference` to 1e-10 (exactness), and
the timed precision (float32, or TF32) must stay within a stated tolerance of it (see
``LOW_PRECISION_TOLERANCE``). The first call of the compiled path is reported as the compile
time (it is part of the user's wait). Pixels are random: the cost of an episode does not
depend on what the images show. ``--setting all`` runs every few-shot preset in turn, with
fewer repeats for MiniImagenet.

Examples::

    python scripts/benchmarks/bench_fewshot.py                     # Omniglot 5-way 1-shot
    python scripts/benchmarks/bench_fewshot.py --setting all --threads 1 --out bench.json
    python scripts/benchmarks/bench_fewshot.py --device cuda --compile \\
        --compile-mode reduce-overhead --tf32
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

from metarl.core.batching import PATHS, choose_path
from metarl.core.functional import Params, flatten, functional_loss, params_of
from metarl.core.meta import MetricFn, grads_of, maml_objective
from metarl.core.reference import loop_maml_loss
from metarl.errors import require
from metarl.runs.cli import cli_errors
from metarl.runs.machine import machine, write_results
from metarl.supervised.episodes import EpisodeSampler
from metarl.supervised.fewshot import accuracy_metric
from metarl.supervised.models import conv4_miniimagenet, conv4_omniglot
from metarl.supervised.presets import PRESETS
from metarl.supervised.tasks import TaskBatch

SHAPES = {  # family -> (model factory, resident split shape [classes, images, C, H, W])
    "omniglot": (conv4_omniglot, (4400, 20, 1, 28, 28)),
    "miniimagenet": (conv4_miniimagenet, (64, 40, 3, 84, 84)),
}
EXACT_TOLERANCE = 1e-10
"""float64: each of our paths (compiled or not) must match the plain loop to rounding."""
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


SETTINGS = ("omniglot-5way-1shot", "omniglot-5way-5shot", "omniglot-20way-1shot",
            "omniglot-20way-5shot", "miniimagenet-5way-1shot", "miniimagenet-5way-5shot")
"""What ``--setting all`` runs: every few-shot preset shape of the paper's Table 1."""
CHECK_TASKS = 4
"""Tasks in the meta-batch of the float64 exactness check (the per-task shapes are the
setting's; fewer tasks keep the float64 check quick at MiniImagenet's size)."""


@dataclass
class BenchConfig:
    """Benchmark a second-order meta-iteration: our paths against the hand-written loop."""

    setting: str = "omniglot-5way-1shot"
    """A few-shot preset of supervised/presets.py giving N, K, query size, meta-batch, inner
    steps and α (omniglot-5way-1shot, omniglot-20way-1shot, miniimagenet-5way-1shot, ...), or
    all: every few-shot preset in turn."""
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
    """Wrap the batched meta-objective in torch.compile (the loop is then not timed: the
    trainer runs a compiled run batched)."""
    compile_mode: Literal["default", "reduce-overhead", "max-autotune-no-cudagraphs"] = "default"
    """torch.compile mode; reduce-overhead replays CUDA graphs (CUDA only)."""
    fresh_compile: bool = False
    """Disable Inductor's on-disk caches, so the reported compile time is a first run's
    (with warm caches a re-run compiles in seconds)."""
    naive: bool = True
    """Also time the hand-written loop (the baseline of the ratio)."""
    warmup: int = 2
    """Untimed iterations of each path before timing (after the compile call)."""
    repeats: int | None = None
    """Timed iterations per path; the median is reported (default: 20, 6 for MiniImagenet)."""
    rounds: int = 3
    """The paths alternate in this many rounds (--repeats split between them), so that a
    change of load during the run hits every path alike."""
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


def our_objective(model: nn.Module, path: str, steps: int, lr: float,
                  compile_mode: str | None = None) -> Objective:
    """The trainer's meta-objective on ``model`` along ``path`` (batched or loop), query
    accuracy included, optionally through ``torch.compile``."""
    loss_fn = functional_loss(model, nn.functional.cross_entropy)
    metric: MetricFn = accuracy_metric(model)

    def objective(p: Params, support: Any, query: Any) -> Tensor:
        return maml_objective(loss_fn, p, support, query, steps=steps, lr=lr, metric_fn=metric,
                              vectorize=path == "batched").loss

    return objective if compile_mode is None else torch.compile(objective, mode=compile_mode)


def loop_objective_for(model: nn.Module, steps: int, lr: float) -> Objective:
    """The plain per-task loop on ``model`` (:func:`metarl.core.reference.loop_maml_loss`)."""
    loss_fn = functional_loss(model, nn.functional.cross_entropy)

    def objective(p: Params, support: Any, query: Any) -> Tensor:
        return loop_maml_loss(loss_fn, p, support, query, len(support[1]), steps, lr)

    return objective


def hand_written_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose batch norms are ``nn.BatchNorm2d`` without running
    statistics (same affine values): the network as a hand-written MAML builds it."""
    twin = copy.deepcopy(model)
    dtype = next(model.parameters()).dtype
    for block in twin.blocks:  # type: ignore[union-attr]
        old = block.norm
        norm = nn.BatchNorm2d(old.bias.numel(), eps=old.eps, track_running_stats=False,
                              affine=True).to(old.bias.device, dtype)
        with torch.no_grad():
            norm.bias.copy_(old.bias)
            if old.weight is not None:
                norm.weight.copy_(old.weight)
        block.norm = norm
    return twin


def meta_gradient(objective: Objective, model: nn.Module, batch: TaskBatch) -> Params:
    """∇θ of ``objective`` on ``batch`` (cast to the model's dtype), without an optimiser."""
    dtype = next(model.parameters()).dtype
    support, query = (tuple(t.to(dtype) if t.is_floating_point() else t for t in part)
                      for part in batch)
    params = params_of(model)
    return grads_of(objective(params, support, query), params)


def bench_setting(cfg: BenchConfig, setting: str, device: torch.device, precision: str
                  ) -> dict[str, Any]:
    """Check and time every path at one preset's shapes; print and return the numbers."""
    preset = PRESETS[setting]
    n_way, k_shot, lr = preset["n_way"], preset["k_shot"], preset["inner_lr"]
    k_query = cfg.k_query or preset["k_query"]
    meta_batch = cfg.meta_batch or preset["meta_batch"]
    steps = cfg.inner_steps if cfg.inner_steps is not None else preset["inner_steps"]
    repeats = cfg.repeats or (6 if preset["family"] == "miniimagenet" else 20)
    dtype = getattr(torch, cfg.dtype)
    factory, shape = SHAPES[preset["family"]]
    torch.manual_seed(cfg.seed)
    model = factory(n_way).to(device=device, dtype=dtype)
    pixels = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator()
                           .manual_seed(cfg.seed)).to(device)
    sampler = EpisodeSampler(pixels, n_way, k_shot, k_query, dtype=dtype, name="synthetic")
    mode = cfg.compile_mode if cfg.compile else None
    ours = ("batched",) if cfg.compile else PATHS

    # The first call of a compiled path (it compiles), then the checks on a small batch.
    check_batch = sampler.sample(min(CHECK_TASKS, meta_batch),
                                 np.random.default_rng(cfg.seed + 1))
    model64 = copy.deepcopy(model).double()
    reference = meta_gradient(loop_objective_for(model64, steps, lr), model64, check_batch)
    floor = None
    if cfg.dtype != "float64":
        floor = relative_error(meta_gradient(loop_objective_for(model, steps, lr), model,
                                             check_batch), reference)
    tolerance = (EXACT_TOLERANCE if floor is None else
                 max(LOW_PRECISION_TOLERANCE["tf32" if cfg.tf32 else "float32"], 10 * floor))
    objectives: dict[str, Objective] = {}
    checks: dict[str, dict[str, float]] = {}
    first_call = None
    for path in ours:
        objectives[path] = our_objective(model, path, steps, lr, mode)
        sync(device)
        tic = time.perf_counter()
        timed = relative_error(meta_gradient(objectives[path], model, check_batch), reference)
        sync(device)
        if path == "batched":
            first_call = time.perf_counter() - tic
        exact = (timed if cfg.dtype == "float64" else relative_error(
            meta_gradient(our_objective(model64, path, steps, lr, mode), model64, check_batch),
            reference))
        require(exact <= EXACT_TOLERANCE,
                f"{setting}: the float64 meta-gradient of the {path} path differs from the "
                f"plain loop by {exact:.1e}, more than {EXACT_TOLERANCE:.0e}: the {path} path is "
                "not exact (nothing was timed)")
        require(timed <= tolerance,
                f"{setting}: the {cfg.dtype}/{precision} meta-gradient of the {path} path "
                f"differs from the float64 loop by {timed:.1e}, more than the {tolerance:.1e} "
                "allowed (nothing was timed)")
        checks[path] = {"float64_rel_error": exact, "timed_precision_rel_error": timed}

    def make_step(net: nn.Module, fn: Objective) -> Callable[[], None]:
        rng = np.random.default_rng(cfg.seed)  # every path draws the same meta-batches
        params = params_of(net)
        opt = torch.optim.Adam(params.values(), lr=preset["outer_lr"])

        def step() -> None:
            batch = sampler.sample(meta_batch, rng)
            opt.zero_grad(set_to_none=True)
            fn(params, batch.support, batch.query).backward()
            opt.step()

        return step

    paths: dict[str, Callable[[], None]] = {}
    for path in ours:  # each path trains its own copy of the model with its own Adam
        net = model if path == "batched" else copy.deepcopy(model)
        paths[path] = make_step(net, objectives[path] if net is model else
                                our_objective(net, path, steps, lr))
    if cfg.naive:
        twin = hand_written_model(model)
        paths["naive"] = make_step(twin, loop_objective_for(twin, steps, lr))
    warm_s = {name: sum(time_steps(step, cfg.warmup, device)) for name, step in paths.items()}
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    per_round = [repeats // cfg.rounds + (r < repeats % cfg.rounds) for r in range(cfg.rounds)]
    for n in per_round:  # alternating, so that a change of load hits every path alike
        for name, step in paths.items():
            seconds[name] += time_steps(step, n, device)
    ms = {name: 1e3 * statistics.median(s) for name, s in seconds.items()}
    chosen = choose_path({p: ms[p] for p in ours})
    ratio = ms["naive"] / ms[chosen] if "naive" in ms else None
    result = {
        "setting": setting, "n_way": n_way, "k_shot": k_shot, "k_query": k_query,
        "meta_batch": meta_batch, "inner_steps": steps, "inner_lr": lr, "repeats": repeats,
        "ms_per_iteration": ms, "chosen": chosen, "naive_over_chosen": ratio,
        "first_call_s": first_call,
        "compile_s": first_call - ms["batched"] / 1e3 if cfg.compile and first_call else None,
        "warmup_s": warm_s, "checks": checks, "tolerance": tolerance,
        "loop_rel_error_same_precision": floor, "float64_tolerance": EXACT_TOLERANCE,
    }
    print(f"{setting}: {n_way}-way {k_shot}-shot, {k_query} query/class, meta-batch "
          f"{meta_batch}, {steps} inner step(s), second order")
    for name, value in ms.items():
        print(f"  {name:8s} {value:10.2f} ms / meta-iteration")
    if ratio is not None:
        print(f"  ratio naive/chosen ({chosen}): {ratio:.2f}x")
    if cfg.compile and first_call is not None:
        print(f"  compile: {result['compile_s']:.1f} s (first call {first_call:.1f} s), "
              f"then {warm_s['batched']:.2f} s of {cfg.warmup} warm-up iterations")
    for path, check in checks.items():
        print(f"  exactness of {path}: float64 vs the float64 loop {check['float64_rel_error']:.1e}"
              f" (tolerance {EXACT_TOLERANCE:.0e}); {cfg.dtype}/{precision} "
              f"{check['timed_precision_rel_error']:.1e} (tolerance {tolerance:.1e})")
    return result


@cli_errors
def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = tyro.cli(BenchConfig, args=argv, description=__doc__)
    facts = machine()  # the load when the benchmark starts
    known = [k for k, v in PRESETS.items() if v.get("family") in SHAPES]
    require(cfg.setting == "all" or cfg.setting in known,
            f"unknown --setting {cfg.setting!r}; choose all or one of {', '.join(known)}")
    require(cfg.repeats is None or cfg.repeats >= 1, "--repeats must be at least 1")
    require(cfg.warmup >= 0, "--warmup must be >= 0")
    require(cfg.rounds >= 1, "--rounds must be at least 1")
    require(cfg.device == "cpu" or torch.cuda.is_available(),
            f"--device {cfg.device} was asked for but no CUDA GPU is available")
    device = torch.device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.fresh_compile:
        import torch._inductor.config as inductor_config

        inductor_config.force_disable_caches = True
    precision = configure_precision(device, cfg.tf32)
    where = facts["gpu"] if device.type == "cuda" else facts["cpu"]
    print(f"{where}, {cfg.dtype} ({precision}), {torch.get_num_threads()} threads"
          + (f", torch.compile mode={cfg.compile_mode}" if cfg.compile else ""))
    settings = SETTINGS if cfg.setting == "all" else (cfg.setting,)
    runs = [bench_setting(cfg, setting, device, precision) for setting in settings]
    if len(runs) > 1:
        print("setting                    naive ms   chosen ms  chosen   naive/chosen")
        for r in runs:
            ratio = r["naive_over_chosen"]
            print(f"{r['setting']:25s} {r['ms_per_iteration'].get('naive', float('nan')):10.1f}"
                  f" {r['ms_per_iteration'][r['chosen']]:10.1f}  {r['chosen']:8s} "
                  + (f"{ratio:.2f}x" if ratio is not None else "-"))
    result = {
        "machine": facts, "device": str(device), "dtype": cfg.dtype,
        "fp32_precision": precision, "threads": torch.get_num_threads(),
        "compile": cfg.compile, "compile_mode": cfg.compile_mode if cfg.compile else None,
        "settings": runs, "config": {k: str(v) for k, v in asdict(cfg).items()},
    }
    if cfg.out is not None:
        write_results(cfg.out, result)
    return result


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Time one MAML-TRPO outer step (inner update + gradient + 10 CG iterations + line search)
for each way of batching the tasks, against the plain per-task loop, in the same run.

The data are synthetic episodes of the paper's shapes (default: HalfCheetah, 40 tasks × 20
episodes × 200 steps, 17-D observations, 6-D actions, a 2×100 ReLU policy), so the timing does
not depend on the simulator. Every variant starts from the same parameters and data; the
parameters they end at, and their times, are compared with the reference's: the plain loop
with double-backprop products (``--modes loop --fishers autograd``), or the first variant asked
for when that is left out. One untimed step per variant first, then the variants alternate
``--repeats`` times (so that a change of load hits all alike); medians are reported.
``--compare-malloc`` runs each round in two child processes instead, one per allocator.

Example::

    python scripts/benchmarks/bench_trpo.py                          # CPU, HalfCheetah shapes
    python scripts/benchmarks/bench_trpo.py --device cuda --repeats 5
    python scripts/benchmarks/bench_trpo.py --tasks 20 --horizon 100 --obs-dim 2 --act-dim 2  # nav
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tyro

from metarl.core.functional import flatten
from metarl.errors import require
from metarl.rl.maml_trpo import MAMLTRPO, Fisher, Mode, TRPOSettings
from metarl.rl.pg import PGBatch
from metarl.rl.policies import GaussianMLPPolicy
from metarl.runs.allocator import keep_freed_memory
from metarl.runs.cli import cli_errors
from metarl.runs.machine import machine, write_results


@dataclass
class BenchTRPOConfig:
    """Benchmark the MAML-TRPO outer step."""

    tasks: int = 40
    """Tasks in the meta-batch (the paper's locomotion: 40)."""
    episodes: int = 20
    """Episodes per task."""
    horizon: int = 200
    """Steps per episode."""
    obs_dim: int = 17
    """Observation size (HalfCheetah-v5: 17)."""
    act_dim: int = 6
    """Action size (HalfCheetah: 6)."""
    device: str = "cpu"
    """cpu or cuda."""
    threads: int | None = None
    """torch intra-op threads (default: torch's choice)."""
    modes: tuple[Mode, ...] = ("loop", "stacked", "vmap")
    """Ways of batching the inner update over tasks to time (loop is the reference)."""
    fishers: tuple[Fisher, ...] = ("autograd", "gauss-newton")
    """KL Hessian-vector product variants to time."""
    repeats: int = 2
    """Timed steps per variant (after one untimed warm-up step each, the variants alternating);
    the median is reported."""
    out: Path | None = None
    """Write the numbers to this JSON file."""
    compare_malloc: bool = False
    """Instead, time every variant in child processes with the heap kept (ours,
    metarl/runs/allocator.py) and with glibc's default allocator (``METARL_MALLOC=default``, large
    tensors mmap'd and unmapped each time), alternating the two over ``--repeats`` rounds,
    and print the ratio."""


def synthetic(cfg: BenchTRPOConfig, policy: GaussianMLPPolicy, seed: int) -> PGBatch:
    g = torch.Generator(device="cpu").manual_seed(seed)
    shape = (cfg.tasks, cfg.episodes, cfg.horizon)
    obs = torch.randn(*shape, cfg.obs_dim, generator=g)
    mask = torch.ones(shape)
    mask[:, :, int(0.9 * cfg.horizon):] = (torch.rand(cfg.tasks, cfg.episodes, 1, generator=g)
                                           > 0.2).float()  # some early terminations
    with torch.no_grad():
        dist = policy(obs)
        act = dist.mean + torch.exp(dist.log_std) * torch.randn(dist.mean.shape, generator=g)
        logp = policy.log_prob(dict(policy.named_parameters()), obs, act)
    adv = torch.randn(shape, generator=g) * mask
    dev = torch.device(cfg.device)
    return PGBatch(*(t.to(dev) for t in (obs, act, adv, logp, mask)))


def child_args(cfg: BenchTRPOConfig, out: Path) -> list[str]:
    """The command line of one child run of ``cfg``'s benchmark: one timed step per variant
    (after the untimed one), written to ``out``."""
    args = ["--tasks", str(cfg.tasks), "--episodes", str(cfg.episodes), "--horizon",
            str(cfg.horizon), "--obs-dim", str(cfg.obs_dim), "--act-dim", str(cfg.act_dim),
            "--device", cfg.device, "--modes", *cfg.modes, "--fishers", *cfg.fishers,
            "--repeats", "1", "--out", str(out)]
    return args + (["--threads", str(cfg.threads)] if cfg.threads else [])


def compare_allocators(cfg: BenchTRPOConfig) -> tuple[list[dict[str, Any]], bool]:
    """Every variant timed in child processes with the heap kept and with glibc's defaults,
    alternating over ``cfg.repeats`` rounds (the order flipped every round), so that a change
    of load hits both allocators alike; the median per variant and allocator is kept.
    Returns the rows (heap times as ``seconds``, ratios to the reference from them) and
    whether the heap children could keep the heap (False off glibc)."""
    runs: dict[str, list[list[dict[str, Any]]]] = {"heap": [], "default": []}
    heap_applied = False
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(cfg.repeats):
            for setting in ("heap", "default") if r % 2 == 0 else ("default", "heap"):
                out = Path(tmp) / f"{setting}-{r}.json"
                subprocess.run([sys.executable, __file__, *child_args(cfg, out)], check=True,
                               env={**os.environ, "METARL_MALLOC": setting},
                               stdout=subprocess.DEVNULL)
                result = json.loads(out.read_text())
                runs[setting].append(result["rows"])
                heap_applied = heap_applied or (setting == "heap" and result["heap_allocator"])
                print(f"round {r + 1}/{cfg.repeats}: {setting:7s} allocator done", flush=True)
    rows = []
    for k, first in enumerate(runs["heap"][0]):
        heap_s = float(np.median([rs[k]["seconds"] for rs in runs["heap"]]))
        default_s = float(np.median([rs[k]["seconds"] for rs in runs["default"]]))
        diff = max(rs[k]["max_abs_diff_vs_reference"] for key in runs for rs in runs[key])
        rows.append({**first, "seconds": heap_s, "seconds_default_malloc": default_s,
                     "max_abs_diff_vs_reference": diff})
    for row in rows:
        row["ratio_to_reference"] = rows[0]["seconds"] / row["seconds"]
    return rows, heap_applied


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(BenchTRPOConfig, args=argv, description=__doc__)
    facts = machine()  # the load when the benchmark starts
    heap = keep_freed_memory()
    require(cfg.repeats >= 1, "--repeats must be at least 1")
    if cfg.device.startswith("cuda"):
        require(torch.cuda.is_available(), "--device cuda asked for but no GPU; use cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rows, heap = compare_allocators(cfg) if cfg.compare_malloc else (time_variants(cfg), heap)
    report(rows)
    for row in rows if cfg.compare_malloc else []:
        print(f"{row['mode']:8s} {row['fisher']:13s} glibc default allocator "
              f"{row['seconds_default_malloc']:8.3f} s/step: the heap kept "
              f"{row['seconds_default_malloc'] / row['seconds']:.2f}x faster")
    if cfg.out:
        write_results(cfg.out, {"config": {k: str(v) for k, v in vars(cfg).items()},
                                "threads": torch.get_num_threads(), "heap_allocator": heap,
                                "machine": facts, "rows": rows})


def time_variants(cfg: BenchTRPOConfig) -> list[dict[str, Any]]:
    """Every variant's median seconds per step in this process, its ratio to the reference's
    and how far its end parameters are from the reference's."""
    torch.manual_seed(0)
    base = GaussianMLPPolicy(cfg.obs_dim, cfg.act_dim)
    support, query = synthetic(cfg, base, 1), synthetic(cfg, base, 2)
    base.to(cfg.device)

    def sync() -> None:
        if cfg.device.startswith("cuda"):
            torch.cuda.synchronize()

    def one_step(mode: Mode, fisher: Fisher) -> tuple[float, torch.Tensor, dict[str, float]]:
        """Seconds of one outer step from the shared start, the parameters it ends at."""
        policy = copy.deepcopy(base)
        learner = MAMLTRPO(policy, inner_lr=0.1, mode=mode, trpo=TRPOSettings(fisher=fisher))
        sync()
        tic = time.perf_counter()
        stats = learner.step(support, query)
        sync()
        return time.perf_counter() - tic, flatten(dict(policy.named_parameters())).detach(), stats

    # the reference first: the plain loop with double-backprop products (else the first asked)
    variants = sorted(((m, f) for m in cfg.modes for f in cfg.fishers),
                      key=lambda v: v != ("loop", "autograd"))
    reference_name = "/".join(variants[0])
    finals, stats = {}, {}
    for v in variants:  # one untimed warm-up step each; its parameters are compared
        _, finals[v], stats[v] = one_step(*v)
    times: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    for _ in range(cfg.repeats):  # alternating, so that a change of load hits every variant
        for v in variants:
            times[v].append(one_step(*v)[0])
    ref_seconds = float(np.median(times[variants[0]]))
    rows: list[dict[str, Any]] = []
    for (mode, fisher), final in finals.items():
        seconds = float(np.median(times[(mode, fisher)]))
        rows.append({"mode": mode, "fisher": fisher, "seconds": seconds,
                     "ratio_to_reference": ref_seconds / seconds, "reference": reference_name,
                     "accepted": stats[(mode, fisher)]["accepted"],
                     "max_abs_diff_vs_reference": float((final - finals[variants[0]]).abs().max())})
    return rows


def report(rows: list[dict[str, Any]]) -> None:
    """Print each variant's time, its ratio to the reference (the first row) and how far its
    end parameters are from the reference's."""
    first = rows[0]
    print(f"reference: {first['reference']}" + (
        "" if (first["mode"], first["fisher"]) == ("loop", "autograd") else
        " (the plain loop with autograd products was not asked for)"))
    for row in rows:
        print(f"{row['mode']:8s} {row['fisher']:13s} {row['seconds']:8.3f} s/step  "
              f"{row['ratio_to_reference']:6.2f}x the reference   (params vs the reference's: "
              f"max |Δ| {row['max_abs_diff_vs_reference']:.1e})", flush=True)


if __name__ == "__main__":
    main()

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

Example::

    python scripts/bench_trpo.py                          # CPU, HalfCheetah shapes
    python scripts/bench_trpo.py --device cuda --repeats 5
    python scripts/bench_trpo.py --tasks 20 --horizon 100 --obs-dim 2 --act-dim 2   # navigation
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

from metarl.allocator import keep_freed_memory
from metarl.benchmarking import machine, write_results
from metarl.errors import cli_errors, require
from metarl.functional import flatten
from metarl.maml_rl import FISHER, MAMLTRPO, MODES, TRPOSettings
from metarl.pg import PGBatch
from metarl.policies import GaussianMLPPolicy


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
    modes: tuple[str, ...] = ("loop", "stacked", "vmap")
    """Ways of batching the inner update over tasks to time (loop is the reference)."""
    fishers: tuple[str, ...] = ("autograd", "gauss-newton")
    """KL Hessian-vector product variants to time."""
    repeats: int = 2
    """Timed steps per variant (after one untimed warm-up step each, the variants alternating);
    the median is reported."""
    out: Path | None = None
    """Write the numbers to this JSON file."""
    compare_malloc: bool = False
    """Also time every variant in a child process with glibc's default allocator
    (``METARL_MALLOC=default``, large tensors mmap'd and unmapped each time) and print the
    ratio to ours (the heap kept, metarl/allocator.py)."""


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


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(BenchTRPOConfig, args=argv, description=__doc__)
    facts = machine()  # the load when the benchmark starts
    heap = keep_freed_memory()
    require(set(cfg.modes) <= set(MODES), f"--modes must be among {MODES}")
    require(set(cfg.fishers) <= set(FISHER), f"--fishers must be among {FISHER}")
    require(cfg.repeats >= 1, "--repeats must be at least 1")
    if cfg.device.startswith("cuda"):
        require(torch.cuda.is_available(), "--device cuda asked for but no GPU; use cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(0)
    base = GaussianMLPPolicy(cfg.obs_dim, cfg.act_dim)
    support, query = synthetic(cfg, base, 1), synthetic(cfg, base, 2)
    base.to(cfg.device)

    def sync() -> None:
        if cfg.device.startswith("cuda"):
            torch.cuda.synchronize()

    def one_step(mode: str, fisher: str) -> tuple[float, torch.Tensor, dict[str, float]]:
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
    print(f"reference: {reference_name}" + ("" if variants[0] == ("loop", "autograd") else
                                           " (the plain loop with autograd products was not "
                                           "asked for)"))
    for (mode, fisher), final in finals.items():
        seconds = float(np.median(times[(mode, fisher)]))
        diff = float((final - finals[variants[0]]).abs().max())
        rows.append({"mode": mode, "fisher": fisher, "seconds": seconds,
                     "ratio_to_reference": ref_seconds / seconds, "reference": reference_name,
                     "accepted": stats[(mode, fisher)]["accepted"],
                     "max_abs_diff_vs_reference": diff})
        print(f"{mode:8s} {fisher:13s} {seconds:8.3f} s/step  {ref_seconds / seconds:6.2f}x the "
              f"reference   (params vs the reference's: max |Δ| {diff:.1e})", flush=True)
    default_rows = default_allocator_rows(argv) if cfg.compare_malloc else []
    for ours, theirs in zip(rows, default_rows, strict=False):
        ours["seconds_default_malloc"] = theirs["seconds"]
        print(f"{ours['mode']:8s} {ours['fisher']:13s} glibc default allocator "
              f"{theirs['seconds']:8.3f} s/step: ours {theirs['seconds'] / ours['seconds']:.2f}x "
              "faster")
    if cfg.out:
        write_results(cfg.out, {"config": {k: str(v) for k, v in vars(cfg).items()},
                                "threads": torch.get_num_threads(), "heap_allocator": heap,
                                "machine": facts, "rows": rows})


def default_allocator_rows(argv: list[str] | None) -> list[dict]:
    """The same benchmark in a child process with glibc's default allocator."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--compare-malloc"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "default.json"
        subprocess.run([sys.executable, __file__, *args, "--out", str(out)], check=True,
                       env={**os.environ, "METARL_MALLOC": "default"}, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())["rows"]


if __name__ == "__main__":
    main()

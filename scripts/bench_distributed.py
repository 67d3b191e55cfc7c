#!/usr/bin/env python
"""Meta-iterations per second with 1, 2, 4, ... ranks under torchrun (gloo on CPU).

Each configuration runs the real training script end to end (``torchrun --standalone
--nproc_per_node=N scripts/train_*.py``) on the same total meta-batch, and reads the training
time from the run's results.json. Ranks split the meta-batch, so the ideal is N× the
single-process rate up to the number of cores.

Example::

    python scripts/bench_distributed.py --ranks 1 2 4 --workloads sinusoid navigation
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tyro

from metarl.benchmarking import machine, write_results
from metarl.errors import MetaRLError, cli_errors, require
from metarl.io import output_file

REPO = Path(__file__).resolve().parents[1]
WORKLOADS: dict[str, tuple[str, list[str]]] = {
    "sinusoid": ("train_supervised.py",
                 ["--preset", "sinusoid", "--meta-batch", "32", "--eval-every", "0",
                  "--test-tasks", "10", "--checkpoint-every", "100000", "--log-every", "50"]),
    "navigation": ("train_rl.py",
                   ["--preset", "navigation", "--meta-batch", "20", "--threads", "1",
                    "--torch-threads", "1", "--checkpoint-every", "100000"]),
}


@dataclass
class BenchDistConfig:
    """Scaling of the training scripts with the number of ranks."""

    ranks: tuple[int, ...] = (1, 2, 4)
    """Numbers of processes to try."""
    workloads: tuple[str, ...] = ("sinusoid", "navigation")
    """sinusoid (MAML, meta-batch 32) and/or navigation (MAML-TRPO, paper batch)."""
    iterations: dict[str, int] | None = None
    """Iterations per workload (default: sinusoid 600, navigation 4)."""
    out: Path | None = None
    """Write the numbers to this JSON file."""


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(BenchDistConfig, args=argv, description=__doc__)
    iters = {"sinusoid": 600, "navigation": 4, **(cfg.iterations or {})}
    unknown = set(cfg.workloads) - set(WORKLOADS)
    if unknown:
        raise MetaRLError(f"unknown workload(s) {sorted(unknown)}; choose from {list(WORKLOADS)}")
    require(1 in cfg.ranks, "--ranks must include 1: the single process is the reference of "
            "the speed-ups")
    if cfg.out:
        output_file(cfg.out)  # a folder given as --out fails before the runs
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for name in cfg.workloads:
        script, args = WORKLOADS[name]
        base = None
        for n in sorted(cfg.ranks):  # 1 first: the reference
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc_per_node={n}", str(REPO / "scripts" / script), *args,
                       "--iterations", str(iters[name]), "--out-dir", f"{tmp}/run"]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
                if proc.returncode != 0:
                    raise MetaRLError(f"{name} with {n} ranks failed: "
                                      f"{proc.stderr.strip().splitlines()[-1]}")
                res = json.loads(Path(f"{tmp}/run/results.json").read_text())
            rate = res["iterations"] / res["train_seconds"]
            base = base or rate
            rows.append({"workload": name, "ranks": n, "iterations": res["iterations"],
                         "train_seconds": res["train_seconds"], "iterations_per_second": rate,
                         "speedup": rate / base})
            print(f"{name:11s} {n} rank(s): {rate:8.3f} meta-iterations/s "
                  f"({rate / base:.2f}x of 1 rank)", flush=True)
    print(f"cores: {os.cpu_count()}")
    if cfg.out:
        write_results(cfg.out, {"cores": os.cpu_count(), "machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()

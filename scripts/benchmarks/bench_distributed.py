#!/usr/bin/env python
"""Meta-iterations per second with 1, 2, 4, ... ranks under torchrun (gloo on CPU).

Each configuration runs the real training script end to end (``torchrun --standalone
--nproc_per_node=N scripts/train_*.py``) on the same total meta-batch, and reads the seconds
per meta-iteration from rank 0's metrics.jsonl, leaving out the first log window (process
warm-up: first-touch allocations, thread pools, the first all-reduces). Ranks split the
meta-batch, so the ideal is N× the single-process rate up to the number of cores.

Example::

    python scripts/benchmarks/bench_distributed.py --ranks 1 2 4 --workloads sinusoid navigation
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

from metarl.errors import MetaRLError, require
from metarl.runs.cli import cli_errors
from metarl.runs.io import output_file
from metarl.runs.logger import read_metrics
from metarl.runs.machine import machine, write_results

REPO = Path(__file__).resolve().parents[2]
WORKLOADS: dict[str, tuple[str, list[str]]] = {
    "sinusoid": ("train_supervised.py",
                 ["--preset", "sinusoid", "--meta-batch", "32", "--eval-every", "0",
                  "--test-tasks", "10", "--checkpoint-every", "100000"]),
    "navigation": ("train_rl.py",
                   ["--preset", "navigation", "--meta-batch", "20", "--threads", "1",
                    "--torch-threads", "1", "--checkpoint-every", "100000"]),
}
WINDOWS = 10
"""Log windows per run: the first is the warm-up left out, the other nine are timed."""


def log_args(script: str, iterations: int) -> list[str]:
    """Arguments that log ``iterations`` in :data:`WINDOWS` windows: train_supervised.py's
    ``--log-every``; train_rl.py logs every iteration already."""
    if script == "train_supervised.py":
        return ["--log-every", str(max(1, iterations // WINDOWS))]
    return []


def seconds_per_iteration(run_dir: Path) -> float:
    """Mean seconds per meta-iteration over the run's log windows after the first, from the
    ``time/seconds_per_iteration`` each window of metrics.jsonl records, each weighted by its
    iterations (the last window is shorter when ``--log-every`` does not divide the run)."""
    records = read_metrics(run_dir)
    windows = [(r["step"], r["time/seconds_per_iteration"]) for r in records
               if "time/seconds_per_iteration" in r]
    if len(windows) < 2:
        raise MetaRLError(f"{run_dir} logged {len(windows)} timed window(s); the first is the "
                          "warm-up, so at least two are needed: raise --iterations")
    spans = [(end - start, mean) for (start, _), (end, mean) in zip(windows, windows[1:])]
    return sum(n * mean for n, mean in spans) / sum(n for n, _ in spans)


@dataclass
class BenchDistConfig:
    """Scaling of the training scripts with the number of ranks."""

    ranks: tuple[int, ...] = (1, 2, 4)
    """Numbers of processes to try."""
    workloads: tuple[str, ...] = ("sinusoid", "navigation")
    """sinusoid (MAML, meta-batch 32) and/or navigation (MAML-TRPO, paper batch)."""
    iterations: dict[str, int] | None = None
    """Iterations per workload (default: sinusoid 600, navigation 5), logged in ten windows
    (or one per iteration when fewer); the first window is not timed."""
    out: Path | None = None
    """Write the numbers to this JSON file."""


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = tyro.cli(BenchDistConfig, args=argv, description=__doc__)
    facts = machine()  # the load when the benchmark starts
    iters = {"sinusoid": 600, "navigation": 5, **(cfg.iterations or {})}
    unknown = set(cfg.workloads) - set(WORKLOADS)
    if unknown:
        raise MetaRLError(f"unknown workload(s) {sorted(unknown)}; choose from {list(WORKLOADS)}")
    require(1 in cfg.ranks, "--ranks must include 1: the single process is the reference of "
            "the speed-ups")
    if cfg.out:
        output_file(cfg.out)  # a folder given as --out fails before the runs
    require(all(n >= 2 for n in iters.values()), "--iterations must be at least 2 per "
            "workload: the first log window is the warm-up and is not timed")
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for name in cfg.workloads:
        script, args = WORKLOADS[name]
        base = None
        for n in sorted(cfg.ranks):  # 1 first: the reference
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc_per_node={n}", str(REPO / "scripts" / script), *args,
                       "--iterations", str(iters[name]), *log_args(script, iters[name]),
                       "--out-dir", f"{tmp}/run"]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
                if proc.returncode != 0:
                    raise MetaRLError(f"{name} with {n} ranks failed: "
                                      f"{proc.stderr.strip().splitlines()[-1]}")
                res = json.loads(Path(f"{tmp}/run/results.json").read_text())
                rate = 1.0 / seconds_per_iteration(Path(f"{tmp}/run"))
            base = base or rate
            rows.append({"workload": name, "ranks": n, "iterations": res["iterations"],
                         "train_seconds": res["train_seconds"], "iterations_per_second": rate,
                         "speedup": rate / base})
            print(f"{name:11s} {n} rank(s): {rate:8.3f} meta-iterations/s "
                  f"({rate / base:.2f}x of 1 rank)", flush=True)
    print(f"cores: {os.cpu_count()}")
    if cfg.out:
        write_results(cfg.out, {"cores": os.cpu_count(), "machine": facts, "rows": rows})


if __name__ == "__main__":
    main()

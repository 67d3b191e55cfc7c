"""The machine a process runs on: the CPUs it may use, and what a benchmark records with its
numbers.

A timing means little without the machine it was taken on and how loaded that machine was, so
each script's JSON carries :func:`machine` (CPU model, usable CPUs, load average, date,
library versions, GPU); :func:`write_results` writes it atomically and never over an earlier
result (a second run with the same ``--out`` gets ``name-2.json``).
"""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path
from typing import Any

import torch

from metarl.runs.io import atomic_write_json, output_file


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine() -> dict[str, Any]:
    """The machine and software a benchmark ran on, and the load when it started."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    facts: dict[str, Any] = {
        "cpu": model,
        "cpus_available": available_cpus(),
        "load_average_start": os.getloadavg(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    for name in ("mujoco", "gymnasium"):
        try:
            facts[name] = __import__(name).__version__
        except ImportError:
            pass
    return facts


def write_results(out: str | os.PathLike[str], result: dict[str, Any]) -> Path:
    """Write ``result`` (with the load average at the end added to its ``machine``) as JSON to
    ``out``, or beside it as ``<stem>-2.json``... if ``out`` exists; returns the path."""
    from metarl.runs.rundir import unique_path

    if isinstance(result.get("machine"), dict):
        result["machine"]["load_average_end"] = os.getloadavg()
    path = unique_path(output_file(out))
    atomic_write_json(path, result)
    print(f"wrote {path}")
    return path

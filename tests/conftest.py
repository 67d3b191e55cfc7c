"""Shared fixtures: the repository root, the data folder, tiny float64 problems."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tests compare numbers bitwise in places; keep torch's thread count fixed."""
    torch.set_num_threads(1)
    yield


def run_script(script: str, *args: str, timeout: float = 600, cwd: Path | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/<script>`` in a fresh interpreter, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO, env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )
    return proc

"""Shared fixtures: the repository root, the data folder, tiny float64 problems."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def finite_difference_grad(fn, params, eps: float = 1e-6) -> torch.Tensor:
    """Central differences of the scalar ``fn(params)`` in every coordinate (float64)."""
    from metarl.core.functional import flatten, unflatten

    flat = flatten(params).detach().clone()
    out = torch.zeros_like(flat)
    for i in range(flat.numel()):
        e = torch.zeros_like(flat)
        e[i] = eps
        out[i] = (fn(unflatten(flat + e, params)) - fn(unflatten(flat - e, params))) / (2 * eps)
    return out


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tests compare numbers bitwise in places; keep torch's thread count fixed."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True)
def _release_run_folders():
    """A test that prepares a run folder in this process gives it up afterwards, as a
    script's ``main`` does (metarl.runs.runlock), so later runs there are not refused."""
    yield
    from metarl.runs.runlock import release_run_dirs

    release_run_dirs()


def script_path(script: str) -> Path:
    """The file of the script named ``script`` (``train_rl.py``), wherever under scripts/ it is
    (the entry points, scripts/benchmarks/, scripts/analysis/, scripts/device/)."""
    found = sorted((REPO / "scripts").rglob(script))
    assert len(found) == 1, f"{script}: {len(found)} scripts of that name under scripts/"
    return found[0]


def run_script(script: str, *args: str, timeout: float = 600, cwd: Path | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the script named ``script`` in a fresh interpreter, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script_path(script)), *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO, env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )
    return proc


@dataclass
class Outcome:
    """What a script call printed and returned (the fields of ``CompletedProcess`` we use)."""

    returncode: int
    stdout: str
    stderr: str


def snapshot(folder: Path) -> dict[Path, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and modification time (to check that a
    command changed nothing)."""
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def call_script(script: str, *args: str) -> Outcome:
    """Run the script named ``script``: its ``main(argv)`` in this process (for fast error-path
    tests; the end-to-end smoke tests use :func:`run_script`, a fresh interpreter)."""
    spec = importlib.util.spec_from_file_location(f"_script_{Path(script).stem}",
                                                  script_path(script))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            module.main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Outcome(code, out.getvalue(), err.getvalue())


TINY = ["--iterations", "2", "--meta-batch", "3", "--episodes-per-task", "2", "--horizon", "12",
        "--hidden-sizes", "16", "16", "--threads", "1", "--checkpoint-every", "1",
        "--eval-every", "1", "--eval-tasks", "2", "--eval-timesteps", "24"]
"""train_rl.py flags for a tiny run: 2 iterations, 3 tasks, 12-step episodes, a checkpoint
after each iteration."""


@pytest.fixture(scope="session")
def nav_run(tmp_path_factory):
    """A tiny navigation training run (train_rl.py --preset navigation with :data:`TINY`),
    shared by the script tests; tests that add files to it write only their own names."""
    out = tmp_path_factory.mktemp("rl") / "nav"
    proc = run_script("train_rl.py", "--preset", "navigation", *TINY, "--out-dir", str(out))
    assert "return after adaptation" in proc.stdout
    return out

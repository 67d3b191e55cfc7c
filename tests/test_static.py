"""The code stays lint-clean and type-checks: ruff and mypy (both in the dev extra) run as
part of the suite, so CI, which runs exactly the README's test command, checks them too."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_ruff_is_clean():
    proc = _run("ruff", "check", "metarl", "envs", "supervised", "scripts", "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean():
    """``mypy`` with pyproject.toml's settings (metarl, envs, supervised, scripts, tests)."""
    proc = _run("mypy")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr

"""One live process per run folder.

Two processes training into the same folder (a ``--resume`` started twice, a second launch
before the first has saved anything) would interleave their checkpoints and metrics rows and
spoil both runs. :func:`lock_run_dir` takes an exclusive, non-blocking ``flock`` on the folder
itself (no lock file is left behind); the operating system drops it when the process ends,
however it ends (a kill included), so a stale lock cannot outlive its run. The scripts'
:func:`metarl.errors.cli_errors` wrapper releases the locks when ``main`` returns, which
matters when ``main`` runs inside a longer-lived process (tests, notebooks).

Where ``fcntl`` is missing (Windows) folders are not locked; where the filesystem refuses
``flock`` the run goes on with a warning. On NFS the lock holds only among the processes of
one machine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from metarl.errors import MetaRLError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_HELD: dict[Path, int] = {}
"""Folders this process has locked, with the descriptor that holds each lock."""


def lock_run_dir(path: Path) -> None:
    """Hold ``path`` (an existing folder) for this process; a clear error if another process
    holds it. Locking a folder this process already holds does nothing."""
    key = path.resolve()
    if fcntl is None or key in _HELD:
        return
    fd = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise MetaRLError(
            f"{path} is in use by another running process (a training run or its resume); "
            "wait for it to end or stop it, or choose another --out-dir (nothing was changed)"
        ) from None
    except OSError as err:  # a filesystem without flock (some network/parallel filesystems)
        os.close(fd)
        print(f"warning: cannot lock {path} ({err.strerror or type(err).__name__}); make sure "
              "no other process trains into it", file=sys.stderr)
        return
    _HELD[key] = fd


def release_run_dirs() -> None:
    """Give up every folder this process holds (the end of a script's ``main``)."""
    while _HELD:
        _, fd = _HELD.popitem()
        os.close(fd)  # closing the descriptor drops its flock

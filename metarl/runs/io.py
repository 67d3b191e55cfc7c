"""Crash-safe file writes, and reading and placing the files users pass in with one clear error.

Every file a run writes that a user could lose (checkpoints, ``results.json``, ``config.json``,
the dataset caches and downloads) goes through :func:`atomic_writer`: the bytes go to a
temporary file of a unique name in the same folder, are flushed and fsync'ed, and the temporary
file is renamed over the target, then the folder itself is fsync'ed. A crash (even SIGKILL)
leaves either the old file or the new one, never a half-written one; the temporary a SIGKILL
orphans is deleted by a later write of the same file once it is a day old. The rows appended to
a log (``metrics.jsonl``) go through :func:`append_whole`: a row is written whole or not at all.

A full disk (or a spent quota) is one clear line, :class:`DiskFullError`, naming the file, its
folder and the space left there, and never a damaged file: what was being replaced keeps its
content and a log keeps its whole rows.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from metarl.errors import MetaRLError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The ``errno`` values of a write that found no room: no space left, or the user's quota."""


def _size(n: int) -> str:
    """``n`` bytes for a person: "0 bytes", "512 bytes", "12.0 KiB", "3.5 GiB"."""
    if n < 1024:
        return f"{n} bytes"
    value, unit = n / 1024, "KiB"
    for larger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.1f} {unit}"


class DiskFullError(MetaRLError):
    """No room on the device (``ENOSPC``, or ``EDQUOT``) to write ``path``.

    One line instead of a traceback, naming the folder and how much space is left there, so
    that the user knows where to make room; ``advice`` says what to do then (the training
    loop gives its own: which checkpoint a ``--resume`` continues from). ``path`` and
    ``reason`` (the system's words, e.g. "No space left on device") are kept for that.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str,
                 advice: str = "free some space and run the command again (with --resume "
                               "for a training run)") -> None:
        self.path = Path(path)
        self.reason = reason
        folder = self.path.parent
        try:
            free = _size(shutil.disk_usage(folder).free)
        except OSError:
            free = "an unknown amount of space"
        super().__init__(f"cannot write {self.path}: {reason.lower()} ({free} free in "
                         f"{folder}); {advice}")


@contextlib.contextmanager
def disk_full_as_error(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an ``OSError`` of a full disk or quota raised while writing ``path`` into
    :class:`DiskFullError`; every other error passes unchanged."""
    try:
        yield
    except OSError as err:
        if err.errno in DISK_FULL_ERRNOS:
            raise DiskFullError(path, err.strerror or os.strerror(err.errno)) from None
        raise


def append_whole(path: str | os.PathLike[str], data: bytes) -> None:
    """Append ``data`` to ``path`` (created if missing) whole or not at all.

    A write that the disk cuts short (a full disk) would leave a half row at the end of a log,
    which every later reader would trip over; the file is instead truncated back to its size
    before the write and the error raised (a full disk as :class:`DiskFullError`). One
    ``O_APPEND`` write per row: nothing is buffered across rows, so a crash loses at most the
    row being written.
    """
    with disk_full_as_error(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            except BaseException:
                with contextlib.suppress(OSError):  # shrinking a file needs no free space
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()

STALE_TEMPORARY_SECONDS = 24 * 3600
"""A writer's temporary file untouched for this long was left by a killed process."""


def _sweep_stale_temporaries(target: Path) -> None:
    """Delete temporaries of ``target`` that a killed writer left behind.

    A SIGKILL between :func:`tempfile.mkstemp` and the rename leaves ``.<name>.<random>.tmp``
    (GB-sized for a dataset cache). Only those of the same target and not modified for
    :data:`STALE_TEMPORARY_SECONDS` go: a live writer's file is modified as it is written, so a
    concurrent writer's temporary is never taken from under it.
    """
    now = time.time()
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        with contextlib.suppress(OSError):  # another sweeper was first, or no permission
            if now - tmp.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                tmp.unlink()


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open ``path`` for writing in binary, atomically (temp file + fsync + rename + dir fsync).

    What is written goes to a temporary file of a unique name in the target's folder; only
    when the ``with`` block ends without an error is it fsync'ed and renamed over ``path``
    (an error deletes it, and ``path`` keeps what it held). The unique name lets two writers
    of the same file (two tests, two users converting one dataset) race safely: each renames
    a complete file, the last one wins. The file gets the permissions a plain
    ``open(path, "w")`` would give (``0o666`` less the umask), not the owner-only ones of the
    temporary file, so a run folder on a shared filesystem stays readable by whoever could
    read it before. Temporaries a killed writer left for this ``path`` more than a day ago are
    deleted first (:func:`_sweep_stale_temporaries`). A full disk raises
    :class:`DiskFullError` once the temporary is deleted (its space is free again).
    """
    target = Path(path)
    with disk_full_as_error(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale_temporaries(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            os.fchmod(fd, _FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_writer`)."""
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON, atomically.

    A value that is not a finite number (the 95 % CI of a single goal, the mean of an empty
    group, a diverged loss) is written as ``null``, as metrics.jsonl does: Python would write
    the non-standard token ``NaN``, which ``jq``, JavaScript and most JSON parsers reject."""
    text = json.dumps(_strict(obj), indent=2, sort_keys=False, allow_nan=False,
                      default=_json_default) + "\n"
    atomic_write_bytes(path, text.encode())


def _strict(obj: Any) -> Any:
    """``obj`` with numpy/torch values made plain and every non-finite float made None."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strict(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):  # numpy and torch scalars and arrays
        return _strict(obj.tolist())
    return obj


def _json_default(obj: Any) -> Any:
    """What JSON cannot hold after :func:`_strict`: paths, as text; anything else is a bug."""
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """The JSON in ``path``, or a :class:`MetaRLError` naming the file, what it should have
    been (``what``, e.g. "a `metarl adapt` results.json") and why it could not be read (a
    folder, a CSV or PNG passed by mistake, a truncated file)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except IsADirectoryError:
        reason = "it is a folder"
    except FileNotFoundError:
        reason = "it does not exist"
    except OSError as err:
        reason = err.strerror or type(err).__name__
    except (UnicodeDecodeError, json.JSONDecodeError):
        reason = "it is not JSON"
    raise MetaRLError(f"cannot read {path} as {what}: {reason}")


def unwritable_reason(folder: str | os.PathLike[str]) -> str | None:
    """Why no file could be created in ``folder`` (e.g. "Read-only file system", "Not a
    directory"), or None when one can. A folder that does not exist yet is judged by the
    nearest one above it that does, and nothing is created: a command checks its outputs
    before its work (an evaluation that runs for an hour and then cannot write its result
    has lost that hour) without leaving a folder behind when it then fails for another reason.
    The test is a real write (a temporary file, deleted at once): permission bits do not tell
    a read-only filesystem or root's rights."""
    where = Path(folder)
    while not os.path.lexists(where) and where.parent != where:
        where = where.parent
    if not where.is_dir():
        return os.strerror(errno.ENOTDIR)
    try:
        fd, probe = tempfile.mkstemp(prefix=".metarl-write-test-", dir=where)
    except OSError as err:
        return err.strerror or type(err).__name__
    os.close(fd)
    os.unlink(probe)
    return None


def output_folder(path: str | os.PathLike[str], flag: str = "--out-dir", *,
                  default: bool = False) -> Path:
    """``path`` as a folder that outputs can be written into (it need not exist yet; nothing
    is created), or a clear error when it is a file or cannot be written: checked before the
    work whose results it will hold. ``default``: the path was not given by the user but is
    where ``flag`` points when left out, and the error says to give ``flag``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MetaRLError(f"{flag} {path} is a file, not a folder; choose another path")
    reason = unwritable_reason(path)
    if reason is not None:
        where = f"{path} (where outputs go without {flag})" if default else f"{flag} {path}"
        raise MetaRLError(f"cannot write to {where} ({reason}); give {flag} a writable folder")
    return path


def output_file(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """``path`` ready to be written as a file (its folder created), or a clear error when it
    names a folder, its folder cannot be made or nothing can be written there (checked
    before the work whose result it will hold)."""
    path = Path(path)
    if path.is_dir():
        raise MetaRLError(f"{flag} {path} is a folder; give a file path, e.g. "
                          f"{path / 'figure.png'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MetaRLError(f"cannot create the folder of {flag} {path} "
                          f"({err.strerror or type(err).__name__}); choose another path") from None
    reason = unwritable_reason(path.parent)
    if reason is not None:
        raise MetaRLError(f"cannot write {flag} {path} ({reason}); choose another path")
    return path

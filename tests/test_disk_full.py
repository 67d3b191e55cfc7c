"""A full disk stops a run with one line, keeps its last good checkpoint and never leaves a half
row in metrics.jsonl (issue 34, item 3).

No test here needs a small filesystem to be mounted: :class:`FullDisk` makes the disk under the
test's folder "fill up" by patching the two primitives that metarl's writers use (``os.write``
for the rows appended to a log, the file object of ``os.fdopen`` for the atomically replaced
files). Like a real filesystem, a write that does not fit is cut short and the next one fails
with ``ENOSPC``; deleting a temporary or truncating a file gives its bytes back. The same
probe on a real 2 MiB tmpfs (as root: ``mount -t tmpfs -o size=2M tmpfs /mnt/f``, fill it,
train into it) gives the same messages.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from metarl.runs.checkpoint import CheckpointDir, load_checkpoint
from metarl.runs.io import DiskFullError, atomic_write_bytes
from metarl.runs.logger import RunLogger

from .conftest import TINY, Outcome, call_script


class FullDisk:
    """The disk under ``root``: unlimited until :attr:`free` is set, then every byte written
    there takes from it. Files elsewhere (pytest's own, the interpreter's) are not metered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.root = str(root)
        self.free: int | None = None
        self.refused = 0
        """How many writes found no room (a test that never filled the disk proves nothing)."""
        real_write, real_fdopen, real_ftruncate = os.write, os.fdopen, os.ftruncate
        disk = self

        def write(fd: int, data: Any) -> int:
            if not disk.metered(fd):
                return real_write(fd, data)
            return real_write(fd, bytes(memoryview(data)[:disk.take(len(data))]))

        def ftruncate(fd: int, length: int) -> None:
            if disk.metered(fd) and disk.free is not None:
                disk.free += max(os.fstat(fd).st_size - length, 0)
            real_ftruncate(fd, length)

        class Metered:
            """A buffered file object whose writes take from the disk: one that does not fit
            writes what does and fails (a buffered write retries the rest), and the caller
            (atomic_writer) deletes the temporary, which frees what it held."""

            def __init__(self, f: Any) -> None:
                self.f, self.written = f, 0

            def write(self, data: Any) -> int:
                try:
                    n = disk.take(len(data))
                    self.written += self.f.write(bytes(memoryview(data)[:n]))
                    if n < len(data):
                        disk.take(len(data) - n)
                except OSError:
                    if disk.free is not None:
                        disk.free += self.written
                    raise
                return n

            def __getattr__(self, name: str) -> Any:
                return getattr(self.f, name)

            def __enter__(self) -> Metered:
                return self

            def __exit__(self, *exc: object) -> None:
                self.f.close()

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            f = real_fdopen(fd, *args, **kwargs)
            return Metered(f) if disk.metered(fd) else f

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "ftruncate", ftruncate)
        monkeypatch.setattr(os, "fdopen", fdopen)

    def metered(self, fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(self.root)
        except OSError:
            return False

    def take(self, n: int) -> int:
        """How many of ``n`` bytes fit (all of them, or what is left); none: ``ENOSPC``."""
        if self.free is None or n == 0:
            return n
        if self.free == 0:
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = min(n, self.free)
        self.free -= n
        return n

    def fill_after_first_checkpoint(self, monkeypatch: pytest.MonkeyPatch, free: int) -> None:
        """Leave ``free`` bytes once a run's first checkpoint is written (once: a resume
        later finds the space freed)."""
        save = CheckpointDir.save
        armed = [True]

        def then_fill(checkpoints: CheckpointDir, iteration: int, state: Any) -> Path:
            path = save(checkpoints, iteration, state)
            if armed.pop() if armed else False:
                self.free = free
            return path

        monkeypatch.setattr(CheckpointDir, "save", then_fill)


@pytest.fixture
def disk(monkeypatch, tmp_path) -> FullDisk:
    return FullDisk(monkeypatch, tmp_path)


def rows(run: Path) -> list[dict]:
    """metrics.jsonl's rows; a half row fails here."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_bytes().splitlines()]


def test_a_full_disk_cuts_no_row_in_half(disk, tmp_path):
    logger = RunLogger(tmp_path)
    logger.log(1, {"loss": 1.0})
    disk.free = 10  # the next row gets 10 bytes in and then finds no room
    with pytest.raises(DiskFullError, match=r"metrics.jsonl: no space left on device \("):
        logger.log(2, {"loss": 0.5})
    logger.close(failing=True)
    assert disk.refused and rows(tmp_path) == [{"step": 1, "loss": 1.0}]


def test_a_full_disk_keeps_the_file_being_replaced(disk, tmp_path):
    target = tmp_path / "results.json"
    atomic_write_bytes(target, b"old")
    disk.free = 100
    with pytest.raises(DiskFullError) as caught:
        atomic_write_bytes(target, b"x" * 1000)
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]
    assert f"cannot write {target}: no space left on device (" in str(caught.value)
    assert f" free in {tmp_path}); free some space" in str(caught.value)


def one_error_line(proc: Outcome) -> str:
    """The run's one line on stderr (the progress bar aside), with no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


SIN = ["--preset", "sinusoid", "--task-batching", "batched",
       "--iterations", "20", "--meta-batch", "2", "--k-shot", "5",
       "--checkpoint-every", "4", "--eval-every", "8", "--eval-tasks", "2", "--test-tasks", "2",
       "--eval-inner-steps", "1"]
RL = [*TINY[:1], "4", *TINY[2:]]


@pytest.mark.parametrize("script, args, free, fails_on, results_written", [
    # a checkpoint (35 KB) does not fit: its temporary goes, results.json (2 KB) still fits
    ("train_supervised.py", [*SIN, "--log-every", "4"], 4000, ".pt: no space", True),
    # the 3rd row after the first checkpoint is cut short, and nothing fits after it
    ("train_supervised.py", [*SIN, "--log-every", "1"], 300, "metrics.jsonl: no space", False),
    # train_rl.py shares the loop: its best.pt (8 KB) does not fit
    ("train_rl.py", RL, 6000, ".pt: no space", True),
], ids=["supervised-checkpoint", "supervised-metrics-row", "rl-checkpoint"])
def test_a_full_disk_stops_training_with_one_line(disk, monkeypatch, tmp_path, script, args,
                                                  free, fails_on, results_written):
    run = tmp_path / "run"
    disk.fill_after_first_checkpoint(monkeypatch, free)
    line = one_error_line(call_script(script, *args, "--out-dir", str(run)))
    assert disk.refused and fails_on in line and " free in " in line, line
    kept = CheckpointDir(run / "checkpoints").list()
    assert kept and f"last good checkpoint, {kept[-1][1]} (iteration {kept[-1][0]})" in line
    for _, path in kept:
        load_checkpoint(path)
    assert not list(run.rglob(".*.tmp"))  # the interrupted file's temporary is gone
    assert rows(run)
    if results_written:
        assert json.loads((run / "results.json").read_text())["finished"] is False
        assert 'results.json says "finished": false' in line
    else:
        assert not (run / "results.json").exists()
        assert "results.json could not be written either" in line
    assert "rerun with --resume" in line

    disk.free = None  # space was freed: the run resumes from that checkpoint and ends
    proc = call_script(script, *args, "--out-dir", str(run), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run / "results.json").read_text())["finished"] is True
    steps = [r["step"] for r in rows(run)]  # the resume cut the rows after its checkpoint
    assert steps == sorted(steps) and steps[-1] == int(args[args.index("--iterations") + 1])

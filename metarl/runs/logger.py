"""Run logging: TensorBoard scalars plus a machine-readable ``metrics.jsonl``.

Every scalar goes to both, so a user can watch a run in TensorBoard and a script can read the
same numbers without TensorBoard. On resume, events after the checkpoint's step are purged
(TensorBoard ``purge_step``) and ``metrics.jsonl`` is cut back to that step, so the logs of a
resumed run read like those of an uninterrupted one (a stop between two logging steps writes
the part of the window done so far as a row of its own, so the resumed run has one more).
A damaged line (a write cut short, stray bytes) costs that line alone: readers skip it, and the
resume that rewrites the file keeps the file as it was beside it. Rows are appended whole or not
at all (:func:`metarl.runs.io.append_whole`), and a full disk is one
:class:`metarl.runs.io.DiskFullError` from either writer, never a traceback of TensorBoard's
writer thread.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from metarl.runs.io import (
    DISK_FULL_ERRNOS,
    DiskFullError,
    append_whole,
    atomic_write_bytes,
    disk_full_as_error,
)
from metarl.runs.rundir import unique_path


def say(message: str) -> None:
    """Print a status line to stderr without breaking the progress bar."""
    tqdm.write(message, file=sys.stderr)


def parse_metrics(path: Path) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """The good rows of the metrics file ``path``, and ``(line number, what is wrong)`` for
    each damaged line: one that is not UTF-8 text or not JSON (a write cut short by a full
    disk or a crash), or not a row with a whole-number ``step``. The rows after a damaged
    line are good rows like any other."""
    rows: list[dict[str, Any]] = []
    damaged: list[tuple[int, str]] = []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            damaged.append((number, "not UTF-8 text"))
            continue
        except json.JSONDecodeError:
            damaged.append((number, "not JSON"))
            continue
        step = record.get("step") if isinstance(record, dict) else None
        if not isinstance(record, dict):
            damaged.append((number, "not a row of metrics"))
        elif not isinstance(step, int) or isinstance(step, bool):
            damaged.append((number, f"its step {json.dumps(step)[:20]} is not a whole number"))
        else:
            rows.append(record)
    return rows, damaged


def describe_damage(path: Path, damaged: list[tuple[int, str]]) -> str:
    """One phrase naming the damaged lines of ``path``: the first and how many more."""
    number, why = damaged[0]
    more = f" (and {len(damaged) - 1} more line(s))" if len(damaged) > 1 else ""
    return f"{path} line {number} is damaged ({why}){more}"


def read_metrics(run_dir: Path, *, warn: bool = False) -> list[dict[str, Any]]:
    """The rows of ``<run_dir>/metrics.jsonl`` (none if it does not exist), without opening
    anything for writing: for plots, benchmarks and other readers next to a live run.

    Damaged lines (:func:`parse_metrics`) are skipped, the rows after them kept; with
    ``warn`` they are reported on stderr."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    records, damaged = parse_metrics(path)
    if damaged and warn:
        print(f"warning: {describe_damage(path, damaged)}; skipped", file=sys.stderr)
    return records


def _quiet_full_disk_in_event_writer() -> None:
    """Make :data:`threading.excepthook` leave out TensorBoard's event-writer thread dying of a
    full disk (the hook in place handles everything else; installed once).

    The thread would print a traceback of its own, while the same error reaches the training
    loop from the writer's next call and becomes one line there."""
    previous = threading.excepthook
    if getattr(previous, "quiet_full_disk", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if (type(args.thread).__name__ == "_AsyncWriterThread"
                and isinstance(args.exc_value, OSError)
                and args.exc_value.errno in DISK_FULL_ERRNOS):
            return
        previous(args)

    hook.quiet_full_disk = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class RunLogger:
    """Scalars to TensorBoard (``<run>/tb``) and JSON lines (``<run>/metrics.jsonl``)."""

    def __init__(self, run_dir: Path, *, start_step: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self.jsonl = run_dir / "metrics.jsonl"
        self._writer: Any = None
        if not enabled:
            return
        self._truncate_jsonl(start_step)
        from torch.utils.tensorboard import SummaryWriter

        _quiet_full_disk_in_event_writer()

        # TensorBoard hides events at steps >= purge_step; the checkpoint's own step was
        # logged before the checkpoint was written, so it is kept (purge from the next one).
        self._tb = run_dir / "tb"
        self._writer = SummaryWriter(
            log_dir=str(self._tb), purge_step=start_step + 1 if start_step > 0 else None
        )

    def _truncate_jsonl(self, start_step: int) -> None:
        """Cut metrics.jsonl back to ``start_step``, atomically (a stop signal during the
        rewrite cannot lose the history). Damaged lines (:func:`parse_metrics`) do not block
        the resume and cost no other row: they are left out of the rewritten file, and the
        file as it was is first kept beside it as ``metrics-damaged.jsonl``, with a warning."""
        if not self.jsonl.exists():
            return
        rows, damaged = parse_metrics(self.jsonl)
        if damaged:
            aside = unique_path(self.jsonl.with_name("metrics-damaged.jsonl"))
            atomic_write_bytes(aside, self.jsonl.read_bytes())
            print(f"warning: {describe_damage(self.jsonl, damaged)}; left out of the log (the "
                  f"rows around it are kept), and the file as it was is kept as {aside.name}",
                  file=sys.stderr)
        kept = [r for r in rows if r["step"] <= start_step]
        atomic_write_bytes(self.jsonl, "".join(json.dumps(r) + "\n" for r in kept).encode())

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Record ``scalars`` (tag -> value) at ``step``; a full disk raises
        :class:`DiskFullError` and leaves metrics.jsonl with whole rows only."""
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in scalars.items()}
        with disk_full_as_error(self._tb):  # the writer thread's error surfaces here
            for tag, value in clean.items():
                self._writer.add_scalar(tag, value, step)
        record = {"step": step, **{k: (v if math.isfinite(v) else None) for k, v in clean.items()}}
        append_whole(self.jsonl, (json.dumps(record) + "\n").encode())

    def read(self) -> list[dict[str, Any]]:
        """All records logged so far (for training-curve plots)."""
        return read_metrics(self.jsonl.parent)

    def close(self, *, failing: bool = False) -> None:
        """Flush and close the TensorBoard writer (a full disk: :class:`DiskFullError`).

        ``failing``: an error is already on its way out (a full disk, a stop); closing then
        raises nothing of its own over it, and the events TensorBoard could not write are lost
        (metrics.jsonl holds every row up to the error)."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            with disk_full_as_error(self._tb):
                try:
                    writer.flush()
                finally:
                    writer.close()
        except (OSError, DiskFullError):
            if not failing:
                raise

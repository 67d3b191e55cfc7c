"""Run logging: TensorBoard scalars plus a machine-readable ``metrics.jsonl``.

Every scalar goes to both, so a user can watch a run in TensorBoard and a script can read the
same numbers without TensorBoard. On resume, events after the checkpoint's step are purged
(TensorBoard ``purge_step``) and ``metrics.jsonl`` is cut back to that step, so the logs of a
resumed run read like those of an uninterrupted one (a stop between two logging steps writes
the part of the window done so far as a row of its own, so the resumed run has one more).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from metarl.io import atomic_write_bytes


def read_metrics(run_dir: Path, *, warn: bool = False) -> list[dict[str, Any]]:
    """The rows of ``<run_dir>/metrics.jsonl`` (none if it does not exist), without opening
    anything for writing: for plots, benchmarks and other readers next to a live run.

    Reading stops at the first line that does not parse (a write cut short by a full disk or
    a crash), which with ``warn`` is reported on stderr."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            if warn:
                print(f"warning: {path} line {number} is damaged; the metrics from there on "
                      "are dropped (TensorBoard keeps them)", file=sys.stderr)
            break
        records.append(record)
    return records


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

        # TensorBoard hides events at steps >= purge_step; the checkpoint's own step was
        # logged before the checkpoint was written, so it is kept (purge from the next one).
        self._writer = SummaryWriter(
            log_dir=str(run_dir / "tb"), purge_step=start_step + 1 if start_step > 0 else None
        )

    def _truncate_jsonl(self, start_step: int) -> None:
        """Cut metrics.jsonl back to ``start_step``, atomically (a stop signal during the
        rewrite cannot lose the history). A line that does not parse (a write cut short by a
        full disk or a crash) ends what is kept, with a warning, instead of blocking resume."""
        if not self.jsonl.exists():
            return
        kept = [r for r in read_metrics(self.jsonl.parent, warn=True)
                if r.get("step", 0) <= start_step]
        atomic_write_bytes(self.jsonl, "".join(json.dumps(r) + "\n" for r in kept).encode())

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Record ``scalars`` (tag -> value) at ``step``."""
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in scalars.items()}
        for tag, value in clean.items():
            self._writer.add_scalar(tag, value, step)
        record = {"step": step, **{k: (v if math.isfinite(v) else None) for k, v in clean.items()}}
        with self.jsonl.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """All records logged so far (for training-curve plots)."""
        return read_metrics(self.jsonl.parent)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None

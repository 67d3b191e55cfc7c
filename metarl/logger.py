"""Run logging: TensorBoard scalars plus a machine-readable ``metrics.jsonl``.

Every scalar goes to both, so a user can watch a run in TensorBoard and a script can read the
same numbers without TensorBoard. On resume, events after the checkpoint's step are purged
(TensorBoard ``purge_step``) and ``metrics.jsonl`` is cut back to that step, so the logs of a
resumed run read exactly like those of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


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

        self._writer = SummaryWriter(
            log_dir=str(run_dir / "tb"), purge_step=start_step if start_step > 0 else None
        )

    def _truncate_jsonl(self, start_step: int) -> None:
        if not self.jsonl.exists():
            return
        kept = [
            line
            for line in self.jsonl.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= start_step
        ]
        self.jsonl.write_text("".join(line + "\n" for line in kept))

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
        if not self.jsonl.exists():
            return []
        return [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None

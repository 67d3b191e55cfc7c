"""Checksummed, atomic checkpoints and the rotation of a run's checkpoint files.

File format (version 1)::

    b"METARL-CKPT 1\n"  + one JSON line {"sha256": ..., "size": ...} + payload

where the payload is ``torch.save`` of a plain dict (tensors, numbers, strings, lists, dicts;
loaded with ``weights_only=True``, so a checkpoint can never execute code). The header's
checksum and size catch truncated or corrupted files with a clear error. Files are written
with :func:`metarl.io.atomic_write_bytes`, so an interrupted save never replaces a good
checkpoint with a partial one; :class:`CheckpointDir` keeps the newest ``keep`` of them.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metarl.errors import CheckpointError
from metarl.io import atomic_write_bytes

MAGIC = b"METARL-CKPT 1\n"
_NAME = re.compile(r"^ckpt_(\d{8})\.pt$")

SUPERVISED = "metarl-supervised"
MAML_TRPO = "metarl-maml-trpo"
POLICY = "metarl-policy"
ADAPTED = "metarl-adapted-policies"
KINDS = {
    SUPERVISED: "a supervised meta-training checkpoint (train_supervised.py)",
    MAML_TRPO: "a MAML-TRPO checkpoint (train_rl.py)",
    POLICY: "a policy file (baselines_rl.py)",
    ADAPTED: "adapted policies (adapt_rl.py)",
}
"""The ``kind`` each script stamps into what it saves, and how errors name it."""


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """Serialise ``state`` with a checksum header and write it atomically."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    payload = buffer.getvalue()
    header = json.dumps({"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)})
    atomic_write_bytes(path, MAGIC + header.encode() + b"\n" + payload)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint; any damage raises :class:`CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; pass a .pt file in "
                              "it (or the run folder itself with --run-dir)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    raw = path.read_bytes()
    if not raw.startswith(MAGIC):
        raise CheckpointError(
            f"{path} is not a metarl checkpoint (no METARL-CKPT header); "
            "pass a file written by a metarl training script"
        )
    try:
        header_end = raw.index(b"\n", len(MAGIC))
        header = json.loads(raw[len(MAGIC) : header_end])
        payload = raw[header_end + 1 :]
    except ValueError as err:
        raise CheckpointError(f"checkpoint {path} has a damaged header; it is corrupt") from err
    if len(payload) != header.get("size"):
        raise CheckpointError(
            f"checkpoint {path} is truncated ({len(payload)} of {header.get('size')} bytes); "
            "use an earlier checkpoint of its run"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CheckpointError(
            f"checkpoint {path} is corrupt (checksum mismatch); use an earlier checkpoint of its "
            "run"
        )
    return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)


def check_kind(state: Mapping[str, Any], path: Path, kind: str) -> None:
    """Raise a clear :class:`CheckpointError` when the file at ``path`` is not of ``kind``
    (a checkpoint of another script: its tensors would load into the wrong model)."""
    found = state.get("kind")
    if found != kind:
        other = KINDS.get(str(found), f"a file of kind {found!r}")
        raise CheckpointError(f"{path} is not {KINDS[kind]} but {other}; "
                              "use it with the script that wrote it")


def model_signature(module: nn.Module) -> dict[str, list[int]]:
    """Names and shapes of a module's state, to tell checkpoints of other models apart."""
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def check_signature(saved: Mapping[str, list[int]], module: nn.Module, path: Path) -> None:
    """Raise a clear error if a checkpoint's model does not match ``module``."""
    mine = model_signature(module)
    if dict(saved) != mine:
        missing = sorted(set(mine) - set(saved))
        extra = sorted(set(saved) - set(mine))
        shapes = sorted(k for k in set(mine) & set(saved) if list(saved[k]) != mine[k])
        detail = "; ".join(
            part
            for part in (
                f"missing {missing[:3]}" if missing else "",
                f"unexpected {extra[:3]}" if extra else "",
                f"different shapes for {shapes[:3]}" if shapes else "",
            )
            if part
        )
        raise CheckpointError(
            f"checkpoint {path} holds a different model ({detail}); "
            "use a checkpoint written with the same family and architecture"
        )


class CheckpointDir:
    """The ``checkpoints/`` folder of a run: numbered files, newest ``keep`` retained."""

    def __init__(self, root: str | Path, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.root = Path(root)
        self.keep = keep

    def path_for(self, iteration: int) -> Path:
        return self.root / f"ckpt_{iteration:08d}.pt"

    def list(self) -> list[tuple[int, Path]]:
        """``(iteration, path)`` of every checkpoint file, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.iterdir():
            m = _NAME.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def save(self, iteration: int, state: Mapping[str, Any]) -> Path:
        """Write a checkpoint for ``iteration`` and delete all but the newest ``keep`` of those
        up to it. Files of later iterations (a damaged checkpoint the run resumed before, left
        in place by :meth:`load_latest`) are not counted: they would otherwise push out the
        checkpoint just written, and are replaced when the run reaches them."""
        path = self.path_for(iteration)
        save_checkpoint(path, state)
        for _, old in self.upto(iteration)[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def upto(self, iteration: int) -> builtins.list[tuple[int, Path]]:
        """``(iteration, path)`` of the checkpoints of iterations up to ``iteration``."""
        return [(it, p) for it, p in self.list() if it <= iteration]

    def set_aside_newer_best(self, iteration: int) -> str | None:
        """On resume from ``iteration``: a ``best.pt`` of a later iteration belongs to the part
        of the run that was lost (a hard kill after best.pt was written but before the next
        checkpoint); the resumed run would compare its scores with the older best and could
        replace it. It is renamed ``best-lost-iteration-<N>.pt`` (kept, not deleted); returns
        the warning to show, or None."""
        from metarl.rundir import unique_path

        best = self.root / "best.pt"
        if not best.is_file():
            return None
        try:
            lost = int(load_checkpoint(best)["iteration"])
        except (CheckpointError, KeyError, TypeError, ValueError):
            return None  # a damaged best.pt is reported where it is read
        if lost <= iteration:
            return None
        aside = unique_path(self.root / f"best-lost-iteration-{lost}.pt")
        best.rename(aside)
        return (f"{best} (iteration {lost}) is newer than the checkpoint resumed from (iteration "
                f"{iteration}): the run was killed before it saved that part; moved to "
                f"{aside.name}, and the model selection continues from iteration {iteration}")

    def remove_stale_temporaries(self) -> None:
        """Delete temp files a killed save left behind (never a finished checkpoint)."""
        if self.root.is_dir():
            for p in self.root.glob(".*.tmp"):
                p.unlink(missing_ok=True)

    def load_latest(
        self, map_location: str | torch.device = "cpu", *, clean: bool = False
    ) -> tuple[Path, dict[str, Any], builtins.list[str]] | None:
        """The newest checkpoint that verifies, plus warnings about newer damaged ones.

        Damaged files are left in place (never deleted), so nothing is lost; the warnings
        name them. Returns ``None`` when the folder holds no checkpoint at all; raises
        :class:`CheckpointError` when it holds some but none verifies. ``clean``: first delete
        the temporaries of a killed save -- only for the process that owns the folder (a
        resuming trainer, which holds its lock); a reader such as an evaluation next to a live
        run would delete the file the trainer is writing.
        """
        if clean:
            self.remove_stale_temporaries()
        entries = self.list()
        if not entries:
            return None
        warnings: list[str] = []
        for _, path in reversed(entries):
            try:
                return path, load_checkpoint(path, map_location), warnings
            except CheckpointError as err:
                warnings.append(f"skipping damaged checkpoint: {err}")
        raise CheckpointError(
            f"every checkpoint in {self.root} is damaged ({len(entries)} files); "
            "start a new run in another --out-dir"
        )

"""Checksummed, atomic checkpoints and the rotation of a run's checkpoint files.

File format (version 1)::

    b"METARL-CKPT 1\n"  + one JSON line {"sha256": ..., "size": ...} + payload

where the payload is ``torch.save`` of a plain dict (tensors, numbers, strings, lists, dicts;
loaded with ``weights_only=True``, so a checkpoint can never execute code). The header's
checksum and size catch truncated or corrupted files with a clear error. Files are written
with :func:`metarl.runs.io.atomic_write_bytes`, so an interrupted save never replaces a good
checkpoint with a partial one; :class:`CheckpointDir` keeps the newest ``keep`` of them.

A run's checkpoints carry its run id (:mod:`metarl.runs.rundir`), and a numbered file must hold the
iteration its name says: a file that fails either check (copied in from another run, or
renamed) is treated like a damaged one, skipped with a warning and never deleted.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metarl.errors import CheckpointError
from metarl.runs.io import atomic_write_bytes

MAGIC = b"METARL-CKPT 1\n"
_NAME = re.compile(r"^ckpt_(\d{8})\.pt$")

SUPERVISED = "metarl-supervised"
MAML_TRPO = "metarl-maml-trpo"
POLICY = "metarl-policy"
ADAPTED = "metarl-adapted-policies"
KINDS = {
    SUPERVISED: "a supervised meta-training checkpoint (metarl train supervised)",
    MAML_TRPO: "a MAML-TRPO checkpoint (metarl train rl)",
    POLICY: "a policy file (metarl baselines)",
    ADAPTED: "adapted policies (metarl adapt)",
}
"""The ``kind`` each command stamps into what it saves, and how errors name it."""


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
            "pass a file written by a metarl training command"
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
    (a checkpoint of another command: its tensors would load into the wrong model)."""
    found = state.get("kind")
    if found != kind:
        other = KINDS.get(str(found), f"a file of kind {found!r}")
        raise CheckpointError(f"{path} is not {KINDS[kind]} but {other}; "
                              "use it with the command that wrote it")


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
        self._verdicts: dict[Path, str | None] = {}
        """Files this process has written or read: why each is not a checkpoint of this run
        (damaged, another run's, another iteration's), or None when it is one."""

    @property
    def run_id(self) -> str | None:
        """The id of the run whose ``checkpoints/`` this is, from the run folder's config.json
        (None outside a run folder, or for a run from before run ids: then every checkpoint
        counts as this run's, as it did before)."""
        from metarl.runs.rundir import run_id_of

        return run_id_of(self.root.parent)

    def not_ours(self, path: Path, state: Mapping[str, Any]) -> str | None:
        """Why ``state``, read from ``path``, is not this run's checkpoint, or None if it is:
        a numbered file must hold the iteration its name says, and a run id recorded in both
        the file and the run folder must agree (one missing on either side: unknown, accepted,
        as for checkpoints and runs from before run ids)."""
        named = _NAME.match(path.name)
        found = state.get("iteration")
        if named and found != int(named.group(1)):
            return (f"{path} holds iteration {found}, not the {int(named.group(1))} its name "
                    "says (a file renamed or copied in)")
        ours, theirs = self.run_id, state.get("run_id")
        if ours is not None and theirs is not None and ours != theirs:
            return (f"{path} was written by another run (run id {theirs}; this run's is {ours}, "
                    "in its config.json)")
        return None

    def _verdict(self, path: Path) -> str | None:
        """:meth:`not_ours` for a file on disk, its damage included (read once, then known)."""
        if path not in self._verdicts:
            try:
                self._verdicts[path] = self.not_ours(path, load_checkpoint(path))
            except CheckpointError as err:
                self._verdicts[path] = str(err)
        return self._verdicts[path]

    def stamp(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """``state`` with this run's id, as every checkpoint and best.pt of the run holds it."""
        return {**state, "run_id": self.run_id}

    def save_best(self, state: Mapping[str, Any]) -> Path:
        """Write ``best.pt`` (the model selected so far) with this run's id."""
        path = self.root / "best.pt"
        save_checkpoint(path, self.stamp(state))
        self._verdicts[path] = None
        return path

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
        """Write a checkpoint for ``iteration`` (stamped with the run id) and delete all but
        the newest ``keep`` of this run's checkpoints up to it.

        Files of later iterations (a damaged checkpoint the run resumed before, left in place
        by :meth:`load_latest`) are not counted: they would otherwise push out the checkpoint
        just written. A file that is not this run's (damaged, another run's) is never deleted:
        rotation passes it by, and when the run reaches its iteration it is renamed
        ``ckpt_<N>-set-aside.pt`` (kept, with a warning) before this run's is written."""
        path = self.path_for(iteration)
        if path.is_file() and self._verdict(path) is not None:
            from metarl.runs.logger import say
            from metarl.runs.rundir import unique_path

            aside = unique_path(path.with_name(f"{path.stem}-set-aside{path.suffix}"))
            path.rename(aside)
            say(f"warning: {path.name} is not this run's checkpoint "
                f"({self._verdicts.pop(path)}); moved to {aside.name} before writing this "
                "run's own")
        save_checkpoint(path, self.stamp(state))
        self._verdicts[path] = None
        for _, old in self.mine_upto(iteration)[: -self.keep]:
            old.unlink(missing_ok=True)
            del self._verdicts[old]
        return path

    def upto(self, iteration: int) -> builtins.list[tuple[int, Path]]:
        """``(iteration, path)`` of the checkpoints of iterations up to ``iteration``."""
        return [(it, p) for it, p in self.list() if it <= iteration]

    def mine_upto(self, iteration: int) -> builtins.list[tuple[int, Path]]:
        """:meth:`upto` without the files that are not this run's checkpoints (rotation keeps
        those, so they may stay below the newest)."""
        return [(it, p) for it, p in self.upto(iteration) if self._verdict(p) is None]

    def set_aside_newer_best(self, iteration: int, skipped: Sequence[str] = ()) -> str | None:
        """On resume from ``iteration``: a ``best.pt`` of a later iteration belongs to the part
        of the run that was lost (a hard kill after best.pt was written but before the next
        checkpoint, or newer checkpoints that are damaged or not this run's: ``skipped``, the
        warnings :meth:`load_latest` gave about them); the resumed run would compare its scores
        with the older best and could replace it. A best.pt of another run would be reported
        as this run's model. Either is renamed (kept, not deleted):
        ``best-lost-iteration-<N>.pt`` or ``best-of-another-run.pt``; returns the warning to
        show, naming the cause, or None."""
        from metarl.runs.rundir import unique_path

        best = self.root / "best.pt"
        if not best.is_file():
            return None
        try:
            state = load_checkpoint(best)
            lost = int(state["iteration"])
        except (CheckpointError, KeyError, TypeError, ValueError):
            return None  # a damaged best.pt is reported where it is read
        foreign = self.not_ours(best, state)
        if foreign is not None:
            aside = unique_path(self.root / "best-of-another-run.pt")
            best.rename(aside)
            return (f"{foreign}; moved to {aside.name}, and the model selection continues "
                    f"from this run's checkpoint of iteration {iteration}")
        if lost <= iteration:
            return None
        aside = unique_path(self.root / f"best-lost-iteration-{lost}.pt")
        best.rename(aside)
        cause = (f"the {len(skipped)} newer checkpoint(s) could not be resumed (damaged or not "
                 "this run's: see the warnings above)" if skipped
                 else "the run was killed before it saved that part")
        return (f"{best} (iteration {lost}) is newer than the checkpoint resumed from (iteration "
                f"{iteration}): {cause}; moved to {aside.name}, and the model selection "
                f"continues from iteration {iteration}")

    def remove_stale_temporaries(self) -> None:
        """Delete temp files a killed save left behind (never a finished checkpoint)."""
        if self.root.is_dir():
            for p in self.root.glob(".*.tmp"):
                p.unlink(missing_ok=True)

    def load_latest(
        self, map_location: str | torch.device = "cpu", *, clean: bool = False
    ) -> tuple[Path, dict[str, Any], builtins.list[str]] | None:
        """The newest checkpoint of this run that verifies, plus warnings about newer ones that
        are damaged or not this run's (:meth:`not_ours`).

        Those files are left in place (never deleted), so nothing is lost; the warnings
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
                state = load_checkpoint(path, map_location)
            except CheckpointError as err:
                self._verdicts[path] = str(err)
                warnings.append(f"skipping damaged checkpoint: {err}")
                continue
            self._verdicts[path] = reason = self.not_ours(path, state)
            if reason is None:
                return path, state, warnings
            warnings.append(f"skipping checkpoint that is not this run's: {reason}; it is left "
                            "in place")
        raise CheckpointError(
            f"every checkpoint in {self.root} is damaged or not this run's ({len(entries)} "
            "files); start a new run in another --out-dir"
        )

"""Checkpoints: atomic, checksummed, rotated; damage is detected and nothing good is lost."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metarl.checkpoint import (
    CheckpointDir,
    check_signature,
    load_checkpoint,
    model_signature,
    save_checkpoint,
)
from metarl.errors import CheckpointError


def test_round_trip(tmp_path):
    state = {"iteration": 3, "w": torch.arange(5.0), "nested": {"a": [1, 2]}, "rng": {"s": 2**90}}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["iteration"] == 3 and torch.equal(back["w"], state["w"])
    assert back["nested"] == {"a": [1, 2]} and back["rng"]["s"] == 2**90
    assert not list(tmp_path.glob(".*tmp")), "temporary files must not be left behind"


def test_truncated_file_is_detected(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.randn(100)})
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_flipped_byte_is_detected(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.randn(100)})
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)


def test_foreign_and_missing_files(tmp_path):
    torch.save({"w": 1}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a metarl checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rotation_and_fallback_to_previous_good(tmp_path):
    ckpts = CheckpointDir(tmp_path, keep=2)
    for it in (10, 20, 30):
        ckpts.save(it, {"iteration": it})
    assert [it for it, _ in ckpts.list()] == [20, 30]
    newest = ckpts.path_for(30)
    newest.write_bytes(newest.read_bytes()[:-3])
    path, state, warnings = ckpts.load_latest()
    assert state["iteration"] == 20 and path == ckpts.path_for(20)
    assert warnings and "truncated" in warnings[0]
    assert newest.exists(), "a damaged checkpoint is reported, never deleted"


def test_all_damaged_is_an_error(tmp_path):
    ckpts = CheckpointDir(tmp_path, keep=2)
    ckpts.save(1, {"iteration": 1})
    ckpts.path_for(1).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="every checkpoint"):
        ckpts.load_latest()
    assert CheckpointDir(tmp_path / "none").load_latest() is None


def test_signature_mismatch_names_the_difference(tmp_path):
    a, b = nn.Linear(3, 4), nn.Linear(3, 5)
    check_signature(model_signature(a), nn.Linear(3, 4), tmp_path)
    with pytest.raises(CheckpointError, match="different model.*different shapes"):
        check_signature(model_signature(a), b, tmp_path)


def test_atomic_writes_get_the_umask_permissions(tmp_path):
    """Not the owner-only mode of the temporary file they are written through."""
    import os

    from metarl.io import atomic_write_json

    umask = os.umask(0)
    os.umask(umask)
    atomic_write_json(tmp_path / "results.json", {"a": 1})
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o666 & ~umask

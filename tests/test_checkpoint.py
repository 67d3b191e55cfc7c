"""Checkpoints: atomic, checksummed, rotated; damage is detected and nothing good is lost."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metarl.errors import CheckpointError
from metarl.runs.checkpoint import (
    MAML_TRPO,
    CheckpointDir,
    check_signature,
    load_checkpoint,
    model_signature,
    save_checkpoint,
)


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


def test_a_damaged_newer_checkpoint_does_not_push_out_the_new_ones(tmp_path):
    """Resumed before a damaged newer file, the run's new checkpoints are kept (rotation
    counts only files up to the iteration saved); the damaged one stays, and is set aside
    (kept under another name) when the run reaches its iteration."""
    ckpts = CheckpointDir(tmp_path, keep=1)
    ckpts.save(10, {"iteration": 10})
    ckpts.save(20, {"iteration": 20})  # keep=1 removed 10
    ckpts.save(10, {"iteration": 10})  # the state a resume would write again after 10
    ckpts.path_for(20).write_bytes(b"garbage")
    path, state, warnings = ckpts.load_latest()
    assert state["iteration"] == 10 and warnings
    written = ckpts.save(11, {"iteration": 11})
    assert written.is_file() and [it for it, _ in ckpts.list()] == [11, 20]
    assert ckpts.upto(11) == [(11, written)]
    ckpts.save(20, {"iteration": 20})  # reaching it sets the damaged file aside
    assert ckpts.load_latest()[1]["iteration"] == 20 and [it for it, _ in ckpts.list()] == [20]
    assert (tmp_path / "ckpt_00000020-set-aside.pt").read_bytes() == b"garbage"


def test_readers_leave_a_live_saves_temporary_alone(tmp_path):
    """Only the resuming trainer (``clean=True``) deletes a killed save's temporaries; an
    evaluation reading the folder of a running trainer must not delete the file it writes."""
    ckpts = CheckpointDir(tmp_path)
    ckpts.save(1, {"iteration": 1})
    temporary = tmp_path / ".ckpt_00000002.pt.x1y2.tmp"
    temporary.write_bytes(b"half a checkpoint")
    assert ckpts.load_latest()[1]["iteration"] == 1 and temporary.exists()
    assert ckpts.load_latest(clean=True)[1]["iteration"] == 1 and not temporary.exists()


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

    from metarl.runs.io import atomic_write_json

    umask = os.umask(0)
    os.umask(umask)
    atomic_write_json(tmp_path / "results.json", {"a": 1})
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_an_atomic_writer_that_fails_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    from metarl.runs.io import atomic_writer

    target = tmp_path / "cache.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="interrupted"), atomic_writer(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]


def test_interleaved_writers_of_one_file_do_not_share_a_temporary(tmp_path):
    """Two processes converting one dataset at once (or two test workers) each write their own
    temporary file: the target ends as one complete version, never a mix of both."""
    import numpy as np

    from metarl.runs.io import atomic_writer
    from metarl.supervised.datafiles import write_npz

    target = tmp_path / "set.npz"
    with atomic_writer(target) as first, atomic_writer(target) as second:
        first.write(b"A" * 1000)
        second.write(b"B" * 10)
        first.write(b"A" * 1000)
    assert target.read_bytes() == b"A" * 2000  # the writer that finishes last wins
    assert sorted(tmp_path.iterdir()) == [target]
    arrays = {"images": np.arange(12, dtype=np.uint8).reshape(3, 4), "label": np.arange(3)}
    write_npz(target, arrays, compress=True)
    with np.load(target) as data:
        assert list(data.files) == ["images", "label"]
        np.testing.assert_array_equal(data["images"], arrays["images"])


def test_a_killed_writers_temporary_is_swept_once_stale(tmp_path):
    """A SIGKILL leaves ``.<name>.<random>.tmp``; the next write of that file deletes it once
    it is more than a day old, and leaves a live writer's (recent) temporary and other files'
    temporaries alone."""
    import os
    import time

    from metarl.runs.io import STALE_TEMPORARY_SECONDS, atomic_write_bytes

    target = tmp_path / "set[1].npz"  # a name with glob characters
    old = tmp_path / ".set[1].npz.k1ll3d00.tmp"
    recent = tmp_path / ".set[1].npz.l1v3wr1t.tmp"
    other = tmp_path / ".other.npz.k1ll3d00.tmp"
    for path in (old, recent, other):
        path.write_bytes(b"partial")
    stale = time.time() - STALE_TEMPORARY_SECONDS - 60
    for path in (old, other):
        os.utime(path, (stale, stale))
    atomic_write_bytes(target, b"complete")
    assert target.read_bytes() == b"complete"
    assert not old.exists() and recent.exists() and other.exists()


def test_results_json_is_strict_json_with_null_for_undefined_values(tmp_path):
    """A single goal's CI is NaN; the file must still parse as standard JSON (no NaN token),
    with numpy and torch values written as plain numbers and lists."""
    import json
    import math

    import numpy as np

    from metarl.core.stats import mean_ci95
    from metarl.runs.io import atomic_write_json

    mean, ci = mean_ci95([3.5])
    atomic_write_json(tmp_path / "results.json", {
        "returns_mean": [mean], "returns_ci95": [ci], "inf": -math.inf,
        "numpy": np.float32("nan"), "array": np.array([1.0, np.nan]),
        "tensor": torch.tensor([2.0]), "count": np.int64(4)})
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(token: str) -> float:
        raise AssertionError(f"non-standard JSON token {token}")

    assert json.loads(text, parse_constant=refuse) == {
        "returns_mean": [3.5], "returns_ci95": [None], "inf": None, "numpy": None,
        "array": [1.0, None], "tensor": [2.0], "count": 4}


def test_a_best_pt_from_the_lost_part_of_a_run_is_set_aside_on_resume(tmp_path, capsys):
    """Killed after best.pt (iteration 20) but before checkpoint 20: the resume from 10 moves
    that best.pt aside (kept) so the resumed selection starts from iteration 10's."""
    from metarl.runs.loop import load_latest_state

    ckpts = CheckpointDir(tmp_path)
    ckpts.save(10, {"kind": MAML_TRPO, "iteration": 10})
    save_checkpoint(tmp_path / "best.pt", {"kind": MAML_TRPO, "iteration": 20})
    found = load_latest_state(ckpts, MAML_TRPO, "cpu")  # a reader changes nothing
    assert found is not None and (tmp_path / "best.pt").is_file()
    found = load_latest_state(ckpts, MAML_TRPO, "cpu", resuming=True)
    assert found is not None and found[1]["iteration"] == 10
    assert not (tmp_path / "best.pt").exists()
    assert load_checkpoint(tmp_path / "best-lost-iteration-20.pt")["iteration"] == 20
    assert "newer than the checkpoint resumed from (iteration 10)" in capsys.readouterr().err
    save_checkpoint(tmp_path / "best.pt", {"kind": MAML_TRPO, "iteration": 10})
    load_latest_state(ckpts, MAML_TRPO, "cpu", resuming=True)  # not newer: kept
    assert (tmp_path / "best.pt").is_file()


def _run_folder(path, run_id: str | None, keep: int = 1) -> CheckpointDir:
    """A run folder whose config.json records ``run_id`` (None: a run from before run ids)."""
    import json

    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({} if run_id is None else {"run_id": run_id}))
    return CheckpointDir(path / "checkpoints", keep=keep)


def test_checkpoints_of_another_run_or_iteration_are_skipped_and_never_deleted(tmp_path, capsys):
    """A checkpoint copied in from another run, or one whose iteration is not the one its
    name says, is treated as damaged: skipped with a warning, never resumed, never rotated
    away; when the run reaches its iteration it is set aside under another name."""
    mine = _run_folder(tmp_path / "mine", "aaaa")
    theirs = _run_folder(tmp_path / "theirs", "bbbb", keep=2)
    mine.save(10, {"iteration": 10})
    theirs.save(5, {"iteration": 5})
    theirs.save(30, {"iteration": 30})
    assert load_checkpoint(mine.path_for(10))["run_id"] == "aaaa"  # every checkpoint says whose
    older, newer = theirs.path_for(5).read_bytes(), theirs.path_for(30).read_bytes()
    mine.path_for(5).write_bytes(older)  # another run's, older than the run's own
    mine.path_for(30).write_bytes(newer)  # another run's, newer
    mine.path_for(20).write_bytes(mine.path_for(10).read_bytes())  # the run's, misnamed
    fresh = CheckpointDir(mine.root, keep=1)  # as a resuming process sees the folder
    path, state, warnings = fresh.load_latest()
    assert path == mine.path_for(10) and state["iteration"] == 10
    assert "written by another run (run id bbbb; this run's is aaaa" in warnings[0]
    assert "holds iteration 10, not the 20 its name says" in warnings[1]
    fresh.save(11, {"iteration": 11})  # keep=1 rotates the run's own 10 away, not 5
    fresh.save(20, {"iteration": 20})
    assert "ckpt_00000020.pt is not this run's checkpoint" in capsys.readouterr().err
    assert [it for it, _ in fresh.list()] == [5, 20, 30]
    assert load_checkpoint(mine.root / "ckpt_00000020-set-aside.pt")["iteration"] == 10
    assert mine.path_for(5).read_bytes() == older and mine.path_for(30).read_bytes() == newer
    lone = _run_folder(tmp_path / "lone", "cccc")  # nothing but another run's checkpoint
    lone.root.mkdir()
    lone.path_for(5).write_bytes(older)
    with pytest.raises(CheckpointError, match="every checkpoint .* is damaged or not this run's"):
        lone.load_latest()


def test_a_run_or_checkpoint_without_an_id_is_accepted(tmp_path):
    """Runs and checkpoints from before run ids resume as they did: an unknown id is not a
    different one."""
    old_run = _run_folder(tmp_path / "old", None)
    old_run.save(3, {"iteration": 3})
    assert load_checkpoint(old_run.path_for(3))["run_id"] is None
    new_run = _run_folder(tmp_path / "new", "aaaa")
    save_checkpoint(new_run.path_for(4), {"iteration": 4})  # an older version's checkpoint
    assert CheckpointDir(old_run.root).load_latest()[1]["iteration"] == 3
    assert CheckpointDir(new_run.root).load_latest()[1]["iteration"] == 4


def test_the_set_aside_best_pt_names_its_cause(tmp_path, capsys):
    """A best.pt newer than the checkpoint resumed from: "killed" only when no newer
    checkpoint was skipped; after damaged ones the warning says so."""
    from metarl.runs.loop import load_latest_state

    ckpts = CheckpointDir(tmp_path)
    ckpts.save(10, {"kind": MAML_TRPO, "iteration": 10})
    ckpts.path_for(20).write_bytes(b"garbage")
    save_checkpoint(tmp_path / "best.pt", {"kind": MAML_TRPO, "iteration": 20})
    load_latest_state(ckpts, MAML_TRPO, "cpu", resuming=True)
    err = capsys.readouterr().err
    assert "the 1 newer checkpoint(s) could not be resumed (damaged" in err
    assert "killed" not in err and (tmp_path / "best-lost-iteration-20.pt").is_file()


def test_a_best_pt_of_another_run_is_set_aside_on_resume(tmp_path, capsys):
    from metarl.runs.loop import load_latest_state

    mine = _run_folder(tmp_path / "mine", "aaaa")
    mine.save(10, {"kind": MAML_TRPO, "iteration": 10})
    save_checkpoint(mine.root / "best.pt", {"kind": MAML_TRPO, "iteration": 4, "run_id": "b"})
    load_latest_state(mine, MAML_TRPO, "cpu", resuming=True)
    assert "written by another run" in capsys.readouterr().err
    assert not (mine.root / "best.pt").exists()
    assert load_checkpoint(mine.root / "best-of-another-run.pt")["run_id"] == "b"

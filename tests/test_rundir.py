"""Run folders never clobber a user's earlier run or foreign files."""

from __future__ import annotations

import json

import pytest

from metarl.errors import MetaRLError
from metarl.runs.rundir import prepare_run_dir, unique_path


def started(path, config):
    """A run folder as a script leaves it after its first logged iteration."""
    run = prepare_run_dir(path, config, resume=False)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    return run


def test_new_run_writes_config(tmp_path):
    run = prepare_run_dir(tmp_path / "r", {"algo": "maml", "iterations": 5}, resume=False)
    assert json.loads((run / "config.json").read_text())["algo"] == "maml"


def test_existing_run_needs_resume(tmp_path):
    started(tmp_path, {"algo": "maml"})
    with pytest.raises(MetaRLError, match="already holds a run; pass --resume"):
        prepare_run_dir(tmp_path, {"algo": "maml"}, resume=False)


def test_resume_with_other_settings_is_refused(tmp_path):
    started(tmp_path, {"algo": "maml", "iterations": 5})
    prepare_run_dir(tmp_path, {"algo": "maml", "iterations": 9}, resume=True)  # more iterations ok
    with pytest.raises(MetaRLError, match="different settings for algo"):
        prepare_run_dir(tmp_path, {"algo": "reptile", "iterations": 9}, resume=True)


def test_resume_names_nested_settings_and_accepts_settings_added_later(tmp_path):
    old = {"algo": "maml", "trpo": {"max_kl": 0.01}}  # written before trust_region existed
    started(tmp_path, old)
    new = {"algo": "maml", "trpo": {"max_kl": 0.01, "trust_region": "adapted"}}
    added = {"trpo.trust_region": "adapted"}
    prepare_run_dir(tmp_path, new, resume=True, added=added)  # the default it ran with: ok
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["trpo"]["trust_region"] == "adapted"
    (tmp_path / "config.json").write_text(json.dumps(old))
    with pytest.raises(MetaRLError, match=r"different settings for trpo\.trust_region;"):
        prepare_run_dir(tmp_path, {"algo": "maml", "trpo": {"max_kl": 0.01,
                                                            "trust_region": "adapted+initial"}},
                        resume=True, added=added)
    with pytest.raises(MetaRLError, match=r"different settings for trpo\.max_kl;"):
        prepare_run_dir(tmp_path, {"algo": "maml", "trpo": {"max_kl": 0.02}}, resume=True)


def test_foreign_folder_and_nothing_to_resume(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(MetaRLError, match="not empty and holds no metarl run"):
        prepare_run_dir(tmp_path, {"algo": "maml"}, resume=False)
    assert (tmp_path / "thesis.tex").read_text() == "precious"
    with pytest.raises(MetaRLError, match="nothing to resume"):
        prepare_run_dir(tmp_path / "empty", {"algo": "maml"}, resume=True)


def test_run_that_saved_nothing_does_not_block_the_rerun(tmp_path, capsys):
    """A script that failed after writing config.json (setup, a missing package) left only
    settings behind; the corrected rerun, even with other settings, starts afresh."""
    prepare_run_dir(tmp_path, {"algo": "maml", "iterations": 5}, resume=False)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "tb").mkdir()
    (tmp_path / "metrics.jsonl").write_text("")
    prepare_run_dir(tmp_path, {"algo": "reptile", "iterations": 5}, resume=False)
    assert "starting it afresh" in capsys.readouterr().out
    assert json.loads((tmp_path / "config.json").read_text())["algo"] == "reptile"
    prepare_run_dir(tmp_path, {"algo": "fomaml", "iterations": 5}, resume=True)  # scripts' --resume
    assert json.loads((tmp_path / "config.json").read_text())["algo"] == "fomaml"


@pytest.mark.parametrize("kept", ["checkpoint", "metrics", "results", "other"])
def test_run_with_anything_saved_still_needs_resume(tmp_path, kept):
    prepare_run_dir(tmp_path, {"algo": "maml"}, resume=False)
    if kept == "checkpoint":
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "best.pt").write_bytes(b"weights")
    elif kept == "metrics":
        (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    elif kept == "results":
        (tmp_path / "results.json").write_text("{}")
    else:
        (tmp_path / "policy.pt").write_bytes(b"weights")
    with pytest.raises(MetaRLError, match="already holds a run; pass --resume"):
        prepare_run_dir(tmp_path, {"algo": "maml"}, resume=False)
    with pytest.raises(MetaRLError, match="different settings for algo"):
        prepare_run_dir(tmp_path, {"algo": "reptile"}, resume=True)
    assert json.loads((tmp_path / "config.json").read_text())["algo"] == "maml"


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MetaRLError, match="cannot write to output directory"):
        prepare_run_dir(blocker / "sub", {"algo": "maml"}, resume=False)
    with pytest.raises(MetaRLError, match="is a file"):
        prepare_run_dir(blocker, {"algo": "maml"}, resume=False)


def test_unique_path(tmp_path):
    p = tmp_path / "eval.json"
    assert unique_path(p) == p
    p.write_text("{}")
    assert unique_path(p).name == "eval-2.json"


def test_supervised_resume_ignores_the_data_of_a_run_that_saved_nothing(tmp_path):
    """train_supervised.py --resume checks the data digest of the stored config; a run that
    saved nothing has no data to be faithful to."""
    from supervised.runner import _stored_config

    prepare_run_dir(tmp_path, {"algo": "maml", "data_digest": "abc"}, resume=False)
    assert _stored_config(tmp_path) == {}
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    assert _stored_config(tmp_path)["data_digest"] == "abc"


def test_a_folder_in_use_by_another_process_is_refused(tmp_path):
    """Two processes in one run folder (a --resume started twice) would interleave their
    checkpoints and metrics; the second is refused until the first has ended."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from metarl.runs.rundir import prepare_run_dir\n"
         f"prepare_run_dir({str(tmp_path)!r}, {{'algo': 'maml'}}, resume=False)\n"
         "print('holding', flush=True)\n"
         "time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        for resume in (False, True):  # before the first checkpoint, and a second --resume
            with pytest.raises(MetaRLError, match="in use by another running process"):
                prepare_run_dir(tmp_path, {"algo": "maml"}, resume=resume)
    finally:
        holder.kill()
        holder.wait()
    prepare_run_dir(tmp_path, {"algo": "maml"}, resume=True)  # the lock died with its process
    prepare_run_dir(tmp_path, {"algo": "maml"}, resume=True)  # held here already: no-op


def test_a_script_gives_its_folder_up_when_main_ends(tmp_path):
    """cli_errors releases the lock: a second main() in the same process (a notebook, the
    tests' call_script) may use the folder, and so may another process."""
    import subprocess
    import sys

    from metarl.runs.cli import cli_errors
    from metarl.runs.runlock import _HELD

    @cli_errors
    def main() -> None:
        prepare_run_dir(tmp_path, {"algo": "maml"}, resume=True)

    (tmp_path / "config.json").write_text('{"algo": "maml"}')
    main()
    assert not _HELD
    code = ("from metarl.runs.rundir import prepare_run_dir\n"
            f"prepare_run_dir({str(tmp_path)!r}, {{'algo': 'maml'}}, resume=True)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_filesystem_without_flock_warns_and_goes_on(tmp_path, monkeypatch, capsys):
    """Some network filesystems refuse flock (ENOLCK/ENOSYS): the run is not blocked, the user
    is told that the folder is not protected."""
    import errno

    from metarl.runs import runlock

    def refuse(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runlock.fcntl, "flock", refuse)
    try:
        prepare_run_dir(tmp_path / "run", {"algo": "maml"}, resume=False)
        assert "warning: cannot lock" in capsys.readouterr().err
        assert (tmp_path / "run" / "config.json").is_file()
        assert not list((tmp_path / "run").glob(".metarl-write-test*"))
    finally:
        runlock.release_run_dirs()


def test_a_finished_run_resumed_to_train_further_is_marked_unfinished(tmp_path):
    """From the start of the new leg (its best.pt and checkpoints change from then on), not
    only at its end, once the resume's checks have passed (:func:`start_resumed_leg`); a
    --resume that has nothing to train leaves results.json as it is."""
    from metarl.runs.distributed import DistContext
    from metarl.runs.rundir import open_run_dir, start_resumed_leg

    config = {"algo": "maml"}
    prepare_run_dir(tmp_path, config, resume=False)
    stored = {"iterations": 4, "finished": True, "test": {"loss_mean": [1.0]}}
    (tmp_path / "results.json").write_text(json.dumps(stored))
    assert open_run_dir(DistContext(), tmp_path, config, iterations=4, resume=True) == stored
    assert json.loads((tmp_path / "results.json").read_text()) == stored
    assert open_run_dir(DistContext(), tmp_path, config, iterations=8, resume=True) is None
    assert json.loads((tmp_path / "results.json").read_text()) == stored  # checks only so far
    start_resumed_leg(DistContext(), tmp_path, config)
    assert json.loads((tmp_path / "results.json").read_text()) == {**stored, "finished": False}

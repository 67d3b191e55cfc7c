"""RunLogger on resume: metrics.jsonl and TensorBoard both keep exactly the steps up to the
checkpoint, a damaged metrics line does not block the resume."""

from __future__ import annotations

import json

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl.runs.logger import RunLogger, read_metrics


def _log(run, start, steps, scale):
    logger = RunLogger(run, start_step=start)
    for step in steps:
        logger.log(step, {"train/loss": scale * step})
    logger.close()


def _tensorboard(run) -> dict[int, float]:
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    return {e.step: e.value for e in events.Scalars("train/loss")}


def test_resume_keeps_the_checkpoint_step_and_replaces_the_rest(tmp_path):
    _log(tmp_path, 0, range(1, 6), 1.0)  # a run that logged 1..5, then died after checkpoint 3
    _log(tmp_path, 3, range(4, 7), 10.0)  # the resumed run logs 4..6 again
    expected = {1: 1.0, 2: 2.0, 3: 3.0, 4: 40.0, 5: 50.0, 6: 60.0}
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r["step"]: r["train/loss"] for r in records} == expected and len(records) == 6
    assert _tensorboard(tmp_path) == expected  # step 3 (logged before its checkpoint) is kept


def test_a_damaged_line_is_dropped_with_a_warning(tmp_path, capsys):
    _log(tmp_path, 0, range(1, 4), 1.0)
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "train/lo')  # a write cut short
    before = (tmp_path / "metrics.jsonl").read_bytes()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    assert (tmp_path / "metrics.jsonl").read_bytes() == before  # a reader changes nothing
    assert capsys.readouterr().err == ""  # and warns only when asked
    _log(tmp_path, 3, [4], 10.0)
    assert "line 4 is damaged" in capsys.readouterr().err
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]


def test_reading_a_folder_without_metrics_opens_nothing(tmp_path):
    assert read_metrics(tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_damage_in_the_middle_costs_that_line_alone(tmp_path, capsys):
    """A damaged line mid-file (not JSON, not UTF-8, a step that is no number): readers skip
    it and keep the rows after it; the resume that rewrites the file keeps the file as it was
    beside it (metrics-damaged.jsonl), so no history is lost, and says so."""
    _log(tmp_path, 0, range(1, 7), 1.0)
    path = tmp_path / "metrics.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = b'{"step": 2, "train/lo\n'  # cut short
    lines[2] = b'\xff\xfe{"step": 3}\n'  # not UTF-8
    lines[3] = b'{"step": "abc"}\n'  # no step number
    damaged = b"".join(lines)
    path.write_bytes(damaged)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 5, 6]
    _log(tmp_path, 5, [6], 10.0)  # a resume from the checkpoint of step 5
    err = capsys.readouterr().err
    assert "line 2 is damaged (not JSON) (and 2 more line(s))" in err
    assert "kept as metrics-damaged.jsonl" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "metrics-damaged.jsonl").read_bytes() == damaged
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["step"], r["train/loss"]) for r in rows] == [(1, 1.0), (5, 5.0), (6, 60.0)]

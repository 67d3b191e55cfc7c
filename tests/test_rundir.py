"""Run folders never clobber a user's earlier run or foreign files."""

from __future__ import annotations

import json

import pytest

from metarl.errors import MetaRLError
from metarl.rundir import prepare_run_dir, unique_path


def test_new_run_writes_config(tmp_path):
    run = prepare_run_dir(tmp_path / "r", {"algo": "maml", "iterations": 5}, resume=False)
    assert json.loads((run / "config.json").read_text())["algo"] == "maml"


def test_existing_run_needs_resume(tmp_path):
    prepare_run_dir(tmp_path, {"algo": "maml"}, resume=False)
    with pytest.raises(MetaRLError, match="already holds a run; pass --resume"):
        prepare_run_dir(tmp_path, {"algo": "maml"}, resume=False)


def test_resume_with_other_settings_is_refused(tmp_path):
    prepare_run_dir(tmp_path, {"algo": "maml", "iterations": 5}, resume=False)
    prepare_run_dir(tmp_path, {"algo": "maml", "iterations": 9}, resume=True)  # more iterations ok
    with pytest.raises(MetaRLError, match="different settings for algo"):
        prepare_run_dir(tmp_path, {"algo": "reptile", "iterations": 9}, resume=True)


def test_resume_names_nested_settings_and_accepts_settings_added_later(tmp_path):
    old = {"algo": "maml", "trpo": {"max_kl": 0.01}}  # written before trust_region existed
    prepare_run_dir(tmp_path, old, resume=False)
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

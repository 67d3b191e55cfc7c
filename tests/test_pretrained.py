"""The pretrained policies that ship in metarl/pretrained: each loads as a policy, its
evaluation is of that checkpoint, and the README's table says what its evaluation.json says."""

from __future__ import annotations

import json
import re

import pytest
import torch

from metarl.errors import MetaRLError
from metarl.rl.policies import GaussianMLPPolicy
from metarl.rl.pretrained import PRETRAINED, ROOT, pretrained_run
from metarl.runs.checkpoint import load_checkpoint


@pytest.mark.parametrize("name", PRETRAINED)
def test_each_pretrained_run_loads_as_a_policy(name):
    folder = pretrained_run(name)
    config = json.loads((folder / "config.json").read_text())
    state = load_checkpoint(folder / "checkpoints" / "best.pt")
    spec = state["policy_spec"]
    policy = GaussianMLPPolicy(spec["obs_dim"], spec["act_dim"], tuple(spec["hidden_sizes"]),
                               spec["activation"])
    policy.load_state_dict(state["policy"])
    assert list(spec["hidden_sizes"]) == list(config["hidden_sizes"])
    mean = policy(torch.zeros(1, spec["obs_dim"]))[0]
    assert mean.shape == (1, spec["act_dim"]) and torch.isfinite(mean).all()
    evaluation = json.loads((folder / "evaluation.json").read_text())
    assert evaluation["env"] == config["env"]
    assert evaluation["policy"]["iteration"] == state["iteration"]  # of this very checkpoint
    assert len(evaluation["returns_per_task"]) == evaluation["num_tasks"] == 40


def test_the_readme_table_is_the_evaluations():
    """Every row of metarl/pretrained/README.md: the numbers of that run's evaluation.json."""
    rows = {m.group(1): m.group(2) for m in
            re.finditer(r"^\| `([a-z0-9-]+)` \|.*\| ([^|]+) \|$",
                        (ROOT / "README.md").read_text(), re.M)}
    assert set(rows) == set(PRETRAINED)
    for name, cell in rows.items():
        evaluation = json.loads((ROOT / name / "evaluation.json").read_text())
        expected = " → ".join(f"{m:.2f} ± {c:.2f}" for m, c in
                              zip(evaluation["returns_mean"], evaluation["returns_ci95"]))
        assert cell.strip() == expected, name


def test_an_unknown_name_is_one_clear_line():
    with pytest.raises(MetaRLError, match="no pretrained policy named 'cheetah'; choose one of "
                       "halfcheetah-vel"):
        pretrained_run("cheetah")

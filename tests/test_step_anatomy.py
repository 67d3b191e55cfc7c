"""The quadratic KL models of metarl/rl/analysis.py against exact KLs in float64, their
closed-form special cases, and the replay script against the run it replays."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from metarl.core.functional import expand, unflatten
from metarl.errors import MetaRLError
from metarl.rl.analysis import quadratic_kls, step_anatomy
from metarl.rl.config import RLConfig, apply_rl_preset, config_from_identity
from metarl.rl.maml_trpo import MAMLTRPO
from metarl.rl.policies import GaussianDist

from .conftest import call_script, run_script
from .test_maml_trpo import synthetic

MODELS = ("kl_adapted", "kl_adapted_no_jacobian", "kl_initial_query", "kl_initial_support")


def exact_kls(learner: MAMLTRPO, support, query, proposal, step, eps: float) -> dict:
    """The four KLs of the module docstring after moving θ by ``eps · step``, computed
    directly: the adapted policies re-adapted from the moved θ, the adapted parameters moved
    themselves, and the pre-update policy on either batch's observations."""
    theta = {k: v.detach() for k, v in proposal.params.items()}
    d = unflatten(step, theta)
    moved = {k: theta[k] + eps * d[k] for k in theta}
    first = learner.first_batch(support)
    n = first.mask.shape[0]
    with torch.no_grad():
        on_query = GaussianDist(*learner.policy.dist(expand(theta, n), query.observations))
        return {
            "kl_adapted": learner.kl(learner.adapt(moved, support, first_order=False),
                                     proposal.old, query).item(),
            "kl_adapted_no_jacobian": learner.kl(
                {k: v.detach() + eps * d[k] for k, v in proposal.adapted.items()},
                proposal.old, query).item(),
            "kl_initial_query": learner.initial_kl(moved, on_query, query).item(),
            "kl_initial_support": learner.initial_kl(moved, proposal.old_initial,
                                                     first).item(),
        }


@pytest.mark.parametrize("steps,fresh", [(1, False), (2, False), (2, True)])
def test_quadratic_models_match_exact_kls(steps, fresh):
    policy, support, query, second = synthetic(batches=3)
    learner = MAMLTRPO(policy, inner_steps=steps, inner_lr=[0.4, 0.2][:steps])
    if fresh:  # step 2 on its own batch (--inner-batches fresh)
        support = [support, second]
    proposal = learner.propose(support, query)
    random_step = torch.randn(proposal.full_step.shape, dtype=torch.float64,
                              generator=torch.Generator().manual_seed(1))
    random_step *= proposal.full_step.norm() / random_step.norm()
    for step in (proposal.full_step.detach(), random_step):
        model = quadratic_kls(learner, support, query, proposal, step)
        eps = 1e-3
        coarse = exact_kls(learner, support, query, proposal, step, eps)
        fine = exact_kls(learner, support, query, proposal, step, eps / 2)
        for key in MODELS:
            # KL(ε) = a ε² + b ε³ + ...: Richardson extrapolation of KL/ε² removes the ε term
            a = 2 * fine[key] / (eps / 2) ** 2 - coarse[key] / eps**2
            assert a == pytest.approx(model[key], rel=1e-5), key
        gains = model["jacobian_gain"] * model["parameter_gain"] * model["observation_gain"]
        assert gains == pytest.approx(model["total_gain"], rel=1e-12)


def test_trust_region_step_has_the_constraint_at_delta():
    policy, support, query = synthetic()
    learner = MAMLTRPO(policy, inner_lr=0.4)
    model = quadratic_kls(learner, support, query, learner.propose(support, query))
    # ½ sᵀ(F + λI)s = δ exactly; damping 1e-5 on a step of norm ~1 shifts it by ≈ 1e-5 δ
    assert model["kl_adapted"] == pytest.approx(learner.trpo.max_kl, rel=1e-3)


def test_special_cases_have_unit_gains():
    policy, support, query = synthetic()
    # first order: θ' = θ − α g with g held constant, so J = I
    fo = MAMLTRPO(policy, inner_lr=0.4, first_order=True)
    first = quadratic_kls(fo, support, query, fo.propose(support, query))
    assert first["jacobian_gain"] == pytest.approx(1.0, rel=1e-10)
    # no inner step and one batch for both roles: every policy is π_θ on the same states
    none = MAMLTRPO(policy, inner_steps=0)
    same = quadratic_kls(none, support, support, none.propose(support, support))
    for key in ("jacobian_gain", "parameter_gain", "observation_gain", "total_gain"):
        assert same[key] == pytest.approx(1.0, rel=1e-10), key


def test_step_anatomy_reports_step_parts_and_leaves_the_policy_alone():
    policy, support, query = synthetic()
    learner = MAMLTRPO(policy, inner_lr=0.4)
    before = {k: v.detach().clone() for k, v in policy.named_parameters()}
    out = step_anatomy(learner, support, query)
    assert all(torch.equal(before[k], v) for k, v in policy.named_parameters())
    norms = torch.tensor([out[f"step_norm/{k}"] for k in before], dtype=torch.float64)
    full = learner.propose(support, query).full_step
    assert norms.norm().item() == pytest.approx(full.norm().item(), rel=1e-12)
    assert -1.0 <= out["cos_first_order"] <= 1.0


def test_config_round_trips_through_config_json():
    cfg = apply_rl_preset(RLConfig(), "navigation-code")
    cfg = replace(cfg, seed=7, hidden_sizes=(16, 8), trpo=replace(cfg.trpo, max_kl=0.02))
    identity = json.loads(json.dumps(cfg.identity()))
    assert config_from_identity(identity) == cfg
    del identity["trpo"]["trust_region"]  # a run started before the setting existed
    del identity["inner_batches"], identity["later_inner_lr"]
    old = config_from_identity(identity)
    assert old.trpo.trust_region == "adapted" and old.inner_batches == "shared"
    assert old.later_inner_lr is None
    with pytest.raises(MetaRLError, match="does not know: warp"):
        config_from_identity({**identity, "warp": 9})


def test_script_replays_the_run_exactly(nav_run, tmp_path):
    logged = {r["step"]: r for r in map(json.loads,
                                        (nav_run / "metrics.jsonl").read_text().splitlines())
              if "trpo/kl_initial" in r}
    # iteration 2 from checkpoint 1, iterations 1-2 from the start
    for first, out in ((2, tmp_path / "from-ckpt"), (1, tmp_path / "from-start")):
        proc = run_script("step_anatomy.py", "--run-dir", str(nav_run), "--first", str(first),
                          "--last", "2", "--out-dir", str(out), "--threads", "1")
        assert ("replaying from the start" in proc.stdout) == (first == 1)
        rows = json.loads((out / "results.json").read_text())["iterations"]
        assert [r["iteration"] for r in rows] == list(range(first, 3))
        for r in rows:
            for key in ("trpo/kl_initial", "trpo/kl", "returns/before_adaptation",
                        "returns/after_adaptation"):
                assert r[key] == logged[r["iteration"]][key], key
            assert r["kl_adapted"] == pytest.approx(0.01, rel=1e-2)
        assert (out / "anatomy.png").stat().st_size > 0
    # never overwrites: a second call with the same --out-dir writes beside it
    run_script("step_anatomy.py", "--run-dir", str(nav_run), "--first", "2",
               "--out-dir", str(tmp_path / "from-ckpt"), "--threads", "1")
    assert (tmp_path / "from-ckpt-2" / "results.json").is_file()


def test_script_bad_input(tmp_path, nav_run):
    proc = call_script("step_anatomy.py", "--run-dir", str(tmp_path))
    assert proc.returncode == 2 and "no config.json" in proc.stderr, proc.stderr
    proc = call_script("step_anatomy.py", "--run-dir", str(nav_run), "--first", "3",
                       "--last", "2")
    assert proc.returncode == 2 and "--first <= --last" in proc.stderr, proc.stderr
    assert not (nav_run / "anatomy-3-2").exists()
    if not torch.cuda.is_available():
        proc = call_script("step_anatomy.py", "--run-dir", str(nav_run), "--device", "cuda")
        assert proc.returncode == 2 and "no CUDA GPU is available" in proc.stderr, proc.stderr

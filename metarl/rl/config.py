"""Configuration and paper presets of MAML-TRPO runs (parsed by tyro in the scripts)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from metarl.errors import MetaRLError, require, require_positive_number, require_seed
from metarl.rl.maml_trpo import Mode, TRPOSettings
from metarl.rl.sampler import Batch
from metarl.runs.cli import check_choices, presets_as_text, with_preset

EnvId = Literal[
    "metarl/Navigation2D-v0",
    "metarl/HalfCheetahVel-v0", "metarl/HalfCheetahDir-v0",
    "metarl/AntVel-v0", "metarl/AntDir-v0", "metarl/AntPos-v0",
    "metarl/HalfCheetahVel-v1", "metarl/HalfCheetahDir-v1",
    "metarl/AntVel-v1", "metarl/AntDir-v1", "metarl/AntPos-v1",
]
"""The ids :mod:`metarl.envs` registers (its ``ENV_IDS``), named here so that reading this
module does not import MuJoCo."""
InnerBatches = Literal["shared", "fresh"]
InnerLoss = Literal["reinforce", "lvc"]
Activation = Literal["relu", "tanh"]
Selection = Literal["validation", "train-return", "last"]
RLPreset = Literal["navigation", "navigation-code", "halfcheetah-vel", "halfcheetah-dir",
                   "ant-vel", "ant-dir", "ant-pos"]
"""The names of :data:`RL_PRESETS`."""

BATCHES: tuple[str, ...] = get_args(Batch)


@dataclass
class RLConfig:
    """Meta-train a Gaussian MLP policy with MAML-TRPO on a metarl task distribution."""

    env: EnvId = "metarl/Navigation2D-v0"
    """Registered task distribution (the v1 locomotion ids have the paper's time step)."""
    iterations: int = 500
    """Meta-iterations (outer TRPO steps)."""
    meta_batch: int = 20
    """Tasks per meta-iteration (the paper: 20 for navigation, 40 for locomotion)."""
    episodes_per_task: int = 20
    """Episodes sampled per task before and after adaptation (the paper: 20); with
    --batch steps, the budget is this many horizons of environment steps per task."""
    batch: Batch = "steps"
    """How a task's batch is counted: steps (episodes_per_task × horizon environment steps,
    episodes that end early followed by new ones -- the original code's sampler, whose batch
    size counts steps) or episodes (exactly episodes_per_task episodes)."""
    horizon: int | None = None
    """Steps per episode (default: the env's, 100 for navigation, 200 for locomotion)."""
    inner_steps: int = 1
    """REINFORCE steps in the inner loop during meta-training."""
    inner_lr: float = 0.1
    """Inner step size α (the paper: 0.1; the original navigation scripts use up to 0.5)."""
    inner_batches: InnerBatches = "shared"
    """Where inner steps 2, 3, ... of meta-training get their episodes: shared (every step on
    the one support batch sampled by θ) or fresh (step k on a new batch sampled by the policy
    after k - 1 steps: the original code's num_grad_updates > 1, and how metarl adapt
    evaluates); the meta-gradient flows through every step either way."""
    later_inner_lr: float | None = None
    """Step size of inner steps 2, 3, ... in meta-training (default: --inner-lr, as the
    original code; the test protocol takes α/2)."""
    first_order: bool = False
    """First-order MAML: ignore second derivatives through the inner step."""
    inner_loss: InnerLoss = "reinforce"
    """Inner estimator: reinforce (the paper's) or lvc (ProMP's low-variance curvature)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE λ (1.0: returns minus the linear baseline, as the original code)."""
    normalize_advantages: bool = True
    """Normalise advantages per task to zero mean and unit variance."""
    trpo: TRPOSettings = field(default_factory=TRPOSettings)
    """The TRPO outer update (trust region, conjugate gradient, line search)."""
    hidden_sizes: tuple[int, ...] = (100, 100)
    """Hidden layer sizes of the policy MLP (the paper: two layers of 100)."""
    activation: Activation = "relu"
    """Hidden activation: relu (the paper) or tanh."""
    init_std: float = 1.0
    """Initial standard deviation of the Gaussian policy."""
    mode: Mode = "stacked"
    """How the inner update is batched over tasks: stacked, vmap or loop (same results)."""
    device: str = "cpu"
    """Where the policy, adaptation and TRPO run (cpu or cuda); physics is always on CPU."""
    threads: int | None = None
    """Physics threads for the batched environments (default: all CPUs)."""
    torch_threads: int | None = None
    """torch intra-op threads for adaptation and TRPO (default: torch's choice)."""
    seed: int = 0
    """Seed of the policy initialisation, task draws and rollouts."""
    select_best: Selection = "validation"
    """Which policy metarl adapt evaluates from this run, kept as checkpoints/best.pt. The paper
    (appendix A.2) trained "for up to 500 meta-iterations" and used "the model with the best
    average return during training": train-return does that (the post-adaptation return of
    each iteration's 20-40 random tasks -- noisy); validation (default) scores the policy every
    --eval-every iterations on --eval-tasks fixed validation goals, adapted --eval-steps times
    with the test protocol, by the mean return after steps 1..eval-steps; last keeps none."""
    eval_every: int = 10
    """Iterations between validations (select_best validation)."""
    eval_tasks: int = 40
    """Validation goals, drawn with --eval-seed (the test goals of metarl adapt use --seed 1)."""
    eval_steps: int = 2
    """Adaptation steps of the validation (step sizes α, then α/2)."""
    eval_timesteps: int = 4000
    """Environment steps per validation goal and adaptation step (the paper's test budget)."""
    eval_seed: int = 20170309
    """Seed of the validation goals and rollouts."""
    checkpoint_every: int = 10
    """Write a checkpoint every this many iterations (and at the end, and on SIGINT/SIGTERM)."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep."""
    max_nan_steps: int = 10
    """Stop after this many consecutive non-finite TRPO steps (the last good checkpoint stays)."""
    out_dir: Path = Path("runs/nav-maml")
    """Run folder: config, checkpoints, TensorBoard events, results.json, plots."""
    resume: bool = False
    """Continue the run in --out-dir from its newest valid checkpoint."""
    preset: RLPreset | None = None
    """Named settings to start from (--preset NAME --help shows the values it sets);
    explicit flags override."""

    def validate(self) -> None:
        """Raise one clear :class:`MetaRLError` for the first invalid setting."""
        check_choices(self)
        t = self.trpo
        require(t.cg_iterations >= 1 and t.ls_steps >= 1,
                "--trpo.cg-iterations and --trpo.ls-steps must be at least 1")
        require(t.max_kl > 0, f"--trpo.max-kl must be positive, got {t.max_kl}")
        require(t.cg_damping >= 0, f"--trpo.cg-damping must be >= 0, got {t.cg_damping}")
        require(0 < t.ls_ratio < 1, f"--trpo.ls-ratio must be in (0, 1), got {t.ls_ratio}")
        require(self.torch_threads is None or self.torch_threads >= 1,
                "--torch-threads must be at least 1")
        for name in ("iterations", "meta_batch", "episodes_per_task", "checkpoint_every",
                     "keep_checkpoints", "max_nan_steps", "eval_every", "eval_tasks",
                     "eval_steps", "eval_timesteps"):
            value = getattr(self, name)
            require(value >= 1, f"--{name.replace('_', '-')} must be at least 1, got {value}")
        require(self.inner_steps >= 0, f"--inner-steps must be >= 0, got {self.inner_steps}")
        require(self.horizon is None or self.horizon >= 1,
                f"--horizon must be at least 1, got {self.horizon}")
        for name in ("inner_lr", "init_std", "later_inner_lr"):
            require_positive_number(getattr(self, name), f"--{name.replace('_', '-')}")
        for name in ("seed", "eval_seed"):
            require_seed(getattr(self, name), f"--{name.replace('_', '-')}")
        require(0 < self.gamma <= 1, f"--gamma must be in (0, 1], got {self.gamma}")
        require(0 <= self.gae_lambda <= 1, f"--gae-lambda must be in [0, 1], got {self.gae_lambda}")
        require(all(h >= 1 for h in self.hidden_sizes), "--hidden-sizes must be positive")
        require(self.device in ("cpu", "cuda") or self.device.startswith("cuda:"),
                f"unknown --device {self.device!r}; choose cpu or cuda")
        if self.device.startswith("cuda"):
            require(torch.cuda.is_available(),
                    "--device cuda was asked for but no CUDA GPU is available; use --device cpu")

    def inner_lrs(self) -> float | list[float]:
        """The meta-training inner step sizes: α for every step, or α then --later-inner-lr."""
        if self.later_inner_lr is None or self.inner_steps <= 1:
            return self.inner_lr
        return [self.inner_lr] + [self.later_inner_lr] * (self.inner_steps - 1)

    def identity(self) -> dict[str, Any]:
        """The settings recorded in config.json (everything but the resume flag)."""
        d = asdict(self)
        d.pop("resume")
        return {k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
                for k, v in d.items()}


SETTINGS_ADDED_LATER = {"trpo.trust_region": "adapted", "inner_batches": "shared",
                        "later_inner_lr": None}
"""Settings that runs started before they existed used implicitly (kept resumable)."""


def config_from_identity(identity: dict[str, Any]) -> RLConfig:
    """The :class:`RLConfig` a run's config.json records (:meth:`RLConfig.identity`); settings
    added after the run was started take the value it used implicitly
    (:data:`SETTINGS_ADDED_LATER`)."""
    d = dict(identity)
    d.pop("run_id", None)  # config.json's record of which run it is, not a setting
    trpo = dict(d.pop("trpo", {}))
    for dotted, value in SETTINGS_ADDED_LATER.items():
        section, _, name = dotted.rpartition(".")
        (trpo if section == "trpo" else d).setdefault(name, value)
    known = {f.name for f in fields(RLConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise MetaRLError(f"config.json has settings this version does not know: "
                          f"{', '.join(unknown)}; use the metarl version that wrote the run")
    d["hidden_sizes"] = tuple(d.get("hidden_sizes", RLConfig.hidden_sizes))
    d["out_dir"] = Path(d.get("out_dir", RLConfig.out_dir))
    return RLConfig(**d, trpo=TRPOSettings(**trpo))


# The MAML paper's settings (section 5.3 and appendix A.2; original code cbfinn/maml_rl):
# 20 tasks x 20 episodes x 100 steps for 2D navigation, 40 tasks x 20 episodes x 200 steps for
# locomotion, one REINFORCE step of α = 0.1, TRPO with δ = 0.01, 500 meta-iterations.
_NAV = dict(env="metarl/Navigation2D-v0", meta_batch=20, episodes_per_task=20, inner_lr=0.1,
            iterations=500)
_LOCO = dict(meta_batch=40, episodes_per_task=20, inner_lr=0.1, iterations=500)
RL_PRESETS: dict[str, dict[str, Any]] = {
    "navigation": _NAV,
    # The original code's 2D-navigation run behind the paper's Figure 5 numbers
    # (maml_examples/test_maml_point.py loads "trpomaml1_fbs20_mbs20_flr_0.5"): α = 0.5 in
    # training, and 0.5 then 0.25 at test.
    "navigation-code": {**_NAV, "inner_lr": 0.5},
    # The paper's time step, the v1 ids (metarl.envs.ENV_KWARGS): HalfCheetah at 0.01 s per
    # step (v0, Gymnasium's 0.05 s, ran the pretrained halfcheetah-*-v0 runs); the Ant at
    # 0.02 s from rllab's standing pose, where a random policy stays up longer than on v0.
    "halfcheetah-vel": {**_LOCO, "env": "metarl/HalfCheetahVel-v1"},
    "halfcheetah-dir": {**_LOCO, "env": "metarl/HalfCheetahDir-v1"},
    "ant-vel": {**_LOCO, "env": "metarl/AntVel-v1"},
    "ant-dir": {**_LOCO, "env": "metarl/AntDir-v1"},
    "ant-pos": {**_LOCO, "env": "metarl/AntPos-v1"},
}


def apply_rl_preset(cfg: RLConfig, name: str | None) -> RLConfig:
    """``cfg`` with the named preset's values (unknown names get a clear error)."""
    return with_preset(cfg, RL_PRESETS, name)


def describe_presets() -> str:
    """Every preset of train_rl.py with the flags it stands for, as text."""
    return presets_as_text(RL_PRESETS)

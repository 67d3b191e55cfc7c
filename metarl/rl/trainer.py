"""MAML-TRPO meta-training on a metarl task distribution, and the paper's evaluation.

One meta-iteration (MAML Algorithm 3 with a TRPO outer step):

1. draw ``meta_batch`` tasks; roll out ``episodes_per_task`` episodes of each with θ (or,
   with ``batch="steps"``, the original code's budget of ``episodes_per_task × horizon``
   steps per task; support, one batched call of the :class:`~metarl.rl.sampler.MultiTaskSampler`);
2. fit the linear baseline per task, take the inner REINFORCE step(s): θ'_i;
3. roll out the query episodes of every task with its own θ'_i (one batched call);
4. TRPO on the mean query surrogate through the inner update
   (:class:`~metarl.rl.maml_trpo.MAMLTRPO`).

Wall-clock time is split into sampling (2 rollouts), inner (baselines and adaptation) and
outer (TRPO) and logged with the returns before and after adaptation, the KL and the
line-search statistics, and the fraction of sampled actions the action box clipped before
and after adaptation (a pre-update policy whose samples mostly lie outside the box gives the
inner REINFORCE step little signal: :meth:`~metarl.rl.sampler.MultiTaskSampler.clipped_fraction`).

Model selection (``RLConfig.select_best``): the paper evaluated "the model with the best
average return during training" (appendix A.2). The trainer keeps that model as
``checkpoints/best.pt``, chosen by the post-adaptation training return (``train-return``) or,
by default, by a validation run of the test protocol on fixed goals every ``eval_every``
iterations (``validation``), which is less noisy than 20 random tasks' returns and scores the
multi-step adaptation the evaluation reports.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from metarl.rl.advantages import to_pg_batch
from metarl.rl.config import RLConfig
from metarl.rl.maml_trpo import MAMLTRPO, Support
from metarl.rl.pg import PGBatch
from metarl.rl.policies import GaussianMLPPolicy, policy_spec
from metarl.rl.protocol import (
    drift_warning,
    evaluate_adaptation,
    evaluation_episodes,
    paper_step_sizes,
)
from metarl.rl.sampler import Batch, MultiTaskSampler
from metarl.runs.checkpoint import MAML_TRPO
from metarl.runs.distributed import DistContext
from metarl.runs.logger import RunLogger, read_metrics, say
from metarl.runs.loop import run_loop
from metarl.runs.plotting import Panel, plot_training_curves
from metarl.runs.state import Best, RunState

KIND = MAML_TRPO


def build_policy(cfg: RLConfig, obs_dim: int, act_dim: int) -> GaussianMLPPolicy:
    """The Gaussian MLP policy a config describes (seeded by the caller)."""
    return GaussianMLPPolicy(obs_dim, act_dim, cfg.hidden_sizes, cfg.activation, cfg.init_std)


def build_learner(cfg: RLConfig, policy: GaussianMLPPolicy) -> MAMLTRPO:
    """The MAML-TRPO meta-learner a config describes."""
    return MAMLTRPO(
        policy, inner_steps=cfg.inner_steps, inner_lr=cfg.inner_lrs(), first_order=cfg.first_order,
        inner_loss=cfg.inner_loss, mode=cfg.mode, trpo=replace(cfg.trpo),
    )


def make_sampler(cfg: RLConfig, episodes: int, *, oracle: bool = False) -> MultiTaskSampler:
    """A batched sampler for ``cfg.env`` with ``episodes`` slots per task (``cfg.batch``)."""
    return MultiTaskSampler(cfg.env, episodes, horizon=cfg.horizon,
                            batch=cast(Batch, cfg.batch),  # checked by RLConfig.validate
                            device=cfg.device, num_threads=cfg.threads,
                            env_kwargs={"oracle": True} if oracle else None)


RL_PANELS = (
    Panel("Return per episode", "return", (
        ("returns/before_adaptation", "before adaptation (θ)"),
        ("returns/after_adaptation", "after adaptation (θ')"),
        ("val/return_after_*", "validation goals, after *"))),
    Panel("TRPO step: KL divergence", "mean KL", (
        ("trpo/kl", "adapted policies (constrained)"),
        ("trpo/kl_initial", "pre-update policy"))),
    Panel("TRPO line search", "backtracking steps", (("trpo/ls_steps", "steps taken"),)),
    Panel("Time per iteration", "seconds", (
        ("time/sampling", "sampling"), ("time/inner", "inner update"),
        ("time/outer", "TRPO step"))),
)
"""What a researcher looks at first in an RL run's training.png (MAML Figure 5's return,
the trust region at work, where the time goes); every other tag stays in TensorBoard and
metrics.jsonl."""


class MetaRLTrainer(RunState):
    """Meta-trains a policy with MAML-TRPO in ``run_dir`` (see the module docstring); its run
    state (progress, checkpoints, resume, best.pt) is a :class:`~metarl.runs.state.RunState`
    whose model selection maximises the return."""

    training_panels: Sequence[Panel] | None = RL_PANELS

    def __init__(self, cfg: RLConfig, run_dir: Path, *, resume: bool = False,
                 progress: bool = True, dist: DistContext | None = None) -> None:
        cfg.validate()
        self.dist = dist or DistContext()
        self.dist.shard(cfg.meta_batch)  # a clear error if the tasks do not split evenly
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.progress = progress
        self.sampler = make_sampler(cfg, cfg.episodes_per_task)
        space = self.sampler.env
        obs_dim = space.observation_space.shape[0]  # type: ignore[attr-defined]
        act_dim = space.action_space.shape[0]  # type: ignore[attr-defined]
        torch.manual_seed(cfg.seed)
        self.policy = build_policy(cfg, obs_dim, act_dim).to(self.device)
        self.learner = build_learner(cfg, self.policy)
        self.learner.reduce = self.dist.mean
        super().__init__(run_dir, kind=KIND, model=self.policy, model_key="policy",
                         best=Best.none_yet("maximise", cfg.select_best),
                         config=cfg.identity(), keep_checkpoints=cfg.keep_checkpoints)
        self.history: list[dict[str, float]] = []
        self._eval_sampler: MultiTaskSampler | None = None
        self._drift_warned = False
        self._scored_policy: dict[str, torch.Tensor] | None = None
        """With select_best train-return: θ as it was sampled this iteration, before the TRPO
        step (the iteration's returns score it, not the stepped θ)."""
        self.before_outer: Callable[[Support, PGBatch], None] | None = None
        """Called with (support, query) before each TRPO step (diagnostics, e.g.
        scripts/analysis/step_anatomy.py); it must leave the policy unchanged."""
        if resume:
            self.resume(self.device, resuming=self.dist.is_main)

    # ----------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        """The run state, the policy's spec and the per-iteration history."""
        return {**super().state(), "policy_spec": policy_spec(self.policy),
                "history": self.history}

    def restore(self, state: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint's ``state`` (read from ``path``, named in errors)."""
        super().restore(state, path)
        self.history = list(state["history"])

    def results(self, *, finished: bool) -> dict[str, Any]:
        """results.json of the run as it stands: how far it got, the means of the logged
        quantities over its last 10 iterations, its newest checkpoint, the selected policy
        and the validations; ``finished`` is False when it was stopped before
        ``cfg.iterations`` (a stale file from an earlier, shorter leg of a resumed run is
        never left behind)."""
        return {"env": self.cfg.env, "algo": "maml-trpo", **self.record(finished=finished),
                "last_10_iterations": recent_means(self.history), "config": self.cfg.identity(),
                "checkpoint": str(self.checkpoints.upto(self.iteration)[-1][1]),
                "best": self.best.as_dict(), "validation": self.val_history}

    def finish(self) -> dict[str, Any]:
        """Write a finished run's results.json (:meth:`results`) and its training curves,
        training.png (rank 0's work); returns the results."""
        results = self.results(finished=True)
        self.write_results(results)
        plot_training_curves(read_metrics(self.run_dir), self.run_dir / "training.png",
                             title=f"MAML-TRPO on {self.cfg.env}", panels=self.training_panels)
        return results

    # -------------------------------------------------------------- training
    def train(self, on_stop: Callable[[], object] | None = None) -> None:
        """Run until ``cfg.iterations`` meta-iterations are done; on SIGINT/SIGTERM checkpoint,
        call ``on_stop`` (rank 0) and raise :class:`SystemExit` (see :func:`run_loop`)."""
        run_loop(self, run_dir=self.run_dir, iterations=self.cfg.iterations, log_every=1,
                 checkpoint_every=self.cfg.checkpoint_every,
                 max_bad_steps=self.cfg.max_nan_steps, desc="maml-trpo", progress=self.progress,
                 dist=self.dist, on_stop=on_stop)

    def rngs(self) -> tuple[np.random.Generator, np.random.Generator]:
        """This iteration's task generator (shared by all ranks) and rollout generator
        (this rank's), derived from (seed, iteration, rank): nothing to checkpoint, and a
        resumed run draws exactly what an uninterrupted one would."""
        seed, it = self.cfg.seed, self.iteration
        return (np.random.default_rng([seed, it, 0]),
                np.random.default_rng([seed, it, 1 + self.dist.rank]))

    def step(self) -> tuple[dict[str, float], bool]:
        """One meta-iteration; False when TRPO had to reject a non-finite step.

        Distributed: all ranks draw the same meta-batch of tasks and each rolls out, adapts
        and differentiates its contiguous shard; TRPO averages over ranks.
        """
        cfg = self.cfg
        prep = functools.partial(to_pg_batch, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
                                 normalize_advantages=cfg.normalize_advantages)
        spent = {"sampling": 0.0, "inner": 0.0, "outer": 0.0}
        mark = self._clock()

        def lap(part: str) -> None:
            nonlocal mark
            now = self._clock()
            spent[part] += now - mark
            mark = now

        task_rng, rollout_rng = self.rngs()
        tasks = self.sampler.env.sample_tasks(cfg.meta_batch, task_rng)
        tasks = tasks[self.dist.shard(cfg.meta_batch)]
        theta = {k: v.detach() for k, v in self.policy.named_parameters()}
        support_eps = self.sampler.sample(tasks, self.policy, theta, rollout_rng)
        simulated = self.sampler.last_steps_simulated
        lap("sampling")
        first = prep(support_eps)
        support: Support = first
        rollouts = [support_eps]
        if cfg.inner_batches == "fresh" and cfg.inner_steps > 1:
            # steps 2, 3, ... each on episodes of the policy after the steps before
            batches = [first]
            for _ in range(1, cfg.inner_steps):
                partial = self.learner.adapted_for_sampling(batches)
                lap("inner")
                rollouts.append(self.sampler.sample(tasks, self.policy, partial, rollout_rng))
                simulated += self.sampler.last_steps_simulated
                lap("sampling")
                batches.append(prep(rollouts[-1]))
            support = batches
        adapted = self.learner.adapted_for_sampling(support)
        lap("inner")
        query_eps = self.sampler.sample(tasks, self.policy, adapted, rollout_rng)
        simulated += self.sampler.last_steps_simulated
        lap("sampling")
        query = prep(query_eps)
        if self.before_outer is not None:
            self.before_outer(support, query)
        if cfg.select_best == "train-return" and self.dist.is_main:
            self._scored_policy = {k: v.detach().clone()
                                   for k, v in self.policy.state_dict().items()}
        stats = self.learner.step(support, query)
        lap("outer")
        scalars = self.dist.mean_scalars({
            "returns/before_adaptation": support_eps.task_returns().mean().item(),
            "returns/after_adaptation": query_eps.task_returns().mean().item(),
            "episodes/per_task_before_adaptation": len(support_eps.table.task) / len(tasks),
            "episodes/per_task_after_adaptation": len(query_eps.table.task) / len(tasks),
            # the share of episodes the env ended (the Ant's fall, navigation's goal)
            "episodes/terminated_before_adaptation":
                support_eps.table.terminated.float().mean().item(),
            "episodes/terminated_after_adaptation":
                query_eps.table.terminated.float().mean().item(),
            "actions/clipped_before_adaptation": self.sampler.clipped_fraction(support_eps),
            "actions/clipped_after_adaptation": self.sampler.clipped_fraction(query_eps),
            # env steps per task and batch: simulated (dropped episodes' steps included) and kept
            "steps/simulated_per_task": simulated / ((len(rollouts) + 1) * len(tasks)),
            "steps/kept_per_task": sum(e.mask.sum().item() for e in (*rollouts, query_eps))
            / ((len(rollouts) + 1) * len(tasks)),
            **{f"time/{part}": seconds for part, seconds in spent.items()},
            # the returns of the fresh batches between the first and the last inner step
            **{f"returns/after_{k}_inner_steps": eps.task_returns().mean().item()
               for k, eps in enumerate(rollouts) if k > 0},
            # each reward term's mean per env step (AntVel's reward_forward: the speed error)
            **{f"reward_terms/{name}_{when}_adaptation": value.mean().item()
               for when, eps in (("before", support_eps), ("after", query_eps))
               for name, value in eps.task_reward_terms().items()},
        })
        scalars.update({f"trpo/{k}": v for k, v in stats.items()})
        self.history.append({"iteration": self.iteration + 1, **scalars})
        return scalars, stats.get("nonfinite", 0.0) == 0.0

    def _clock(self) -> float:
        """``time.perf_counter()`` once the GPU's queued work is done: without the sync, work
        launched in one part of the iteration (adaptation) would be billed to the next
        (sampling) in the time split."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def after_iteration(self, logger: RunLogger) -> None:
        """Model selection (see the module docstring) and the warning of a run going wrong
        (:func:`drift_warning`, once); rank 0 only."""
        cfg = self.cfg
        if not self.dist.is_main:
            return
        message = None if self._drift_warned else drift_warning(self.history,
                                                                  max_kl=cfg.trpo.max_kl)
        if message:
            say(f"warning: {message}")
            self._drift_warned = True
        if cfg.select_best == "train-return":
            # the returns were earned by the policy sampled this iteration, before its step
            self.keep_best(self.history[-1]["returns/after_adaptation"],
                           model_state=self._scored_policy, iteration=self.iteration - 1)
        elif cfg.select_best == "validation" and self.iteration % cfg.eval_every == 0:
            means = self.validate()
            score = float(np.mean(means[1:]))
            self.val_history.append({"iteration": self.iteration, "returns": means,
                                     "score": score})
            logger.log(self.iteration, {f"val/return_after_{k}_steps": v
                                        for k, v in enumerate(means)})
            self.keep_best(score)

    def validate(self) -> list[float]:
        """Mean return over the validation goals after 0..eval_steps adaptation steps (the
        test protocol: ``eval_timesteps`` steps per goal and step, step sizes α then α/2)."""
        cfg = self.cfg
        if self._eval_sampler is None:
            slots = evaluation_episodes(self.sampler.horizon, cfg.eval_timesteps)
            self._eval_sampler = make_sampler(cfg, slots)
        sampler = self._eval_sampler
        tasks = sampler.env.sample_tasks(cfg.eval_tasks, np.random.default_rng([cfg.eval_seed, 0]))
        theta = {k: v.detach() for k, v in self.policy.named_parameters()}
        returns, _ = evaluate_adaptation(
            sampler, self.learner, theta, tasks, steps=cfg.eval_steps,
            lrs=paper_step_sizes(cfg.inner_lr, cfg.eval_steps),
            rng=np.random.default_rng([cfg.eval_seed, 1]), gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda, normalize_advantages=cfg.normalize_advantages)
        return [float(v) for v in returns.mean(0)]


def recent_means(history: list[dict[str, float]], last: int = 10) -> dict[str, float]:
    """Means over the last ``last`` iterations of the quantities logged in ``history``."""
    recent = history[-last:]
    keys = [k for k in recent[0] if k != "iteration"] if recent else []
    return {k: float(np.mean([h[k] for h in recent])) for k in keys}

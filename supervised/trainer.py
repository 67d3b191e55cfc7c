"""The meta-training loop shared by every supervised task family.

One loop serves MAML, FOMAML, Reptile and the "pretrained" joint-training baseline of the MAML
paper; they differ only in how the outer gradient of a meta-batch is formed
(:func:`make_outer_step`). Around that the loop provides what a long run needs: meta-batches
from a seeded ``numpy.random.Generator``, an outer ``torch.optim`` optimiser (Adam by default),
periodic validation, TensorBoard scalars and ``metrics.jsonl``, a progress bar, checksummed
atomic checkpoints, exact resume (the generator state, optimiser state and iteration count are
checkpointed, so an interrupted and resumed run ends with the same parameters as an
uninterrupted one on CPU), NaN/inf guards, and a clean stop on SIGINT/SIGTERM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from metarl.core.batching import PATHS, TaskBatching, choose_path, time_paths
from metarl.core.functional import Params, concat_examples, detach, params_of, tree_map
from metarl.core.meta import (
    MetaOutput,
    assign_gradients,
    finite,
    grads_of,
    maml_objective,
    reptile_pseudo_gradient,
)
from metarl.errors import require, require_positive_number, require_seed
from metarl.runs.checkpoint import SUPERVISED, load_checkpoint
from metarl.runs.cli import check_choices
from metarl.runs.distributed import DistContext
from metarl.runs.logger import RunLogger, say
from metarl.runs.loop import run_loop
from metarl.runs.plotting import Panel
from metarl.runs.state import Best, RunState
from metarl.supervised.evaluation import evaluate, tune_step_size
from metarl.supervised.tasks import SupervisedProblem, TaskBatch

Algorithm = Literal["maml", "fomaml", "reptile", "pretrained"]
Optimizer = Literal["adam", "sgd"]


@dataclass
class LoopConfig:
    """Settings of the shared meta-training loop (every family uses these)."""

    algo: Algorithm = "maml"
    """Meta-learning algorithm: maml (second order), fomaml (first-order MAML), reptile, or
    pretrained (joint training on all tasks without adaptation: the paper's baseline)."""
    iterations: int = 70000
    """Number of outer (meta) updates."""
    meta_batch: int = 25
    """Tasks per outer update."""
    inner_steps: int = 1
    """Inner gradient steps per task during meta-training."""
    inner_lr: float = 0.01
    """Inner step size α, for a MEAN loss over the support examples (the presets scale MAML's
    step sizes, given for the original code's sums, to it)."""
    outer_lr: float = 1e-3
    """Outer (meta) learning rate β."""
    outer_optimizer: Optimizer = "adam"
    """Outer optimiser: adam or sgd (plain SGD with outer_lr=1 is Reptile's original step)."""
    eval_inner_steps: int = 10
    """Inner steps at evaluation; results are reported after each of 0..eval_inner_steps."""
    eval_inner_lr: float | None = None
    """Inner step size at evaluation (default: inner_lr; tuned on validation for pretrained)."""
    eval_every: int = 1000
    """Evaluate on validation tasks every this many iterations (0: never)."""
    eval_tasks: int = 100
    """Validation tasks per periodic evaluation (at least 1: --eval-every 0 is how validation is
    skipped)."""
    select_best: bool = True
    """Report the test results of the checkpoint with the best validation score (mean query
    loss over adaptation steps 1..eval_inner_steps), kept as checkpoints/best.pt, rather than
    of the last iteration."""
    test_tasks: int = 600
    """Held-out test tasks in the final evaluation (the paper uses 600)."""
    eval_chunk: int = 100
    """Evaluation tasks adapted at once (one vmap call); lower it when a chunk's activations do
    not fit in memory (e.g. MiniImagenet: 100 tasks × 80 images of 84×84)."""
    eval_seed: int = 20170309
    """Seed of the validation/test task draws, shared by all runs so that every algorithm is
    scored on exactly the same tasks."""
    checkpoint_every: int = 1000
    """Write a checkpoint every this many iterations (and at the end, and on SIGINT/SIGTERM)."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep."""
    log_every: int = 50
    """Log training scalars every this many iterations."""
    max_nan_steps: int = 10
    """Stop (keeping the last good checkpoint) after this many consecutive non-finite steps."""
    seed: int = 0
    """Seed of the model initialisation and of the training task stream."""
    device: str = "cpu"
    """cpu or cuda."""
    task_batching: TaskBatching = "auto"
    """How the meta-batch's tasks are computed: batched (one torch.func.vmap call, or the
    family's task-stacked loss), loop (one task after another), or auto: time both on a
    meta-batch of this run's shapes before training and keep the faster (the same numbers up
    to rounding; a resumed run keeps the path it started with)."""
    compile: bool = False
    """torch.compile the meta-objective (slower start, faster iterations;
    scripts/benchmarks/bench_supervised.py --compile times it). MAML/FOMAML on a family with a
    stacked loss (sinusoid) then uses the compiled vmap path instead of the eager stacked one,
    which is about as fast."""
    threads: int | None = None
    """torch intra-op threads (default: torch's choice). 1 is fastest for small models and
    avoids oversubscription when several runs share the cores."""

    def validate(self) -> None:
        """Raise one clear :class:`MetaRLError` for the first invalid setting."""
        check_choices(self)
        for name in ("iterations", "meta_batch", "test_tasks", "keep_checkpoints", "log_every",
                     "max_nan_steps", "checkpoint_every", "eval_chunk"):
            value = getattr(self, name)
            require(value >= 1, f"--{name.replace('_', '-')} must be at least 1, got {value}")
        require(self.threads is None or self.threads >= 1,
                f"--threads must be at least 1, got {self.threads}")
        for name in ("inner_steps", "eval_inner_steps", "eval_every"):
            value = getattr(self, name)
            require(value >= 0, f"--{name.replace('_', '-')} must be >= 0, got {value}")
        # No validation tasks would mean no validation at all, and a best.pt never chosen:
        # that is asked for with --eval-every 0, never silently.
        require(self.eval_tasks >= 1,
                f"--eval-tasks must be at least 1, got {self.eval_tasks}; to train without "
                "validation pass --eval-every 0 (the test results are then those of the last "
                "iteration)")
        for name in ("inner_lr", "outer_lr", "eval_inner_lr"):
            require_positive_number(getattr(self, name), f"--{name.replace('_', '-')}")
        for name in ("seed", "eval_seed"):
            require_seed(getattr(self, name), f"--{name.replace('_', '-')}")
        require(self.algo != "reptile" or self.inner_steps >= 1,
                "reptile needs --inner-steps >= 1 (its update is θ − mean θ')")
        require(self.device in ("cpu", "cuda") or self.device.startswith("cuda:"),
                f"unknown --device {self.device!r}; choose cpu or cuda")
        if self.device.startswith("cuda"):
            require(torch.cuda.is_available(),
                    "--device cuda was asked for but no CUDA GPU is available; use --device cpu")


OuterStep = Callable[[Params, TaskBatch], tuple[Params, dict[str, Tensor]]]
"""``(θ, meta-batch) -> (outer gradient, scalars to log)``."""


def make_outer_step(problem: SupervisedProblem, cfg: LoopConfig, *,
                    batched: bool | None = None) -> OuterStep:
    """The outer (meta) gradient of one meta-batch for ``cfg.algo``.

    * maml / fomaml: ∇_θ of the mean query loss at θ'_i = adapt(θ, support_i);
    * reptile: θ − mean_i θ'_i, adapting on support ∪ query (Reptile has no query split);
    * pretrained: ∇_θ of the loss at θ itself on support ∪ query (joint training).

    ``batched`` picks the path (:mod:`metarl.core.batching`): the whole meta-batch in one call, or a
    loop over its tasks; by default the one ``cfg.task_batching`` names (``auto``: batched).

    The problem's outer-only parameters (:attr:`SupervisedProblem.outer_only`) are held fixed
    in the inner loop and receive the outer gradient through the query loss.

    With ``cfg.compile`` the pure part (objective or pseudo-gradient) goes through
    :func:`torch.compile`; Dynamo inlines the inner ``torch.func.grad``, so the compiled graph
    contains the inner gradient explicitly and the outer backward is an ordinary one.
    """
    require(cfg.algo != "reptile" or not problem.outer_only,
            "reptile cannot meta-learn outer-only parameters (its update θ − mean θ' is zero "
            f"for parameters the inner loop does not adapt: {', '.join(problem.outer_only)}); "
            "use maml or fomaml, or make every parameter a fast weight")

    vectorize = cfg.task_batching != "loop" if batched is None else batched

    def maybe_compile(fn: Callable[..., Any]) -> Callable[..., Any]:
        return torch.compile(fn) if cfg.compile else fn

    if cfg.algo == "reptile":
        loss_fn = problem.loss_fn

        def pseudo(params: Params, data: Any) -> Params:
            return reptile_pseudo_gradient(loss_fn, params, data, steps=cfg.inner_steps,
                                           lr=cfg.inner_lr, vectorize=vectorize)

        pseudo_c = maybe_compile(pseudo)

        def reptile_step(params: Params, batch: TaskBatch) -> tuple[Params, dict[str, Tensor]]:
            grads = pseudo_c(params, concat_examples(batch.support, batch.query))
            norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads.values()))
            return grads, {"train/pseudo_grad_norm": norm}

        return reptile_step

    pretrained = cfg.algo == "pretrained"

    def objective(params: Params, support: Any, query: Any) -> MetaOutput:
        view = problem.inner_view(params)  # the inner loop adapts the fast weights only
        # The stacked path (no vmap) is the faster eager one; under torch.compile the vmap
        # path is compiled instead (AOTAutograd cannot double-backward through autograd.grad).
        return maml_objective(view.loss_fn, view.fast, support, query,
                              steps=0 if pretrained else cfg.inner_steps, lr=cfg.inner_lr,
                              first_order=cfg.algo == "fomaml", metric_fn=view.metric_fn,
                              vectorize=vectorize,
                              stacked=None if cfg.compile else view.task_losses)

    objective_c = maybe_compile(objective)
    prefix = "train/" if pretrained else "train/query_"

    def gradient_step(params: Params, batch: TaskBatch) -> tuple[Params, dict[str, Tensor]]:
        if pretrained:
            everything = concat_examples(batch.support, batch.query)
            out = objective_c(params, everything, everything)
        else:
            out = objective_c(params, batch.support, batch.query)
        scalars = {f"{prefix}loss": out.loss.detach(),
                   **{f"{prefix}{k}": v for k, v in out.metrics.items()}}
        return grads_of(out.loss, params), scalars

    return gradient_step


def _metric_panel(title: str, metric: str) -> Panel:
    """``metric`` (loss or accuracy) on the training tasks' queries after adaptation (the
    pretrained baseline: on its training tasks) and on the validation tasks after 0 and K
    steps."""
    return Panel(title, metric, ((f"train/query_{metric}", "training tasks' queries, adapted"),
                                 (f"train/{metric}", "training tasks"),
                                 (f"val/{metric}_*", "validation tasks, after *")))


SUPERVISED_PANELS = (_metric_panel("Accuracy", "accuracy"), _metric_panel("Loss", "loss"),
                     Panel("Reptile pseudo-gradient", "norm",
                           (("train/pseudo_grad_norm", "θ − mean θ'"),)))
"""The panels of a supervised run's training.png: accuracy (classification) and loss, on the
training tasks and the validation tasks; a panel whose tags a run never logs is left out."""


class MetaTrainer(RunState):
    """Meta-trains ``problem.model`` in ``run_dir`` according to ``cfg``.

    Call :meth:`train` (resumes from the newest valid checkpoint when ``resume``), then
    :meth:`final_evaluation` for the test-set numbers that go into ``results.json``. Its run
    state (progress, the outer optimiser, the task stream's generator, checkpoints, resume,
    best.pt) is a :class:`~metarl.runs.state.RunState` whose model selection minimises the
    validation loss.
    """

    training_panels: Sequence[Panel] | None = SUPERVISED_PANELS

    optimizer: torch.optim.Optimizer
    """The outer optimiser (every supervised run has one)."""
    rng: np.random.Generator
    """The generator the training meta-batches are drawn from."""

    def __init__(
        self,
        problem: SupervisedProblem,
        cfg: LoopConfig,
        run_dir: Path,
        *,
        config_dict: dict[str, Any] | None = None,
        resume: bool = False,
        progress: bool = True,
        dist: DistContext | None = None,
    ) -> None:
        cfg.validate()
        self.dist = dist or DistContext()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.problem = problem
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        model = problem.model.to(self.device)
        self.params = params_of(model)
        self.progress = progress
        train_seq, _ = np.random.SeedSequence(cfg.seed).spawn(2)
        super().__init__(run_dir, kind=SUPERVISED, model=model, model_key="model",
                         best=Best.none_yet("minimise",
                                            "validation" if cfg.select_best else "last"),
                         config=config_dict or {}, keep_checkpoints=cfg.keep_checkpoints,
                         optimizer=self._make_optimizer(), rng=np.random.default_rng(train_seq),
                         torch_rng=True)
        self.task_batching: str = cfg.task_batching  # "auto" until chosen
        self.batching_ms: dict[str, float] = {}
        if resume:
            self.resume(self.device, resuming=self.dist.is_main)
        if self.task_batching == "auto":
            self.task_batching = self._choose_batching()
        self.outer_step = make_outer_step(problem, cfg,
                                          batched=self.task_batching == "batched")

    # ----------------------------------------------------------------- state
    def _make_optimizer(self) -> torch.optim.Optimizer:
        values = list(self.params.values())
        if self.cfg.outer_optimizer == "adam":
            return torch.optim.Adam(values, lr=self.cfg.outer_lr)
        return torch.optim.SGD(values, lr=self.cfg.outer_lr)

    def state(self) -> dict[str, Any]:
        """The run state and the meta-batch path in use (with its timings)."""
        return {**super().state(), "task_batching": self.task_batching,
                "task_batching_ms": self.batching_ms}

    def restore(self, state: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint's ``state``; an auto run keeps the path it started
        with."""
        super().restore(state, path)
        if self.cfg.task_batching == "auto" and state.get("task_batching") in PATHS:
            self.task_batching = state["task_batching"]
            self.batching_ms = dict(state.get("task_batching_ms") or {})

    def _choose_batching(self) -> str:
        """The faster path for this run's meta-batches (:mod:`metarl.core.batching`), timed on one
        meta-batch drawn from a generator of its own, so the training stream is untouched.

        A compiled run is batched (compiling the loop as well would cost minutes). Under
        torchrun the ranks average their timings, so every rank takes the same path.
        """
        if self.cfg.compile:
            return "batched"
        rng = np.random.default_rng(np.random.SeedSequence(self.cfg.seed).spawn(3)[2])
        batch = self._my_share(self.problem.splits["train"].sample(self.cfg.meta_batch, rng))
        steps = {path: make_outer_step(self.problem, self.cfg, batched=path == "batched")
                 for path in PATHS}
        ms = time_paths({path: partial(step, self.params, batch)
                         for path, step in steps.items()}, device=self.device)
        self.batching_ms = self.dist.mean_scalars(ms)
        choice = choose_path(self.batching_ms)
        if self.dist.is_main:
            timings = ", ".join(f"{p} {v:.1f} ms" for p, v in self.batching_ms.items())
            say(f"task batching: {choice} ({timings} per meta-batch, timed on this run's "
                "shapes; --task-batching sets it)")
        return choice

    def _my_share(self, batch: TaskBatch) -> TaskBatch:
        """This rank's tasks of a meta-batch (all of them without torchrun)."""
        if not self.dist.enabled:
            return batch
        part = self.dist.shard(self.cfg.meta_batch)
        return TaskBatch(*(tree_map(lambda t: t[part], b) for b in batch))

    # ------------------------------------------------------------ evaluation
    @property
    def eval_lr(self) -> float:
        return self.cfg.eval_inner_lr if self.cfg.eval_inner_lr is not None else self.cfg.inner_lr

    def evaluate(self, split: str, n_tasks: int, lr: float | None = None,
                 steps: int | None = None) -> dict[str, Any]:
        """Adaptation curve on ``n_tasks`` tasks of ``split`` (same tasks for every run)."""
        require(split in self.problem.splits, f"this family has no {split!r} split")
        seed = self.cfg.eval_seed + {"train": 0, "val": 1, "test": 2}.get(split, 3)
        view = self.problem.inner_view(detach(self.params))
        result = evaluate(
            view.loss_fn, view.metric_fn, view.fast, self.problem.splits[split], n_tasks=n_tasks,
            steps=self.cfg.eval_inner_steps if steps is None else steps,
            lr=self.eval_lr if lr is None else lr, seed=seed, chunk=self.cfg.eval_chunk,
            vectorize=self.task_batching == "batched",
        )
        return {"split": split, **result}

    def final_evaluation(self) -> dict[str, Any]:
        """Test-set adaptation curve; the pretrained baseline's step size is tuned first."""
        out: dict[str, Any] = {"evaluated": {"iteration": self.iteration, "selected_by": "last"}}
        best = self.checkpoints.root / "best.pt"
        if self.cfg.select_best and best.is_file():
            state = load_checkpoint(best, map_location=self.device)
            self.model.load_state_dict(state["model"])
            out["evaluated"] = {"iteration": int(state["iteration"]),
                                "selected_by": "validation",
                                "val_score": self.best.read_from(state).score}
        lr = self.eval_lr
        if self.cfg.algo == "pretrained" and self.cfg.eval_inner_lr is None:
            split = "val" if "val" in self.problem.splits else "train"
            grid = [lr * f for f in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)]
            view = self.problem.inner_view(detach(self.params))
            lr, scores = tune_step_size(
                view.loss_fn, view.fast, self.problem.splits[split],
                candidates=grid, n_tasks=min(self.cfg.eval_tasks or 100, 200),
                steps=self.cfg.eval_inner_steps, seed=self.cfg.eval_seed + 7,
            )
            out["step_size_tuning"] = {"split": split, "chosen": lr,
                                       "scores": {str(k): v for k, v in scores.items()}}
        out["test"] = self.evaluate("test", self.cfg.test_tasks, lr=lr)
        return out

    # --------------------------------------------------------------- training
    def train(self, on_stop: Callable[[], object] | None = None) -> None:
        """Run until ``cfg.iterations`` outer steps are done; on SIGINT/SIGTERM checkpoint,
        call ``on_stop`` (rank 0) and raise :class:`SystemExit` (see :func:`run_loop`)."""
        cfg = self.cfg
        run_loop(self, run_dir=self.run_dir, iterations=cfg.iterations, log_every=cfg.log_every,
                 checkpoint_every=cfg.checkpoint_every, max_bad_steps=cfg.max_nan_steps,
                 desc=cfg.algo, progress=self.progress, dist=self.dist, on_stop=on_stop)

    def step(self) -> tuple[dict[str, float], bool]:
        """One outer update on a fresh meta-batch (skipped if its gradient is not finite).

        Distributed: every rank draws the same meta-batch from the shared generator and keeps
        its contiguous shard of the tasks; the shard means of the outer gradient (and of the
        logged numbers) are averaged over ranks, so all ranks take the same step.
        """
        batch = self._my_share(self.problem.splits["train"].sample(self.cfg.meta_batch,
                                                                     self.rng))
        grads, local_scalars = self.outer_step(self.params, batch)
        grads = self.dist.mean_dict(grads)
        scalars = self.dist.mean_scalars(local_scalars)
        if not finite(grads.values()):
            return scalars, False
        assign_gradients(self.params, grads)
        self.optimizer.step()
        return scalars, True

    def after_iteration(self, logger: RunLogger) -> None:
        cfg = self.cfg
        due = cfg.eval_every and self.iteration % cfg.eval_every == 0 and cfg.eval_tasks
        if due and self.dist.is_main:
            self._validate(logger)

    def _validate(self, logger: RunLogger) -> None:
        """Validation curve; with ``select_best`` the best-scoring state goes to best.pt."""
        if "val" not in self.problem.splits:
            return
        split = "val"
        res = self.evaluate(split, self.cfg.eval_tasks)
        losses = res["loss_mean"]
        score = float(np.mean(losses[1:])) if len(losses) > 1 else float(losses[0])
        if self.cfg.select_best:
            self.keep_best(score)
        entry = {"iteration": self.iteration, "split": split}
        scalars = {}
        for key, values in res.items():
            if key.endswith("_mean"):
                name = key[: -len("_mean")]
                entry[f"{name}_before"] = values[0]
                entry[f"{name}_after"] = values[-1]
                scalars[f"{split}/{name}_0_steps"] = values[0]
                scalars[f"{split}/{name}_{len(values) - 1}_steps"] = values[-1]
        self.val_history.append(entry)
        logger.log(self.iteration, scalars)


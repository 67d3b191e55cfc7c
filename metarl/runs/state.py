"""The state of a training run, saved, resumed and selected from in one place.

Both trainers (supervised meta-training and MAML-TRPO) are a :class:`RunState`: the model they
train and their progress, counted by the loop (:func:`metarl.runs.loop.run_loop`) -- completed
iterations, training seconds, non-finite steps in a row and the logging window in progress --
together with what a trainer adds where it has one: a random generator whose stream training
draws from, the torch random state, an optimiser. :meth:`RunState.state` writes all of that into
a checkpoint and :meth:`RunState.restore` reads it back, so that a resumed run continues exactly
where the checkpoint stood; :meth:`RunState.resume` finds the newest valid checkpoint and
:meth:`RunState.keep_best` keeps the best-scoring model as ``best.pt``, with the direction of its
score (:class:`Best`: a loss is minimised, a return maximised).

A checkpoint records the selection as ``"best": {"score", "iteration", "selected_by",
"direction"}``. Checkpoints written before it was shared stay readable: a supervised one holds
the best validation loss alone (``"best_score"``), an RL one the dict without its direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from metarl.runs.checkpoint import CheckpointDir, check_signature, model_signature
from metarl.runs.logger import say
from metarl.runs.loop import load_latest_state
from metarl.runs.plotting import Panel
from metarl.runs.rundir import write_results

Direction = Literal["minimise", "maximise"]
"""Whether a lower score (a loss) or a higher one (a return) is better."""
DIRECTIONS: tuple[Direction, ...] = ("minimise", "maximise")


@dataclass(frozen=True)
class Best:
    """The model a run has selected so far: its score, at which iteration, by what rule."""

    direction: Direction
    """Whether a lower or a higher score is better."""
    selected_by: str
    """The rule that scores the models (``validation``, ``train-return``; ``last``: none is
    selected and the run's last model counts)."""
    score: float
    """The best score so far."""
    iteration: int | None
    """The iteration of the selected model (None where a checkpoint from before the shared
    run state did not record it)."""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")

    @classmethod
    def none_yet(cls, direction: Direction, selected_by: str) -> Best:
        """The selection before any score: the worst score (+inf when minimising, -inf when
        maximising), which every finite one beats, at iteration 0."""
        worst = math.inf if direction == "minimise" else -math.inf
        return cls(direction, selected_by, worst, 0)

    def beaten_by(self, score: float) -> bool:
        """Whether ``score`` is finite and strictly better than the best so far (a tie keeps
        the earlier model)."""
        if not math.isfinite(score):
            return False
        return score < self.score if self.direction == "minimise" else score > self.score

    def as_dict(self) -> dict[str, Any]:
        """The selection as a checkpoint and results.json record it."""
        return {"score": self.score, "iteration": self.iteration,
                "selected_by": self.selected_by, "direction": self.direction}

    def read_from(self, state: dict[str, Any]) -> Best:
        """The selection a checkpoint's ``state`` records, in this selection's direction (the
        trainer's: a checkpoint of another kind is refused before it is read). A checkpoint
        from before the shared run state holds either the RL form (the dict without its
        direction) or the supervised one (``best_score``, a validation loss, without its
        iteration); one with neither leaves this selection as it is."""
        saved = state.get("best")
        if isinstance(saved, dict):
            return replace(self, score=float(saved["score"]),
                           iteration=None if saved.get("iteration") is None
                           else int(saved["iteration"]),
                           selected_by=str(saved.get("selected_by", self.selected_by)))
        if "best_score" in state:
            return replace(self, score=float(state["best_score"]), iteration=None)
        return self


class RunState:
    """What a training run carries from one iteration to the next and into its checkpoints.

    A trainer subclasses it and extends :meth:`state` and :meth:`restore` with what only it
    holds (its history, its choice of code path); the loop reads and counts ``iteration``,
    ``train_seconds``, ``bad_steps`` and ``log_window`` on it (:class:`metarl.runs.loop.Trainable`).
    """

    training_panels: Sequence[Panel] | None = None
    """The panels of the run's training.png (None: one per logged quantity)."""

    def __init__(
        self,
        run_dir: Path,
        *,
        kind: str,
        model: nn.Module,
        model_key: str,
        best: Best,
        config: dict[str, Any],
        keep_checkpoints: int,
        optimizer: torch.optim.Optimizer | None = None,
        rng: np.random.Generator | None = None,
        torch_rng: bool = False,
    ) -> None:
        """``kind``: what the checkpoints are (:data:`metarl.runs.checkpoint.KINDS`);
        ``model`` and ``model_key``: the module trained and the key its state dict has in a
        checkpoint; ``best``: the selection before any score (its direction and rule);
        ``config``: the run's settings as its checkpoints record them; ``optimizer``, ``rng``
        (a generator training draws from) and ``torch_rng`` (whether torch's global random
        state is drawn from): what else a resumed run needs to continue exactly."""
        self.run_dir = Path(run_dir)
        self.kind = kind
        self.model = model
        self.model_key = model_key
        self.config = config
        self.checkpoints = CheckpointDir(self.run_dir / "checkpoints", keep=keep_checkpoints)
        self.optimizer = optimizer
        self.rng = rng
        self.torch_rng = torch_rng
        self.iteration = 0
        """Completed iterations."""
        self.train_seconds = 0.0
        """Wall-clock seconds spent in the iterations, resumes included."""
        self.bad_steps = 0
        """Non-finite (skipped) steps in a row up to ``iteration``."""
        self.log_window: dict[str, list[float]] = {}
        """The scalars of the iterations since the last metrics record (one list per tag)."""
        self.best = best
        """The model selection so far; :meth:`keep_best` updates it."""
        self.val_history: list[dict[str, Any]] = []
        """One entry per validation, in the trainer's form."""

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the run stands (a trainer adds its
        own entries)."""
        extra: dict[str, Any] = {}
        if self.optimizer is not None:
            extra["optimizer"] = self.optimizer.state_dict()
        if self.rng is not None:
            extra["rng"] = self.rng.bit_generator.state
        if self.torch_rng:
            extra["torch_rng"] = torch.get_rng_state()
        return {
            "kind": self.kind,
            "iteration": self.iteration,
            self.model_key: self.model.state_dict(),
            "model_signature": model_signature(self.model),
            **extra,
            "train_seconds": self.train_seconds,
            "bad_steps": self.bad_steps,
            "log_window": {k: list(v) for k, v in self.log_window.items()},
            "val_history": self.val_history,
            "best": self.best.as_dict(),
            "config": self.config,
        }

    def restore(self, state: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint's ``state``, read from ``path`` (named in errors).

        Checkpoints from before the loop state was saved resume with no step skipped and no
        logging window open; the older forms of the model selection are read as
        :meth:`Best.read_from` says."""
        check_signature(state["model_signature"], self.model, path)
        self.model.load_state_dict(state[self.model_key])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.rng is not None:
            self.rng.bit_generator.state = state["rng"]
        if self.torch_rng:
            torch.set_rng_state(state["torch_rng"].cpu())  # map_location moved it with the rest
        self.iteration = int(state["iteration"])
        self.train_seconds = float(state["train_seconds"])
        self.bad_steps = int(state.get("bad_steps", 0))
        self.log_window = {k: list(v) for k, v in state.get("log_window", {}).items()}
        self.val_history = list(state.get("val_history", []))
        self.best = self.best.read_from(state)

    def save(self) -> Path:
        """Checkpoint the current state."""
        return self.checkpoints.save(self.iteration, self.state())

    def resume(self, map_location: str | torch.device, *, resuming: bool = True) -> Path | None:
        """Continue from the run's newest valid checkpoint, if it has one; returns its path.

        ``resuming``: this process owns the run folder (see
        :func:`metarl.runs.loop.load_latest_state`; under torchrun rank 0 alone does)."""
        found = load_latest_state(self.checkpoints, self.kind, map_location,
                                  resuming=resuming, model=self.model)
        if found is None:
            return None
        path, state = found
        self.restore(state, path)
        say(f"resumed from {path} at iteration {self.iteration}")
        return path

    def keep_best(self, score: float, *, iteration: int | None = None,
                  model_state: dict[str, torch.Tensor] | None = None) -> bool:
        """If ``score`` beats the best so far, make it the best and write ``best.pt``; returns
        whether it did.

        The scored model is the current one, or ``model_state`` as it was after ``iteration``
        updates (a score earned by the model before this iteration's step)."""
        if not self.best.beaten_by(score):
            return False
        at = self.iteration if iteration is None else iteration
        self.best = replace(self.best, score=score, iteration=at)
        state = {**self.state(), "iteration": at}
        if model_state is not None:
            state[self.model_key] = model_state
        self.checkpoints.save_best(state)
        return True

    def record(self, *, finished: bool) -> dict[str, Any]:
        """How far training got, as results.json records it: ``finished`` is False for a run
        stopped before its last iteration."""
        return {"iterations": self.iteration, "finished": finished,
                "train_seconds": self.train_seconds}

    def write_results(self, results: dict[str, Any]) -> Path:
        """Write the run's results.json (:func:`metarl.runs.rundir.write_results`)."""
        return write_results(self.run_dir, results)


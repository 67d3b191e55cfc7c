"""The driver every training script shares: iterate, log, checkpoint, resume, stop cleanly.

A trainer supplies one iteration (:meth:`Trainable.step`) and its state; :func:`run_loop`
adds the progress bar, TensorBoard/``metrics.jsonl`` logging (means over each logging
window; the window in progress is part of the checkpoint and a run's last, partial window is
logged at its end), periodic checkpoints, a clean stop on SIGINT/SIGTERM with a checkpoint, the
training curves so far (``training.png``) and the caller's ``on_stop`` hook (the scripts
write a results.json marked ``"finished": false`` there), and the non-finite-step guard
(skipped steps are logged; after ``max_bad_steps`` in a row training stops with a clear
message and the last good checkpoint is kept).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from metarl.errors import MetaRLError
from metarl.runs.checkpoint import CheckpointDir, check_kind, check_signature
from metarl.runs.distributed import DistContext
from metarl.runs.io import DiskFullError
from metarl.runs.logger import RunLogger, say
from metarl.runs.plotting import Panel, plot_training_curves
from metarl.runs.signals import StopRequest


def short_names(values: dict[str, str]) -> dict[str, str]:
    """``{"returns/after_adaptation": v}`` -> ``{"after_adaptation": v}`` for the progress bar,
    keeping the full name where two short ones would collide."""
    counts: dict[str, int] = {}
    for k in values:
        counts[k.split("/")[-1]] = counts.get(k.split("/")[-1], 0) + 1
    return {(k.split("/")[-1] if counts[k.split("/")[-1]] == 1 else k): v
            for k, v in values.items()}


class Trainable(Protocol):
    """What :func:`run_loop` needs from a trainer (:class:`metarl.runs.state.RunState` holds
    and checkpoints the counts; the trainer adds :meth:`step` and :meth:`after_iteration`)."""

    iteration: int
    """Completed iterations (restored on resume)."""
    train_seconds: float
    """Wall-clock seconds spent in :meth:`step` over the whole run, resumes included."""
    bad_steps: int
    """Non-finite (skipped) steps in a row up to ``iteration``; checkpointed, so that a
    resume counts on towards ``max_bad_steps`` instead of starting again at 0."""
    log_window: dict[str, list[float]]
    """The scalars of the iterations since the last metrics record (one list per tag);
    checkpointed, so that a run resumed after a kill logs the same records as one that was
    never interrupted."""
    checkpoints: CheckpointDir
    training_panels: Sequence[Panel] | None
    """The panels of training.png (None: one per logged quantity)."""

    def step(self) -> tuple[Mapping[str, float], bool]:
        """Run one iteration; return scalars to log and False if it was skipped (NaN/inf)."""
        ...

    def save(self) -> Path:
        """Checkpoint the current state."""
        ...

    def after_iteration(self, logger: RunLogger) -> None:
        """Periodic work after each iteration (e.g. validation)."""
        ...


def load_latest_state(
    checkpoints: CheckpointDir, kind: str, map_location: str | torch.device, *,
    resuming: bool = False, model: torch.nn.Module | None = None,
) -> tuple[Path, dict[str, Any]] | None:
    """The newest valid checkpoint of ``kind`` of the run (newer ones that are damaged or
    another run's are reported and kept); with ``model``, it must hold that model.

    ``resuming``: the caller is the trainer that owns the folder (it holds the run lock).
    Once every check has passed -- and only then, so that a refused resume leaves the folder
    as it was -- a killed save's temporaries are deleted and a best.pt newer than the
    checkpoint, or of another run, is set aside (:meth:`CheckpointDir.set_aside_newer_best`).
    Readers change nothing."""
    found = checkpoints.load_latest(map_location=map_location)
    skipped: list[str] = []
    if found is not None:
        path, state, skipped = found
        for w in skipped:
            say(f"warning: {w}")
        check_kind(state, path, kind)
        if model is not None:
            check_signature(state["model_signature"], model, path)
    if resuming:
        checkpoints.remove_stale_temporaries()
        aside = checkpoints.set_aside_newer_best(
            int(found[1]["iteration"]) if found is not None else 0, skipped)
        if aside:
            say(f"warning: {aside}")
    return None if found is None else (found[0], found[1])


def _stopped_by_full_disk(err: DiskFullError, trainer: Trainable,
                          on_stop: Callable[[], object] | None) -> DiskFullError:
    """The one line for a run that a full disk stopped, after ``on_stop`` (rank 0's
    results.json, ``"finished": false``) was given its chance to write.

    It says where the space ran out and how much is left, how far the run got and which
    checkpoint a ``--resume`` continues from: the newest one written, which an interrupted save
    never replaces. Without a checkpoint there is nothing to describe, and ``on_stop`` is not
    called."""
    kept = trainer.checkpoints.upto(trainer.iteration)
    if not kept:
        return DiskFullError(err.path, err.reason,
                             f"training stopped at iteration {trainer.iteration}, before its "
                             "first checkpoint; free some space and rerun with --resume")
    results = ""
    if on_stop is not None:
        try:
            on_stop()
            results = ', and results.json says "finished": false'
        except DiskFullError:
            results = ", and results.json could not be written either"
    iteration, path = kept[-1]
    return DiskFullError(err.path, err.reason,
                         f"training stopped at iteration {trainer.iteration}; its last good "
                         f"checkpoint, {path} (iteration {iteration}), is kept{results}; free "
                         "some space and rerun with --resume to continue from it")


def run_loop(
    trainer: Trainable,
    *,
    run_dir: Path,
    iterations: int,
    log_every: int = 1,
    checkpoint_every: int = 1000,
    max_bad_steps: int = 10,
    desc: str = "",
    progress: bool = True,
    dist: DistContext | None = None,
    on_stop: Callable[[], object] | None = None,
) -> None:
    """Run ``trainer`` until ``iterations`` are done or a stop signal arrives.

    On a stop, the finished iteration is checkpointed, ``training.png`` drawn and ``on_stop``
    called (rank 0 only) before :class:`SystemExit` (status 0) is raised, so that a run stopped
    by a scheduler leaves a complete record of how far it got. A full disk ends the run with
    one :class:`DiskFullError` line after ``on_stop`` (:func:`_stopped_by_full_disk`).

    Under ``torch.distributed`` every rank runs this loop in step; only rank 0 logs and
    writes checkpoints, and a stop request on any rank stops all of them at the same iteration.
    """
    ctx = dist or DistContext()
    logger = RunLogger(run_dir, start_step=trainer.iteration, enabled=ctx.is_main)

    def save() -> Path | None:
        return trainer.save() if ctx.is_main else None

    window = trainer.log_window

    def flush_window() -> dict[str, float]:
        """Log the window's means at the current iteration and start a new window."""
        means = {k: float(np.mean(v)) for k, v in window.items()}
        window.clear()
        logger.log(trainer.iteration, means)
        return means

    bar = tqdm(total=iterations, initial=trainer.iteration, disable=not (progress and ctx.is_main),
               desc=desc,
               dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0)
    try:
        with StopRequest() as stop:
            while trainer.iteration < iterations:
                tic = time.perf_counter()
                scalars, ok = trainer.step()
                if ok:
                    trainer.bad_steps = 0
                else:
                    trainer.bad_steps += 1
                    say(f"warning: non-finite update at iteration {trainer.iteration}; step "
                        f"skipped ({trainer.bad_steps} in a row)")
                    # at the step the iteration will have (a resume from the checkpoint
                    # before it cuts the marker with the rest of that iteration's log)
                    logger.log(trainer.iteration + 1, {"train/skipped_nonfinite": 1.0})
                    if trainer.bad_steps >= max_bad_steps:
                        raise MetaRLError(
                            f"{trainer.bad_steps} non-finite updates in a row at iteration "
                            f"{trainer.iteration}; stopping (the last good checkpoint is kept "
                            "in checkpoints/); start a new run in another --out-dir with lower "
                            "learning rates (--resume would replay the same steps)"
                        )
                trainer.iteration += 1
                elapsed = time.perf_counter() - tic
                trainer.train_seconds += elapsed
                bar.update(1)
                for k, v in scalars.items():
                    window.setdefault(k, []).append(float(v))
                window.setdefault("time/seconds_per_iteration", []).append(elapsed)
                # the run's last iteration closes its window too (its length need not be a
                # multiple of log_every), before the checkpoint, which then holds it empty
                if trainer.iteration % log_every == 0 or trainer.iteration == iterations:
                    means = flush_window()
                    shown = short_names({k: f"{v:.4g}" for k, v in means.items()
                                         if not k.startswith("time")})
                    bar.set_postfix(dict(list(shown.items())[:4]), refresh=False)
                trainer.after_iteration(logger)
                if trainer.iteration % checkpoint_every == 0:
                    save()
                if ctx.any(stop.requested is not None):
                    if window:  # the part of a logging window done so far is not lost
                        flush_window()
                    path = save()
                    if ctx.is_main:
                        curves = plot_training_curves(logger.read(), run_dir / "training.png",
                                                      title=f"{desc} (stopped at iteration "
                                                            f"{trainer.iteration})",
                                                      panels=trainer.training_panels)
                        if on_stop is not None:
                            on_stop()
                        say(f"{stop.requested or 'stop'} received: checkpoint saved to {path}, "
                            f"training curves so far in {curves}; rerun with --resume to "
                            "continue")
                    raise SystemExit(0)
        saved = trainer.checkpoints.list()
        if ctx.is_main and (not saved or saved[-1][0] != trainer.iteration):
            save()
    except BaseException as err:
        logger.close(failing=True)  # the error on its way out is the one to report
        if isinstance(err, DiskFullError):
            raise _stopped_by_full_disk(err, trainer, on_stop if ctx.is_main else None) from None
        raise
    finally:
        bar.close()
        logger.close()

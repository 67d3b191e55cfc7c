"""What the supervised scripts do, as functions: train a run, reload a run, plot a run."""

from __future__ import annotations

import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from metarl.errors import CheckpointError, MetaRLError
from metarl.runs.checkpoint import (
    SUPERVISED,
    CheckpointDir,
    check_kind,
    check_signature,
    load_checkpoint,
)
from metarl.runs.distributed import DistContext, init_distributed, process_group
from metarl.runs.logger import read_metrics
from metarl.runs.loop import load_latest_state
from metarl.runs.plotting import plot_adaptation_curves, plot_training_curves
from metarl.runs.rundir import (
    CONFIG_NAME,
    RESUMABLE,
    never_started,
    open_run_dir,
    read_run_config,
    start_resumed_leg,
)
from metarl.supervised.config import SupervisedConfig
from metarl.supervised.plots import plot_sinusoid_predictions
from metarl.supervised.problems import build_problem, data_digest
from metarl.supervised.tasks import SupervisedProblem
from metarl.supervised.trainer import SUPERVISED_PANELS, MetaTrainer


def train(cfg: SupervisedConfig, *, progress: bool = True) -> dict[str, Any] | None:
    """Meta-train, evaluate on the test tasks, write results.json and the plots.

    Stopped by SIGINT/SIGTERM, it writes a checkpoint and a results.json marked
    ``"finished": false`` (no test evaluation), then exits. ``--resume`` on a run that has
    finished ``cfg.iterations`` returns its stored results and changes nothing.

    Under ``torchrun`` every rank trains its shard of each meta-batch; rank 0 alone writes
    the run folder and evaluates, and returns the results (other ranks return None).
    """
    cfg.validate()
    with process_group(init_distributed(cfg.device)) as ctx:
        return _train_rank(cfg, ctx, progress)


def _train_rank(cfg: SupervisedConfig, ctx: DistContext, progress: bool) -> dict[str, Any] | None:
    """:func:`train`'s work on one rank (all of it without torchrun)."""
    if ctx.enabled and cfg.device.startswith("cuda"):
        cfg = replace(cfg, device=f"cuda:{ctx.local_rank}")
    ctx.shard(cfg.meta_batch)  # a clear error if the meta-batch does not split evenly
    torch.manual_seed(cfg.seed)
    problem = build_problem(cfg)  # before the run folder: config.json records the data's digest
    identity, added, resumable = _data_rules(cfg, data_digest(problem))
    done = open_run_dir(ctx, cfg.out_dir, identity, iterations=cfg.iterations,
                        resume=cfg.resume, added=added, resumable_fields=resumable)
    if done is not None:  # nothing to train: the finished run is left as it is
        return done if ctx.is_main else None
    run_dir = Path(cfg.out_dir)
    trainer = MetaTrainer(problem, cfg, run_dir, config_dict=identity, resume=cfg.resume,
                          progress=progress, dist=ctx)
    if cfg.resume:  # the checkpoint passed every check: only now does the folder change
        start_resumed_leg(ctx, run_dir, identity)
    # A stop (SIGINT/SIGTERM) ends in SystemExit after the checkpoint and this results.json.
    trainer.train(on_stop=lambda: trainer.write_results(_run_summary(cfg, trainer,
                                                                     finished=False)))
    if not ctx.is_main:  # rank 0 alone evaluates and writes; the others are done
        return None
    tic = time.perf_counter()
    evaluation = trainer.final_evaluation()
    results = {**_run_summary(cfg, trainer, finished=True),
               "eval_seconds": time.perf_counter() - tic, **evaluation}
    results["plots"] = [str(p.name) for p in plot_run(run_dir, problem, trainer.params, results)]
    trainer.write_results(results)
    return results


def _stored_config(run_dir: Path) -> dict[str, Any]:
    """A run folder's config.json, or {} when there is none (the run folder checks then give
    the clear error) or its run saved nothing (it starts afresh:
    :func:`metarl.runs.rundir.never_started`); a damaged one is a clear error."""
    path = Path(run_dir)
    if not (path / CONFIG_NAME).is_file() or never_started(path):
        return {}
    return read_run_config(path, "resume it")


def _data_place(cfg: SupervisedConfig) -> str:
    return (f"--data-root {cfg.data_root}" if cfg.data_root is not None
            else "the default data folder (see --data-root in --help)")


def check_data(stored: dict[str, Any], digest: str | None, cfg: SupervisedConfig,
               what: str) -> None:
    """Raise a clear error if a run's recorded data digest is not that of the data just
    loaded (a run from before digests were recorded passes: it has none)."""
    recorded = stored.get("data_digest")
    if recorded is not None and recorded != digest:
        raise MetaRLError(
            f"cannot {what}: the data in {_data_place(cfg)} is not the data the run was "
            f"trained on (sha256 {str(digest)[:12]}... against {recorded[:12]}... in its "
            f"config.json); pass --data-root of that dataset"
        )


def _data_rules(cfg: SupervisedConfig, digest: str | None
                ) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]:
    """config.json's contents with the data digest, the settings an older config.json lacks
    (see :func:`metarl.runs.rundir.prepare_run_dir`), and those that may change on resume.

    A run that recorded its data digest may be resumed from another ``--data-root`` holding
    the same data: the digest decides, not the path. An older run must keep its folder.
    """
    identity = {**cfg.identity(), "data_digest": digest}
    stored = _stored_config(cfg.out_dir) if cfg.resume else {}
    added = {"batch_norm": "fast"}  # runs from before --batch-norm had the fast form
    if "data_digest" in stored:
        check_data(stored, digest, cfg, f"resume {cfg.out_dir}")
        return identity, added, (*RESUMABLE, "data_root")
    return identity, {**added, "data_digest": digest}, RESUMABLE


def _run_summary(cfg: SupervisedConfig, trainer: MetaTrainer, *, finished: bool) -> dict[str, Any]:
    """The part of results.json that describes the training itself.

    A run stopped by SIGINT/SIGTERM writes only this, with ``"finished": false`` and no test
    evaluation, so results.json never describes an earlier, shorter leg of a resumed run and
    ``reproduce_sinusoid.py`` knows to resume it.
    """
    return {
        "family": cfg.family,
        "algo": cfg.algo,
        "k_shot": cfg.k_shot,
        "n_way": cfg.n_way if cfg.family != "sinusoid" else None,
        **trainer.record(finished=finished),
        "task_batching": {"path": trainer.task_batching, "ms": trainer.batching_ms},
        "config": cfg.identity(),
        "val_history": trainer.val_history,
    }


def plot_run(
    run_dir: Path, problem: SupervisedProblem, params: dict[str, torch.Tensor],
    results: dict[str, Any],
) -> list[Path]:
    """training.png, adaptation.png and (sinusoid) predictions.png for one run."""
    label = f"{results['algo']} ({results['family']}, K={results['k_shot']})"
    out = [plot_training_curves(read_metrics(run_dir), run_dir / "training.png", title=label,
                                panels=SUPERVISED_PANELS)]
    test = results["test"]
    metric = "accuracy" if "accuracy_mean" in test else "loss"
    ylabel = "test accuracy" if metric == "accuracy" else "mean squared error"
    out.append(plot_adaptation_curves([(label, test)], run_dir / "adaptation.png",
                                      metric=metric, ylabel=ylabel, title="held-out tasks"))
    if results["family"] == "sinusoid":
        lr = test["inner_lr"]
        out.append(plot_sinusoid_predictions([(results["algo"], problem, params)],
                                             run_dir / "predictions.png",
                                             k_shot=results["k_shot"], lr=lr))
    return out


def load_run(
    run_dir: Path,
    checkpoint: Path | None = None,
    device: str | None = None,
    *,
    k_shot: int | None = None,
    data_root: Path | None = None,
) -> tuple[SupervisedConfig, SupervisedProblem, Path]:
    """Rebuild a run's problem from its config.json and load a checkpoint into its model.

    The newest valid checkpoint is used unless ``checkpoint`` names one; ``device`` and
    ``k_shot`` may differ from the run's (e.g. evaluate a K=10 model with 5 points), and
    ``data_root`` from the run's when the dataset has moved (its digest must match the run's).
    """
    if not (Path(run_dir) / CONFIG_NAME).is_file():
        raise MetaRLError(f"{run_dir} holds no run (no config.json); pass a run folder")
    stored = read_run_config(run_dir, "load its model")
    known = {f.name for f in fields(SupervisedConfig)}
    values = {k: v for k, v in stored.items() if k in known}
    for key in ("out_dir", "data_root"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    cfg = SupervisedConfig(**values)
    if device is not None:
        cfg.device = device
    if k_shot is not None:
        cfg.k_shot = k_shot
    if data_root is not None:
        cfg.data_root = Path(data_root)
    cfg.validate()
    problem = build_problem(cfg)
    if stored.get("data_digest") is not None:
        check_data(stored, data_digest(problem), cfg, f"evaluate {run_dir}")
    if checkpoint is None:
        # damaged newer checkpoints are reported (and kept), not passed over in silence
        found = load_latest_state(CheckpointDir(Path(run_dir) / "checkpoints"), SUPERVISED,
                                  cfg.device)
        if found is None:
            raise CheckpointError(f"{run_dir}/checkpoints holds no checkpoint to evaluate")
        path, state = found
    else:
        path, state = checkpoint, load_checkpoint(checkpoint, map_location=cfg.device)
    check_kind(state, path, SUPERVISED)
    check_signature(state["model_signature"], problem.model, path)
    problem.model.load_state_dict(state["model"])
    problem.model.to(cfg.device)
    return cfg, problem, path

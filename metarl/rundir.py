"""One output folder per run, and the rules that keep a user's earlier runs safe.

A run folder holds ``config.json``, ``checkpoints/``, TensorBoard event files under ``tb/``,
``metrics.jsonl``, ``results.json`` and the PNG plots. :func:`prepare_run_dir` refuses to
write into a folder that holds anything else or another run, unless the user asked to resume
that very run (same configuration apart from the fields allowed to change on resume).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from metarl.distributed import DistContext
from metarl.errors import MetaRLError
from metarl.io import atomic_write_json, unwritable_reason
from metarl.runlock import lock_run_dir

CONFIG_NAME = "config.json"
LEFT_BEFORE_ANY_RESULT = frozenset({CONFIG_NAME, "checkpoints", "tb", "metrics.jsonl"})
"""What a run folder can hold when its run stopped before saving anything (see
:func:`never_started`): the config, an empty checkpoint folder, TensorBoard's header-only event
files and an empty metrics log."""
RESUMABLE = ("iterations", "resume", "out_dir", "device", "threads", "torch_threads", "compile",
             "eval_every", "checkpoint_every", "keep_checkpoints", "log_every")
"""Settings that may change when a run is resumed: they do not change what is computed
(``out_dir`` among them, so that a run folder moved or unpacked elsewhere stays resumable)."""


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: ``{"trpo": {"max_kl": δ}}`` -> ``{"trpo.max_kl": δ}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str],
          added: Mapping[str, Any]) -> list[str]:
    """Dotted names of the settings that differ; a setting in ``added`` that an older
    config.json lacks counts as having its value there."""
    old_flat, new_flat = {**added, **_flat(old)}, _flat(new)
    skip = set(ignore)
    keys = {k for k in set(old_flat) | set(new_flat) if k not in skip}
    return sorted(k for k in keys if old_flat.get(k) != new_flat.get(k))


def check_writable(path: Path) -> None:
    """Raise a clear error if ``path`` (created if needed) cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason: str | None = err.strerror
    else:
        reason = unwritable_reason(path)
    if reason is not None:
        raise MetaRLError(
            f"cannot write to output directory {path} ({reason}); choose a writable --out-dir"
        )


def never_started(path: Path) -> bool:
    """Whether the run in ``path`` stopped before it saved anything worth keeping.

    Scripts write ``config.json`` first and then set up (environments, data, optional
    packages); a failure there leaves a folder with the config and nothing else of value. Such
    a folder must not block the corrected rerun with "already holds a run". It counts as never
    started when it has no ``results.json``, no file under ``checkpoints/``, no row in
    ``metrics.jsonl`` and nothing outside :data:`LEFT_BEFORE_ANY_RESULT`.
    """
    names = {p.name for p in path.iterdir() if p.name != ".metarl-write-test"}
    if not names <= LEFT_BEFORE_ANY_RESULT:
        return False
    checkpoints = path / "checkpoints"
    if checkpoints.is_dir() and any(p.is_file() for p in checkpoints.rglob("*")):
        return False
    metrics = path / "metrics.jsonl"
    return not (metrics.is_file() and metrics.read_text().strip())


def prepare_run_dir(
    out_dir: str | os.PathLike[str],
    config: Mapping[str, Any],
    *,
    resume: bool,
    resumable_fields: Iterable[str] = RESUMABLE,
    added: Mapping[str, Any] | None = None,
    update: bool = True,
) -> Path:
    """Create or reopen a run folder for ``config``; never clobber another run.

    * new or empty folder: write ``config.json``; so too for a folder whose run stopped
      before it saved anything (:func:`never_started`), with or without ``resume``, whatever
      its settings were: there is nothing in it to keep or to continue from;
    * folder with a ``config.json`` and ``resume=True``: the configs must agree except for
      ``resumable_fields`` (e.g. more iterations); the stored config is updated unless
      ``update`` is False (a finished run that is not trained further: see
      :func:`open_run_dir`). ``added`` maps settings introduced after older runs were
      started (dotted names) to the value those runs implicitly used, so they stay resumable;
    * folder with a run and ``resume=False``, or with foreign files: a clear error;
    * folder in use by another live process: a clear error (:mod:`metarl.runlock`); the
      folder stays locked for this process until its script's ``main`` ends.
    """
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise MetaRLError(f"--out-dir {path} is a file, not a directory; choose another path")
    if resume and not path.exists():  # before check_writable creates it
        raise MetaRLError(f"nothing to resume: {path} does not exist; drop --resume to start a "
                          "new run there")
    check_writable(path)
    lock_run_dir(path)  # before looking inside: another process may be setting up there
    config_path = path / CONFIG_NAME
    contents = [p.name for p in path.iterdir() if p.name != ".metarl-write-test"]
    if config_path.is_file() and never_started(path):
        print(f"{path} holds only the settings of a run that stopped before saving anything; "
              "starting it afresh")
    elif config_path.is_file():
        if not resume:
            raise MetaRLError(
                f"output directory {path} already holds a run; pass --resume to continue it "
                "or choose a new --out-dir (nothing was overwritten)"
            )
        try:
            old = json.loads(config_path.read_text())
        except json.JSONDecodeError:
            raise MetaRLError(
                f"{config_path} is not valid JSON; this folder's run cannot be resumed"
            ) from None
        theirs, ours = written_by(old), written_by(config)
        if theirs and ours and theirs != ours:
            raise MetaRLError(
                f"cannot resume {path}: it holds a {theirs} run, not a {ours} one; resume it "
                f"with {theirs} or choose a new --out-dir (nothing was changed)"
            )
        changed = _diff(old, config, resumable_fields, added or {})
        if changed:
            raise MetaRLError(
                f"cannot resume {path}: its run used different settings for "
                f"{', '.join(changed)}; resume with the same settings or choose a new --out-dir"
            )
    elif contents:
        raise MetaRLError(
            f"output directory {path} is not empty and holds no metarl run; "
            "choose a new or empty --out-dir"
        )
    elif resume:
        raise MetaRLError(f"nothing to resume in {path}: it holds no run; drop --resume")
    if update:
        atomic_write_json(config_path, dict(config))
    return path


def written_by(config: Mapping[str, Any]) -> str | None:
    """The script whose run a config.json describes, told by a setting only it has (None if
    unknown): resuming a folder with another script's settings is a mistake worth naming
    rather than listing every setting that differs."""
    for key, script in (("baseline", "baselines_rl.py"), ("family", "train_supervised.py"),
                        ("env", "train_rl.py")):
        if key in config:
            return script
    return None


def is_finished(results: Mapping[str, Any]) -> bool:
    """Whether a run's results.json comes from a completed run.

    A stopped run's file says ``"finished": false``; files written before that key existed
    were only ever written by complete runs.
    """
    return results.get("finished", True) is not False


def completed_results(out_dir: str | os.PathLike[str], iterations: int) -> dict[str, Any] | None:
    """The results.json of a finished run in ``out_dir`` that has reached ``iterations``, else
    None (no run, a stopped one, or one resumed for more iterations)."""
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # resuming rewrites it
    if not is_finished(results) or int(results.get("iterations", -1)) < iterations:
        return None
    return results


def open_run_dir(
    ctx: DistContext,
    out_dir: str | os.PathLike[str],
    config: Mapping[str, Any],
    *,
    iterations: int,
    resume: bool,
    added: Mapping[str, Any] | None = None,
    resumable_fields: Iterable[str] = RESUMABLE,
) -> dict[str, Any] | None:
    """The training scripts' :func:`prepare_run_dir`: run on rank 0, every rank waits for it.

    Returns None when there is training to do. ``--resume`` of a run that has already
    finished ``iterations`` returns that run's results instead and leaves every file of it
    as it is (config.json included, rather than rewriting it with the new invocation's
    settings); rank 0 says so, and the caller stops there.
    """
    done = completed_results(out_dir, iterations) if resume else None

    def prepare() -> None:
        prepare_run_dir(out_dir, config, resume=resume, added=added,
                        resumable_fields=resumable_fields, update=done is None)
        if resume and done is None:
            _mark_unfinished(Path(out_dir) / "results.json")

    ctx.run_on_main(prepare)
    ctx.barrier()
    if done is not None and ctx.is_main:
        print(f"{out_dir} is a finished run ({done['iterations']} iterations); nothing was "
              f"changed (raise --iterations above {done['iterations']} to train it further)")
    return done


def _mark_unfinished(path: Path) -> None:
    """A finished run's results.json, when the run is resumed to train further: it says
    ``"finished": false`` from the start of the new leg (its best.pt and checkpoints change
    from then on), until the leg ends and rewrites it."""
    if not path.is_file():
        return
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return  # rewritten when the leg ends or stops
    if isinstance(results, dict) and is_finished(results):
        atomic_write_json(path, {**results, "finished": False})


def unique_path(path: Path, *, folder: bool = False) -> Path:
    """``path`` if free, else ``stem-2.ext``, ``stem-3.ext``... (never overwrite results).

    A ``folder``'s name has no extension, whatever dots it holds (``adapt-goal-2.37``): its
    number goes at the end (``adapt-goal-2.37-2``), not before the last dot."""
    if not path.exists():
        return path
    stem, suffix = (path.name, "") if folder else (path.stem, path.suffix)
    n = 2
    while True:
        candidate = path.with_name(f"{stem}-{n}{suffix}")
        if not candidate.exists():
            return candidate
        n += 1

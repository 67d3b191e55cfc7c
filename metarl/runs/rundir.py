"""One output folder per run, and the rules that keep a user's earlier runs safe.

A run folder holds ``config.json``, ``checkpoints/``, TensorBoard event files under ``tb/``,
``metrics.jsonl``, ``results.json`` and the PNG plots. :func:`prepare_run_dir` refuses to
write into a folder that holds anything else or another run, unless the user asked to resume
that very run (same configuration apart from the fields allowed to change on resume).

Each run has an identity, a random ``run_id`` that config.json records from the run's start and
every checkpoint carries (:class:`metarl.runs.checkpoint.CheckpointDir`): a checkpoint copied in
from another run is recognised as not this run's instead of being resumed.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from metarl.errors import MetaRLError
from metarl.runs.distributed import DistContext
from metarl.runs.io import atomic_write_json, read_json, unwritable_reason
from metarl.runs.runlock import lock_run_dir

CONFIG_NAME = "config.json"
RESULTS_NAME = "results.json"
"""The machine-readable summary of a run, written by :func:`write_results`."""
RUN_ID = "run_id"
"""The key of the run's identity in config.json (and in its checkpoints)."""
LEFT_BEFORE_ANY_RESULT = frozenset({CONFIG_NAME, "checkpoints", "tb", "metrics.jsonl"})
"""What a run folder can hold when its run stopped before saving anything (see
:func:`never_started`): the config, an empty checkpoint folder, TensorBoard's header-only event
files and an empty metrics log."""
RESUMABLE = ("iterations", "resume", "out_dir", "device", "threads", "torch_threads", "compile",
             "task_batching", "vectorize", "eval_every", "checkpoint_every", "keep_checkpoints",
             "log_every")
"""Settings that may change when a run is resumed: they do not change what is computed, at
most its rounding (``out_dir`` among them, so that a run folder moved or unpacked elsewhere
stays resumable; ``vectorize`` is the name ``task_batching`` had in older runs' config.json)."""


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


def read_run_config(run_dir: str | os.PathLike[str], purpose: str) -> dict[str, Any]:
    """The settings a run folder's config.json records, or one clear :class:`MetaRLError`
    naming the file when it is missing, unreadable, not JSON (non-UTF-8 bytes included) or
    JSON that is not an object (``[]``, ``null``): ``purpose`` says what needed it (e.g.
    "resume it"), and the message what the user can do."""
    path = Path(run_dir) / CONFIG_NAME
    advice = (f"the run's settings are needed to {purpose}: restore {CONFIG_NAME} from a copy "
              "of the run folder, or start a new run in another --out-dir")
    try:
        config = read_json(path, "a run's settings")
    except MetaRLError as err:
        raise MetaRLError(f"{err}; {advice}") from None
    if not isinstance(config, dict):
        raise MetaRLError(f"cannot read {path} as a run's settings: it holds "
                          f"{json.dumps(config)[:20]} instead of an object of settings; {advice}")
    return config


def run_id_of(run_dir: str | os.PathLike[str]) -> str | None:
    """The run id config.json records in ``run_dir``; None for a run from before run ids, a
    folder without a readable config.json, or none at all (then nothing can be told apart)."""
    try:
        config = json.loads((Path(run_dir) / CONFIG_NAME).read_bytes())
    except (OSError, ValueError):  # ValueError: JSONDecodeError and UnicodeDecodeError
        return None
    found = config.get(RUN_ID) if isinstance(config, dict) else None
    return found if isinstance(found, str) else None


def write_config(run_dir: Path, config: Mapping[str, Any], *, new_run: bool = False) -> None:
    """Write ``config`` as the run's config.json with the run's id: a new one for a
    ``new_run``, else the one the folder's run has (a new one too for a run from before run
    ids, whose earlier checkpoints then count as unknown, accepted, rather than foreign)."""
    run_id = (None if new_run else run_id_of(run_dir)) or uuid.uuid4().hex
    atomic_write_json(run_dir / CONFIG_NAME, {RUN_ID: run_id, **dict(config)})


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

    * new or empty folder: write ``config.json`` with a new run id; so too for a folder whose
      run stopped before it saved anything (:func:`never_started`), with or without
      ``resume``, whatever its settings were: there is nothing in it to keep or continue from;
    * folder with a ``config.json`` and ``resume=True``: the configs must agree except for
      ``resumable_fields`` (e.g. more iterations) and the run id; the stored config is updated
      (keeping its run id) unless ``update`` is False (see :func:`open_run_dir`). ``added``
      maps settings introduced after older runs were started (dotted names) to the value
      those runs implicitly used, so they stay resumable;
    * folder with a run and ``resume=False``, or with foreign files: a clear error;
    * folder in use by another live process: a clear error (:mod:`metarl.runs.runlock`); the
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
        write_config(path, config, new_run=True)  # a new run: nothing of the old one to keep
    elif config_path.is_file():
        if not resume:
            raise MetaRLError(
                f"output directory {path} already holds a run; pass --resume to continue it "
                "or choose a new --out-dir (nothing was overwritten)"
            )
        old = read_run_config(path, "resume it")
        theirs, ours = written_by(old), written_by(config)
        if theirs and ours and theirs != ours:
            raise MetaRLError(
                f"cannot resume {path}: it holds a `{theirs}` run, not a `{ours}` one; resume it "
                f"with `{theirs}` or choose a new --out-dir (nothing was changed)"
            )
        changed = _diff(old, config, (*resumable_fields, RUN_ID), added or {})
        if changed:
            raise MetaRLError(
                f"cannot resume {path}: its run used different settings for "
                f"{', '.join(changed)}; resume with the same settings or choose a new --out-dir"
            )
        if update:
            write_config(path, config)
    elif contents:
        raise MetaRLError(
            f"output directory {path} is not empty and holds no metarl run; "
            "choose a new or empty --out-dir"
        )
    elif resume:
        raise MetaRLError(f"nothing to resume in {path}: it holds no run; drop --resume")
    else:
        write_config(path, config, new_run=True)
    return path


def written_by(config: Mapping[str, Any]) -> str | None:
    """The command whose run a config.json describes, told by a setting only it has (None if
    unknown): resuming a folder with another command's settings is a mistake worth naming
    rather than listing every setting that differs."""
    for key, command in (("baseline", "metarl baselines"), ("family", "metarl train supervised"),
                         ("env", "metarl train rl")):
        if key in config:
            return command
    return None


def is_finished(results: Mapping[str, Any]) -> bool:
    """Whether a run's results.json comes from a completed run.

    A stopped run's file says ``"finished": false``; files written before that key existed
    were only ever written by complete runs.
    """
    return results.get("finished", True) is not False


def write_results(run_dir: str | os.PathLike[str], results: Mapping[str, Any]) -> Path:
    """Write a run's results.json atomically: a reader (or a resume deciding whether the run
    is finished, :func:`completed_results`) sees the previous file or this one, never a part."""
    path = Path(run_dir) / RESULTS_NAME
    atomic_write_json(path, dict(results))
    return path


def completed_results(out_dir: str | os.PathLike[str], iterations: int) -> dict[str, Any] | None:
    """The results.json of a finished run in ``out_dir`` that has reached ``iterations``, else
    None (no run, a stopped one, or one resumed for more iterations)."""
    path = Path(out_dir) / RESULTS_NAME
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_bytes())
    except ValueError:  # not JSON, or not UTF-8 text: resuming rewrites it
        return None
    if not isinstance(results, dict) or not is_finished(results):
        return None
    done = results.get("iterations")
    return results if isinstance(done, int) and done >= iterations else None


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

    A resume with training to do changes nothing either: the checkpoint it continues from is
    checked next (by the trainer), and only when that has passed does the caller call
    :func:`start_resumed_leg`, which updates config.json and results.json. So a resume that
    fails at any check leaves the folder as it was, byte for byte.
    """
    done = completed_results(out_dir, iterations) if resume else None
    ctx.run_on_main(lambda: prepare_run_dir(out_dir, config, resume=resume, added=added,
                                            resumable_fields=resumable_fields,
                                            update=not resume))
    ctx.barrier()
    if done is not None and ctx.is_main:
        print(f"{out_dir} is a finished run ({done['iterations']} iterations); nothing was "
              f"changed (raise --iterations above {done['iterations']} to train it further)")
    return done


def start_resumed_leg(ctx: DistContext, out_dir: str | os.PathLike[str],
                      config: Mapping[str, Any]) -> None:
    """Bring a resumed run's folder up to date, once every check of the resume has passed
    (:func:`open_run_dir`, then the trainer's checkpoint checks): config.json gets this
    invocation's settings (more iterations, say; the run id stays) and a finished run's
    results.json says ``"finished": false``. Rank 0 writes; every rank waits for it."""

    def start() -> None:
        write_config(Path(out_dir), config)
        _mark_unfinished(Path(out_dir) / RESULTS_NAME)

    ctx.run_on_main(start)
    ctx.barrier()


def _mark_unfinished(path: Path) -> None:
    """A finished run's results.json, when the run is resumed to train further: it says
    ``"finished": false`` from the start of the new leg (its best.pt and checkpoints change
    from then on), until the leg ends and rewrites it."""
    if not path.is_file():
        return
    try:
        results = json.loads(path.read_bytes())
    except ValueError:  # not JSON, or not UTF-8 text
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

"""Where the few-shot datasets live on disk, and how their npz caches are written and read.

Every dataset has one folder (its "root"), chosen in this order:

1. the path the caller passes (``--data-root`` on the command line);
2. the environment variable ``METARL_<NAME>`` (e.g. ``METARL_OMNIGLOT``);
3. ``<repo>/../shared/data/<name>`` when it holds the dataset (the project's shared data
   checkout, which the tests and CI read);
4. ``~/.cache/metarl/<name>``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from metarl.errors import MetaRLError, require
from metarl.runs.io import atomic_writer

REPO = Path(__file__).resolve().parents[1]
"""The source checkout (``supervised/`` sits at its top level in an editable install)."""


def shared_data_dir(name: str) -> Path:
    """``<repo>/../shared/data/<name>``: the project's shared, read-only data folder."""
    return REPO.parent / "shared" / "data" / name


def resolve_root(name: str, explicit: str | os.PathLike[str] | None, marker: str) -> Path:
    """The folder of dataset ``name``, by the rules of this module.

    Args:
        name: dataset name, e.g. ``"omniglot"``.
        explicit: a path the user gave, which always wins.
        marker: a file whose presence makes the shared folder count as holding the dataset.
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(f"METARL_{name.upper()}")
    if env:
        return Path(env).expanduser()
    shared = shared_data_dir(name)
    if (shared / marker).is_file():
        return shared
    return Path.home() / ".cache" / "metarl" / name


def write_npz(path: Path, arrays: dict[str, np.ndarray], compress: bool) -> Path:
    """Save ``arrays`` (in their order) as ``path`` atomically
    (:func:`metarl.runs.io.atomic_writer`), so an interrupted conversion never leaves a truncated
    cache behind and two processes converting at once do not write into one temporary file."""
    save: Callable[..., None] = np.savez_compressed if compress else np.savez
    with atomic_writer(path) as f:
        save(f, **arrays)
    return path


ZIP_MAGIC = b"PK\x03\x04"
"""The first bytes of an npz file (a zip archive of ``.npy`` files)."""


def read_npz(path: Path, keys: tuple[str, ...], remedy: str) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of ``path``; a missing key or a damaged file is one clear error
    ending in ``remedy`` (what the user should do).

    A file that is not a zip archive at all (random bytes, a ``.npy`` or other file saved
    under the name) is named as such before numpy reads it: numpy would take it for a pickle
    and suggest ``allow_pickle=True``, advice that runs foreign bytes as code and fixes nothing.
    """
    try:
        with path.open("rb") as f:
            head = f.read(len(ZIP_MAGIC))
        # shorter than the magic: a truncated file, which np.load reports as such
        require(len(head) < len(ZIP_MAGIC) or head == ZIP_MAGIC,
                f"{path} is not an npz file (it is not a zip archive): it is damaged or another "
                f"kind of file; {remedy}")
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            require(not missing, f"{path} lacks the key(s) {missing}; {remedy}")
            return {k: data[k] for k in keys}
    except MetaRLError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise MetaRLError(f"{path} is truncated or corrupt ({err}); {remedy}") from None

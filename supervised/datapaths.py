"""Where the few-shot datasets live on disk.

Every dataset has one folder (its "root"), chosen in this order:

1. the path the caller passes (``--data-root`` on the command line);
2. the environment variable ``METARL_<NAME>`` (e.g. ``METARL_OMNIGLOT``);
3. ``<repo>/../shared/data/<name>`` when it holds the dataset (the project's shared data
   checkout, which the tests and CI read);
4. ``~/.cache/metarl/<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path

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

"""Convert the few-shot image datasets once into the caches that training reads.

Examples::

    # Omniglot: images_background.zip / images_evaluation.zip (or their extracted folders)
    # in the data root are converted to npz; --download fetches the zips when online.
    metarl data omniglot --data-root ~/data/omniglot --download

    # MiniImagenet: JPEGs anywhere under --images-dir, regrouped by Ravi & Larochelle's lists.
    metarl data miniimagenet --images-dir ~/split_minidataset --data-root ~/data/miniimagenet \\
        --csv-dir ../shared/data/miniimagenet
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro
import tyro.extras

from metarl.runs.cli import cli_errors
from metarl.supervised.miniimagenet import prepare_miniimagenet
from metarl.supervised.omniglot import prepare_omniglot


@dataclass
class Omniglot:
    """Convert Omniglot's original release into images_background.npz / images_evaluation.npz."""

    data_root: Path | None = None
    """Folder holding the zips or extracted folders, and receiving the npz files (default:
    $METARL_OMNIGLOT, else ../shared/data/omniglot when it has the data, else
    ~/.cache/metarl/omniglot)."""
    download: bool = False
    """Download missing zips from github.com/brendenlake/omniglot (needs a network)."""


@dataclass
class MiniImagenet:
    """Convert MiniImagenet JPEGs into miniimagenet_{train,val,test}.npz (uint8, 84×84 RGB)."""

    images_dir: Path
    """Folder with the JPEGs named as in the split lists (flat or in sub-folders)."""
    data_root: Path | None = None
    """Cache folder for the npz files (default: $METARL_MINIIMAGENET, else
    ../shared/data/miniimagenet when it holds the cache, else ~/.cache/metarl/miniimagenet).
    Keep it out of the repository."""
    csv_dir: Path | None = None
    """Folder with train.csv/val.csv/test.csv (default: the data root, else
    ../shared/data/miniimagenet)."""


def prepare(cfg: Omniglot | MiniImagenet) -> Path:
    """Convert the dataset ``cfg`` names; returns the folder of its caches."""
    if isinstance(cfg, Omniglot):
        folder = prepare_omniglot(cfg.data_root, download=cfg.download)
    else:
        folder = prepare_miniimagenet(cfg.images_dir, cfg.data_root, cfg.csv_dir)
    print(f"ready: {folder}")
    return folder


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    """``metarl data omniglot|miniimagenet``: :func:`prepare` with the dataset's flags;
    returns the folder of its caches."""
    cfg = tyro.extras.subcommand_cli_from_dict(
        {"omniglot": Omniglot, "miniimagenet": MiniImagenet}, args=argv,
        description=__doc__)
    return prepare(cfg)

"""MiniImagenet (Vinyals et al., 2016) with Ravi & Larochelle's (2017) class split.

The split lists ``train.csv`` / ``val.csv`` / ``test.csv`` (header ``filename,label``; 64 / 16 /
20 classes of 600 images each) name every image and its ImageNet WordNet id.
:func:`prepare_miniimagenet` finds those files anywhere under an images folder -- flat (Ravi's
``images/``), one folder per class (MAML's ``proc_images.py``), or any other grouping such as
the per-image train/val folders of github.com/Deo0330/split_minidataset -- decodes them to
84×84 RGB (resizing with Lanczos, as MAML's ``proc_images.py`` does, when a file has another
size), and writes one uncompressed npz per split into a cache folder:

| key | shape | dtype | meaning |
| --- | --- | --- | --- |
| ``images`` | ``(C, 600, 3, 84, 84)`` | uint8 | RGB, channels first (the network's layout) |
| ``classes`` | ``(C,)`` | ``<U…`` | WordNet ids, sorted; class ``c`` is ``classes[c]`` |
| ``filenames`` | ``(C, 600)`` | ``<U…`` | source file of each image, sorted within a class |

The images are ImageNet's (non-commercial research terms): keep the cache out of the repo.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from metarl.errors import MetaRLError, require
from metarl.supervised.datafiles import read_npz, resolve_root, shared_data_dir, write_npz

SPLITS = ("train", "val", "test")
RAVI_CLASSES = {"train": 64, "val": 16, "test": 20}
"""Classes per split in Ravi & Larochelle's lists (600 images each)."""
IMAGE_SIZE = 84
KEYS = ("images", "classes", "filenames")


def miniimagenet_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder holding ``miniimagenet_<split>.npz``; see :mod:`.datafiles`."""
    return resolve_root("miniimagenet", root, marker="miniimagenet_train.npz")


def cache_path(split: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where the converted ``split`` lives."""
    return miniimagenet_root(root) / f"miniimagenet_{split}.npz"


def find_csv_dir(csv_dir: str | os.PathLike[str] | None, root: Path) -> Path:
    """The folder with the split lists: ``csv_dir``, else the cache folder, else the shared one."""
    if csv_dir is not None:
        return Path(csv_dir)
    for folder in (root, shared_data_dir("miniimagenet")):
        if (folder / "train.csv").is_file():
            return folder
    raise MetaRLError(
        f"no MiniImagenet split lists (train.csv, val.csv, test.csv) in {root}; pass their "
        "folder (Ravi & Larochelle's lists, e.g. from github.com/yaoyao-liu/mini-imagenet-tools)"
    )


def read_split_csv(path: Path) -> dict[str, list[str]]:
    """``{wnid: [file names]}`` from one of Ravi & Larochelle's split lists."""
    require(path.is_file(), f"split list {path} not found")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    require(
        bool(rows) and [c.strip() for c in rows[0]] == ["filename", "label"],
        f"{path} does not start with the header 'filename,label'; use Ravi & Larochelle's lists",
    )
    by_class: dict[str, list[str]] = defaultdict(list)
    for line, row in enumerate(rows[1:], start=2):
        require(len(row) == 2, f"{path}, line {line}: expected 'filename,label', got {row}")
        by_class[row[1]].append(row[0])
    require(bool(by_class), f"{path} lists no images")
    return dict(by_class)


def index_images(images_dir: Path) -> dict[str, Path]:
    """Every image file under ``images_dir`` by its file name (which must be unique)."""
    require(images_dir.is_dir(), f"MiniImagenet images folder {images_dir} does not exist")
    found: dict[str, Path] = {}
    for folder, _, files in os.walk(images_dir):
        for name in files:
            if name.lower().endswith((".jpg", ".jpeg", ".png")):
                path = Path(folder) / name
                require(
                    name not in found,
                    f"{name} appears twice under {images_dir} ({found.get(name)} and {path}); "
                    "keep one copy of every image",
                )
                found[name] = path
    return found


def decode_image(path: Path) -> np.ndarray:
    """One image as ``(3, 84, 84)`` uint8 RGB (Lanczos-resized when it has another size)."""
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:
        raise MetaRLError(
            f"{path} is truncated or not an image ({err}); replace it with a good copy"
        ) from None
    if rgb.size != (IMAGE_SIZE, IMAGE_SIZE):
        rgb = rgb.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(rgb).transpose(2, 0, 1)


def convert_split(
    csv_path: Path, index: dict[str, Path], images_dir: Path
) -> dict[str, np.ndarray]:
    """Decode every image ``csv_path`` lists into the arrays of :data:`KEYS`."""
    by_class = read_split_csv(csv_path)
    listed = sum(len(v) for v in by_class.values())
    present = sum(name in index for names in by_class.values() for name in names)
    require(
        present > 0,
        f"none of the {listed} images {csv_path.name} lists is under {images_dir}; point to the "
        "folder holding the JPEGs named as in the CSV (flat, or in per-class folders), e.g. "
        f"{next(iter(by_class.values()))[0]}",
    )
    for wnid, names in sorted(by_class.items()):
        missing = [n for n in names if n not in index]
        require(
            len(missing) < len(names),
            f"class {wnid} of {csv_path.name} is missing: none of its {len(names)} images is "
            f"under {images_dir}",
        )
        if missing:
            raise MetaRLError(
                f"{len(missing)} of the {len(names)} images of class {wnid} ({csv_path.name}) "
                f"are missing under {images_dir}, e.g. {missing[0]}"
            )
    sizes = {len(v) for v in by_class.values()}
    require(
        len(sizes) == 1,
        f"{csv_path.name} lists different numbers of images per class ({sorted(sizes)}); "
        "episodes need the same number for every class",
    )
    classes = sorted(by_class)
    filenames = np.array([sorted(by_class[c]) for c in classes])
    images = np.empty((*filenames.shape, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for c in range(len(classes)):
        for i, name in enumerate(filenames[c]):
            images[c, i] = decode_image(index[name])
    return {"images": images, "classes": np.array(classes), "filenames": filenames}


def prepare_miniimagenet(
    images_dir: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    csv_dir: str | os.PathLike[str] | None = None,
    splits: tuple[str, ...] = SPLITS,
) -> Path:
    """Convert the images ``<split>.csv`` lists into ``root/miniimagenet_<split>.npz``.

    Splits already in the cache are left alone. Returns the cache folder.
    """
    folder = miniimagenet_root(root)
    lists = find_csv_dir(csv_dir, folder)
    images = Path(images_dir)
    todo = [s for s in splits if not cache_path(s, folder).is_file()]
    index = index_images(images) if todo else {}
    for split in todo:
        arrays = convert_split(lists / f"{split}.csv", index, images)
        write_npz(cache_path(split, folder), arrays, compress=False)
    return folder


def load_split(split: str, root: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """One converted split, checked against the layout in this module's docstring."""
    require(split in SPLITS, f"unknown MiniImagenet split {split!r}; choose one of {SPLITS}")
    path = cache_path(split, root)
    require(
        path.is_file(),
        f"{path} not found; convert the images first with `metarl data miniimagenet "
        "--images-dir DIR` (or prepare_miniimagenet()), or pass --data-root",
    )
    arrays = read_npz(path, KEYS, "delete it and convert the images again")
    images = arrays["images"]
    require(
        images.dtype == np.uint8
        and images.ndim == 5
        and images.shape[2:] == (3, IMAGE_SIZE, IMAGE_SIZE)
        and arrays["classes"].shape == images.shape[:1]
        and arrays["filenames"].shape == images.shape[:2],
        f"{path} does not have the documented layout (uint8 images (C, M, 3, {IMAGE_SIZE}, "
        f"{IMAGE_SIZE}) with matching classes and filenames); delete it and convert again",
    )
    return arrays

"""Omniglot (Lake et al., 2015): the original release, its npz cache, and MAML's protocol.

Two layers:

* **The release.** :func:`read_release` reads one of the release's two sets
  (``images_background`` / ``images_evaluation``) from its zip or its extracted
  ``<alphabet>/<character>/<NNNN_DD>.png`` folders; :func:`prepare_omniglot` converts both,
  once, into ``images_background.npz`` / ``images_evaluation.npz`` in the layout of the project's
  shared copy (``../shared/data/omniglot/README.md``: 105×105 uint8 images, 1 = background,
  0 = ink, sorted by alphabet, character and drawing), downloading the zips from
  github.com/brendenlake/omniglot when asked and a network exists. Conversions of the full
  release are checked against the known content digests (sha256 of ``images.tobytes()``).
* **The protocol** of MAML section 5.2 (:func:`omniglot_splits`): the 1623 characters of both
  sets pooled, shuffled with a fixed seed, 1100 for meta-training, 100 for validation and the
  remaining 423 for testing (the original code's ``num_train=1200`` of which ``num_val=100``
  are held out); images resampled to 28×28 and inverted so ink is bright; every character
  also seen rotated by 90°, 180° and 270° as new classes (Santoro et al., 2016)
  (:class:`OmniglotProtocol` holds the seed and the counts).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from metarl.errors import MetaRLError, require
from metarl.runs.io import atomic_writer
from metarl.supervised.datafiles import read_npz, resolve_root, write_npz

SETS = ("images_background", "images_evaluation")
"""The release's two sets (its "train" and "test" alphabets); the protocol pools them."""

CONTENT_SHA256 = {
    "images_background": "5136181e46a5c4481987a003a75de2f4cf3f818021561dc11172103e93786500",
    "images_evaluation": "7d185baeb97389a40b707202ec2d5748c285d5bc14f99203039b1f1532988399",
}
"""sha256 of ``images.tobytes()`` of each set in the npz layout (shared data README)."""

RELEASE_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{name}.zip"
"""Where the original zips live (github.com/brendenlake/omniglot, folder ``python/``)."""

IMAGE_SIZE = 105
DRAWINGS = 20
KEYS = ("images", "alphabet", "character", "drawing", "label")
_DRAWING_NAME = re.compile(r"^(\d{4})_(\d{2})\.png$")

Resample = Literal["nearest", "lanczos"]


def omniglot_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding (or to hold) the two npz files; see :mod:`.datafiles`."""
    return resolve_root("omniglot", root, marker=f"{SETS[0]}.npz")


def content_digest(images: np.ndarray) -> str:
    """sha256 of ``images.tobytes()`` (C order): independent of the npz container."""
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


# --- reading the original release --------------------------------------------------------------

Entry = tuple[tuple[str, str, str], Callable[[], bytes], str]
"""``((alphabet, character, drawing), read_bytes, where)`` of one PNG of the release."""


def _zip_entries(path: Path) -> Iterator[Entry]:
    try:
        archive = zipfile.ZipFile(path)
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise MetaRLError(
            f"{path} is truncated or not a zip file ({err}); download it again"
        ) from None
    for name in names:
        parts = name.split("/")
        if len(parts) >= 3 and parts[-1].endswith(".png") and "__MACOSX" not in parts:
            yield (parts[-3], parts[-2], parts[-1]), functools.partial(archive.read, name), (
                f"{path}:{name}"
            )


def _dir_entries(path: Path) -> Iterator[Entry]:
    for png in path.glob("*/*/*.png"):
        yield (png.parts[-3], png.parts[-2], png.name), png.read_bytes, str(png)


def decode_drawing(read: Callable[[], bytes], where: str) -> np.ndarray:
    """One release PNG as a 105×105 uint8 array, 1 = background and 0 = ink."""
    try:
        img = Image.open(io.BytesIO(read()))
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise MetaRLError(
            f"{where} is truncated or not a PNG image ({err}); replace it with the original file"
        ) from None
    require(
        img.size == (IMAGE_SIZE, IMAGE_SIZE),
        f"{where} is {img.size[0]}x{img.size[1]} pixels, but the original release's drawings "
        f"are {IMAGE_SIZE}x{IMAGE_SIZE}; use the unmodified release",
    )
    if img.mode == "1":
        return np.asarray(img, dtype=bool).astype(np.uint8)
    grey = np.asarray(img.convert("L"))
    require(
        bool(np.isin(grey, (0, 255)).all()),
        f"{where} is not a black-and-white drawing; use the unmodified release",
    )
    return (grey // 255).astype(np.uint8)


def read_release(source: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read one set of the release (a zip, or its extracted folder) into the npz layout.

    ``source`` is ``images_background.zip`` (or ``images_evaluation.zip``), or a folder of
    ``<alphabet>/<character>/<NNNN_DD>.png``. Returns the arrays of :data:`KEYS`, sorted by
    (alphabet, character, drawing), with ``label`` counting characters from 0.
    """
    path = Path(source)
    if path.is_dir():
        entries = list(_dir_entries(path))
    elif path.is_file():
        entries = list(_zip_entries(path))
    else:
        raise MetaRLError(f"{path} does not exist; give the release's zip or extracted folder")
    require(
        bool(entries),
        f"no Omniglot drawings found in {path}: expected <alphabet>/<character>/<NNNN_DD>.png "
        "(the layout of the release's images_background and images_evaluation folders)",
    )
    entries.sort(key=lambda e: e[0])
    keys = [e[0] for e in entries]
    characters = sorted({(a, c) for a, c, _ in keys})
    per_character = len(keys) // max(len(characters), 1)
    if len(keys) != DRAWINGS * len(characters):
        counts: dict[tuple[str, str], int] = {}
        for a, c, _ in keys:
            counts[(a, c)] = counts.get((a, c), 0) + 1
        bad = next(k for k, n in counts.items() if n != DRAWINGS)
        raise MetaRLError(
            f"{path}: {bad[0]}/{bad[1]} has {counts[bad]} drawings, expected {DRAWINGS}; "
            "the copy is incomplete, use the full release"
        )
    for _, _, drawing in keys:
        require(
            _DRAWING_NAME.match(drawing) is not None,
            f"{path}: unexpected file name {drawing!r}; release drawings are named NNNN_DD.png",
        )
    images = np.stack([decode_drawing(read, where) for _, read, where in entries])
    return {
        "images": images,
        "alphabet": np.array([a for a, _, _ in keys]),
        "character": np.array([c for _, c, _ in keys]),
        "drawing": np.array([d for _, _, d in keys]),
        "label": np.repeat(np.arange(len(characters), dtype=np.int16), per_character),
    }


def save_npz(arrays: dict[str, np.ndarray], path: str | os.PathLike[str]) -> Path:
    """Write one converted set in the documented layout (``numpy.savez_compressed``)."""
    return write_npz(Path(path), {k: arrays[k] for k in KEYS}, compress=True)


def load_set(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load one converted set, checking it has the documented layout."""
    path = Path(path)
    arrays = read_npz(path, KEYS, "delete it and convert the release again")
    images, label = arrays["images"], arrays["label"]
    n = images.shape[0]
    require(
        images.dtype == np.uint8
        and images.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE)
        and n % DRAWINGS == 0
        and label.shape == (n,)
        and bool((label == np.arange(n) // DRAWINGS).all()),
        f"{path} does not have the documented layout (uint8 images (N, {IMAGE_SIZE}, "
        f"{IMAGE_SIZE}), {DRAWINGS} consecutive drawings per character); convert it again",
    )
    return arrays


# --- the cache folder and the optional download ------------------------------------------------


def download_release(name: str, folder: Path, timeout: float = 60.0) -> Path:
    """Download ``<name>.zip`` of the original release into ``folder``."""
    url = RELEASE_URL.format(name=name)
    target = folder / f"{name}.zip"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_writer(target) as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise MetaRLError(
            f"could not download {url} ({err}); without a network, put images_background.zip "
            f"and images_evaluation.zip from github.com/brendenlake/omniglot (folder python/), "
            f"or their extracted folders, into {folder}"
        ) from None
    return target


def prepare_omniglot(
    root: str | os.PathLike[str] | None = None, download: bool = False
) -> Path:
    """Make sure ``root`` holds both sets as npz files; return ``root``.

    A set already converted is left alone. Otherwise it is converted from
    ``root/<set>.zip`` or the extracted folder ``root/<set>/``, or, with ``download=True``,
    from the zip fetched from github.com/brendenlake/omniglot. Every conversion is checked
    against the release's content digest before it is written.
    """
    folder = omniglot_root(root)
    for name in SETS:
        target = folder / f"{name}.npz"
        if target.is_file():
            continue
        sources = [folder / f"{name}.zip", folder / name]
        source = next((s for s in sources if s.exists()), None)
        if source is None and download:
            source = download_release(name, folder)
        require(
            source is not None,
            f"Omniglot's {name} is not in {folder}: put {name}.zip (github.com/brendenlake/"
            f"omniglot, folder python/) or its extracted folder there, pass --data-root, set "
            f"METARL_OMNIGLOT, or allow the download",
        )
        assert source is not None  # require() above raised otherwise
        arrays = read_release(source)
        digest = content_digest(arrays["images"])
        require(
            digest == CONTENT_SHA256[name],
            f"{source} does not match the original release (image digest {digest[:12]}…, "
            f"expected {CONTENT_SHA256[name][:12]}…); replace it with the unmodified release",
        )
        save_npz(arrays, target)
    return folder


# --- MAML's protocol ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OmniglotProtocol:
    """How the pooled characters become meta-train/val/test classes (MAML section 5.2)."""

    seed: int = 1
    """Seed of the character shuffle (the original code calls ``random.seed(1)``)."""
    n_train: int = 1100
    """Meta-training characters (the original's ``num_train=1200`` minus its 100 held out)."""
    n_val: int = 100
    """Validation characters; all remaining characters (423 of 1623) are for testing."""
    image_size: int = 28
    """Side of the resampled images."""
    resample: Resample = "nearest"
    """``nearest``: what the original pipeline produced (its resize script asks Pillow for
    LANCZOS, but Pillow resamples 1-bit images with nearest neighbour whatever filter is
    asked); ``lanczos``: an anti-aliased grey-level version."""
    rotations: bool = True
    """Add each character rotated by 90°, 180° and 270° as three more classes."""


def character_ids(drawing: np.ndarray) -> np.ndarray:
    """The global character id (``NNNN`` of ``NNNN_DD.png``, 1–1623) of every drawing."""
    return np.array([int(name[:4]) for name in drawing], dtype=np.int64)


def split_characters(ids: np.ndarray, protocol: OmniglotProtocol) -> dict[str, np.ndarray]:
    """Global character ids of each split: sorted ids, permuted by ``default_rng(seed)``."""
    ordered = np.sort(np.unique(ids))
    n_train, n_val = protocol.n_train, protocol.n_val
    require(
        n_train >= 1 and n_val >= 0 and n_train + n_val < len(ordered),
        f"cannot split {len(ordered)} characters into {n_train} training and {n_val} validation "
        "characters and leave some for testing",
    )
    perm = ordered[np.random.default_rng(protocol.seed).permutation(len(ordered))]
    return {
        "train": perm[:n_train],
        "val": perm[n_train : n_train + n_val],
        "test": perm[n_train + n_val :],
    }


def resample(images: np.ndarray, size: int, method: Resample) -> np.ndarray:
    """Resample ``(n, 105, 105)`` release images (1 = background) to ink intensities.

    Returns ``(n, size, size)`` uint8 with 255 = ink, 0 = background (the original code feeds
    ``1 − pixel/255``, ink as 1.0). ``nearest`` picks source pixel ``⌊(i + ½)·105/size⌋``,
    exactly what Pillow's resize does to a 1-bit image (tests check this against Pillow).
    """
    if method == "nearest":
        idx = np.floor((np.arange(size) + 0.5) * images.shape[-1] / size).astype(np.int64)
        return (1 - images[:, idx][:, :, idx]) * np.uint8(255)
    if method == "lanczos":
        out = np.empty((images.shape[0], size, size), dtype=np.uint8)
        for i, img in enumerate(images):
            small = Image.fromarray(img * np.uint8(255)).resize(
                (size, size), Image.Resampling.LANCZOS
            )
            out[i] = 255 - np.asarray(small)
        return out
    raise MetaRLError(f"unknown resampling {method!r}; choose nearest or lanczos")


def omniglot_splits(
    root: str | os.PathLike[str] | None = None, protocol: OmniglotProtocol | None = None
) -> dict[str, np.ndarray]:
    """MAML's Omniglot splits as uint8 class tensors ``[classes, 20, 1, size, size]``.

    With rotations, class ``4c + r`` is character ``c`` of the split turned by ``r·90°``
    counter-clockwise, so the splits have 4400 / 400 / 1692 classes.
    """
    protocol = protocol or OmniglotProtocol()
    folder = omniglot_root(root)
    sets = []
    for name in SETS:
        path = folder / f"{name}.npz"
        require(
            path.is_file(),
            f"{path} not found; run `metarl data omniglot` (or "
            "prepare_omniglot()) to convert the release, or pass --data-root",
        )
        sets.append(load_set(path))
    images = np.concatenate([s["images"] for s in sets])
    ids = character_ids(np.concatenate([s["drawing"] for s in sets])[::DRAWINGS])
    small = resample(images, protocol.image_size, protocol.resample)
    per_char = small.reshape(len(ids), DRAWINGS, 1, protocol.image_size, protocol.image_size)
    position = {cid: i for i, cid in enumerate(ids)}
    out = {}
    for split, chosen in split_characters(ids, protocol).items():
        classes = per_char[[position[c] for c in chosen]]
        if protocol.rotations:
            turns = [np.rot90(classes, k, axes=(-2, -1)) for k in range(4)]
            classes = np.stack(turns, axis=1).reshape(-1, *classes.shape[1:])
        out[split] = np.ascontiguousarray(classes)
    return out

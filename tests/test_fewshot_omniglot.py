"""Omniglot: reading the original release, the npz cache, MAML's split, and the problem."""

from __future__ import annotations

import hashlib
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metarl.core.meta import maml_objective
from metarl.errors import MetaRLError
from metarl.supervised import omniglot
from metarl.supervised.datafiles import shared_data_dir
from metarl.supervised.fewshot import fewshot_problem
from metarl.supervised.omniglot import (
    CONTENT_SHA256,
    KEYS,
    OmniglotProtocol,
    character_ids,
    load_set,
    omniglot_splits,
    prepare_omniglot,
    read_release,
    resample,
    save_npz,
    split_characters,
)

SHARED = shared_data_dir("omniglot")
needs_data = pytest.mark.skipif(
    not (SHARED / "images_background.npz").is_file(), reason=f"Omniglot npz not in {SHARED}"
)
SPLIT_SHA256 = {  # sha256 of the comma-joined sorted global character ids (docs/data.md)
    "train": "f4e7e6164af7c5c1",
    "val": "c0e6d5590d726b21",
    "test": "5c791fe701d02120",
}


@pytest.fixture(scope="module")
def background() -> dict[str, np.ndarray]:
    return load_set(SHARED / "images_background.npz")


@pytest.fixture(scope="module")
def splits() -> dict[str, np.ndarray]:
    return omniglot_splits(SHARED)


def subset(arrays: dict[str, np.ndarray], characters: list[int]) -> dict[str, np.ndarray]:
    """The drawings of a few characters, relabelled from 0 as a converted copy would be."""
    rows = np.concatenate([np.arange(c * 20, (c + 1) * 20) for c in sorted(characters)])
    out = {k: arrays[k][rows] for k in KEYS}
    out["label"] = (np.arange(len(rows)) // 20).astype(np.int16)
    return out


def write_pngs(arrays: dict[str, np.ndarray], folder: Path) -> None:
    """The release's extracted layout: ``<alphabet>/<character>/<NNNN_DD>.png``, 1-bit."""
    for img, a, c, d in zip(arrays["images"], arrays["alphabet"], arrays["character"],
                            arrays["drawing"], strict=True):
        (folder / a / c).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.astype(bool)).save(folder / a / c / d)


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as z:
        for png in sorted(folder.rglob("*.png")):
            z.write(png, f"{folder.name}/{png.relative_to(folder)}")
    return target


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for k in KEYS:
        assert a[k].dtype.kind == b[k].dtype.kind, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert a["images"].dtype == np.uint8 and a["label"].dtype == np.int16


# --- the shared copy ---------------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize("name", omniglot.SETS)
def test_shared_copy_has_the_release_digest_and_layout(name):
    arrays = load_set(SHARED / f"{name}.npz")
    assert omniglot.content_digest(arrays["images"]) == CONTENT_SHA256[name]
    assert arrays["images"].shape[0] == {"images_background": 19280,
                                         "images_evaluation": 13180}[name]


# --- reading the release -----------------------------------------------------------------------


@needs_data
def test_round_trip_from_extracted_pngs_and_from_zip(background, tmp_path):
    expected = subset(background, [0, 1, 400, 963])  # spans alphabets, incl. the first and last
    folder = tmp_path / "images_background"
    write_pngs(expected, folder)
    assert_same(read_release(folder), expected)
    assert_same(read_release(zip_folder(folder, tmp_path / "images_background.zip")), expected)
    saved = save_npz(read_release(folder), tmp_path / "cache" / "x.npz")
    assert_same(load_set(saved), expected)
    with np.load(saved) as data:
        assert data.files == list(KEYS)


@needs_data
def test_prepare_converts_from_the_cache_folder_and_checks_the_digest(background, tmp_path):
    write_pngs(subset(background, [5, 6]), tmp_path / "images_background")
    with pytest.raises(MetaRLError, match="does not match the original release"):
        prepare_omniglot(tmp_path)
    assert not (tmp_path / "images_background.npz").exists()


@needs_data
def test_prepare_leaves_converted_sets_alone():
    assert prepare_omniglot(SHARED) == SHARED


def test_missing_release_offline_says_where_to_put_the_files(tmp_path, monkeypatch):
    with pytest.raises(MetaRLError, match="put images_background.zip"):
        prepare_omniglot(tmp_path)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(omniglot.urllib.request, "urlopen", offline)
    with pytest.raises(MetaRLError, match=r"could not download .*into " + str(tmp_path)):
        prepare_omniglot(tmp_path, download=True)
    assert not list(tmp_path.iterdir())


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("METARL_OMNIGLOT", str(tmp_path))
    assert omniglot.omniglot_root() == tmp_path
    assert omniglot.omniglot_root(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(MetaRLError, match="images_background.npz not found; run `metarl data "
                                          "omniglot` .* to convert the release"):
        omniglot.omniglot_splits(tmp_path / "empty")


@needs_data
def test_wrong_layout_truncated_and_incomplete_inputs(background, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(background["images"][0].astype(bool)).save(flat / "0709_01.png")
    with pytest.raises(MetaRLError, match="expected <alphabet>/<character>/<NNNN_DD>.png"):
        read_release(flat)

    folder = tmp_path / "images_background"
    write_pngs(subset(background, [0]), folder)
    png = next(folder.rglob("*_05.png"))
    png.write_bytes(png.read_bytes()[:40])
    with pytest.raises(MetaRLError, match=f"{png.name} is truncated or not a PNG"):
        read_release(folder)
    png.unlink()
    with pytest.raises(MetaRLError, match="has 19 drawings, expected 20"):
        read_release(folder)

    good = zip_folder(folder, tmp_path / "good.zip")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MetaRLError, match="cut.zip is truncated or not a zip"):
        read_release(cut)

    small = tmp_path / "small" / "A" / "character01"
    small.mkdir(parents=True)
    for d in range(1, 21):
        Image.new("1", (28, 28), 1).save(small / f"0001_{d:02d}.png")
    with pytest.raises(MetaRLError, match="is 28x28 pixels"):
        read_release(tmp_path / "small")


@needs_data
def test_truncated_or_foreign_npz_is_rejected(tmp_path):
    data = (SHARED / "images_evaluation.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 3])
    with pytest.raises(MetaRLError, match="truncated or corrupt"):
        load_set(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", images=np.zeros((20, 105, 105), np.uint8))
    with pytest.raises(MetaRLError, match="lacks the key"):
        load_set(tmp_path / "other.npz")


# --- MAML's protocol ---------------------------------------------------------------------------


@needs_data
def test_nearest_resampling_is_what_pillow_does_to_one_bit_images(background):
    images = background["images"][::997]
    ours = resample(images, 28, "nearest")
    for img, small in zip(images, ours, strict=True):
        pil = Image.fromarray(img.astype(bool)).resize((28, 28), Image.LANCZOS)  # → nearest
        np.testing.assert_array_equal(small, (1 - np.asarray(pil, dtype=np.uint8)) * 255)
    grey = resample(images, 28, "lanczos")
    assert grey.dtype == np.uint8 and grey.shape == ours.shape
    assert abs(float(grey.mean()) - float(ours.mean())) < 10


def test_split_is_seeded_disjoint_and_complete():
    ids = np.arange(1, 1624)
    protocol = OmniglotProtocol()
    parts = split_characters(ids, protocol)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [1100, 100, 423]
    assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), ids)
    for name, digest in SPLIT_SHA256.items():
        joined = ",".join(map(str, sorted(parts[name].tolist())))
        assert hashlib.sha256(joined.encode()).hexdigest()[:16] == digest
    again = split_characters(ids[::-1], protocol)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = split_characters(ids, OmniglotProtocol(seed=2))
    assert not np.array_equal(parts["test"], other["test"])
    with pytest.raises(MetaRLError, match="cannot split 1623 characters"):
        split_characters(ids, OmniglotProtocol(n_train=1600, n_val=23))


@needs_data
def test_protocol_splits_with_rotations(splits):
    assert {k: v.shape for k, v in splits.items()} == {
        "train": (4400, 20, 1, 28, 28),
        "val": (400, 20, 1, 28, 28),
        "test": (1692, 20, 1, 28, 28),
    }
    test = splits["test"]
    assert test.dtype == np.uint8 and set(np.unique(test[:8])) == {0, 255}
    assert 0.05 < test.mean() / 255 < 0.12  # ink is the bright minority (about 8%)
    for r in range(4):
        np.testing.assert_array_equal(test[4 * 7 + r], np.rot90(test[4 * 7], r, axes=(-2, -1)))


@needs_data
def test_protocol_uses_the_split_characters():
    ids = np.concatenate([character_ids(load_set(SHARED / f"{n}.npz")["drawing"][::20])
                          for n in omniglot.SETS])
    assert sorted(ids.tolist()) == list(range(1, 1624))


@needs_data
def test_omniglot_problem_runs_a_meta_step(splits, monkeypatch):
    monkeypatch.setattr("metarl.supervised.fewshot.omniglot_splits", lambda *a: splits)
    problem = fewshot_problem("omniglot", 5, 1, k_query=3, eval_query=15, data_root=SHARED)
    assert set(problem.splits) == {"train", "val", "test"}
    batch = problem.splits["train"].sample(2, np.random.default_rng(0))
    assert batch.support[0].shape == (2, 5, 1, 28, 28)
    assert batch.query[0].shape == (2, 15, 1, 28, 28)
    out = maml_objective(problem.loss_fn, dict(problem.model.named_parameters()), batch.support,
                         batch.query, steps=1, lr=2.0, metric_fn=problem.metric_fn)
    out.loss.backward()
    assert 0.0 <= float(out.metrics["accuracy"]) <= 1.0
    assert problem.model.head.weight.grad is not None
    test = problem.splits["test"].sample(1, np.random.default_rng(0))
    assert test.query[0].shape == (1, 75, 1, 28, 28)

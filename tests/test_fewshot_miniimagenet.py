"""MiniImagenet: the split lists, conversion of tiny generated JPEGs, and every clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metarl.errors import MetaRLError
from metarl.supervised.datafiles import shared_data_dir, write_npz
from metarl.supervised.fewshot import fewshot_problem
from metarl.supervised.miniimagenet import (
    RAVI_CLASSES,
    SPLITS,
    load_split,
    prepare_miniimagenet,
    read_split_csv,
)

from .conftest import Outcome, call_script, run_script, snapshot

# A miniature of the real lists: wnid-like classes, 4 images each, split 3 / 2 / 2.
TINY = {"train": ["n01", "n02", "n03"], "val": ["n04", "n05"], "test": ["n06", "n07"]}
PER_CLASS = 4


def colour(wnid: str, i: int) -> tuple[int, int, int]:
    k = int(wnid[1:])
    return (30 * k, 50 + 40 * i, 200 - 20 * k)


def write_dataset(root: Path, per_class_folders: bool) -> tuple[Path, Path]:
    """JPEGs named ``<wnid><index>.jpg`` (one 100×90, to be resized) plus the three CSVs."""
    images, lists = root / "images", root / "lists"
    lists.mkdir(parents=True)
    for split, classes in TINY.items():
        rows = ["filename,label"]
        for wnid in classes:
            folder = images / wnid if per_class_folders else images
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(PER_CLASS):
                name = f"{wnid}{i:08d}.jpg"
                size = (100, 90) if (wnid, i) == ("n02", 1) else (84, 84)
                Image.new("RGB", size, colour(wnid, i)).save(folder / name, quality=95)
                rows.append(f"{name},{wnid}")
        (lists / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return images, lists


@pytest.mark.parametrize("per_class_folders", [True, False])
def test_conversion_round_trip(tmp_path, per_class_folders):
    images, lists = write_dataset(tmp_path, per_class_folders)
    cache = prepare_miniimagenet(images, tmp_path / "cache", lists)
    for split, classes in TINY.items():
        data = load_split(split, cache)
        assert data["images"].shape == (len(classes), PER_CLASS, 3, 84, 84)
        assert data["images"].dtype == np.uint8
        assert data["classes"].tolist() == classes
        for c, wnid in enumerate(classes):
            assert data["filenames"][c].tolist() == [f"{wnid}{i:08d}.jpg" for i in range(4)]
            for i in range(PER_CLASS):
                mean = data["images"][c, i].reshape(3, -1).mean(1)
                np.testing.assert_allclose(mean, colour(wnid, i), atol=3)  # JPEG is lossy


def test_problem_over_the_cache(tmp_path):
    images, lists = write_dataset(tmp_path, per_class_folders=True)
    cache = prepare_miniimagenet(images, tmp_path / "cache", lists)
    problem = fewshot_problem("miniimagenet", 2, 1, k_query=3, eval_query=2, data_root=cache)
    batch = problem.splits["train"].sample(3, np.random.default_rng(0))
    assert batch.support[0].shape == (3, 2, 3, 84, 84) and batch.query[0].shape == (3, 6, 3, 84, 84)
    assert problem.model(batch.query[0][0]).shape == (6, 2)
    with pytest.raises(MetaRLError, match="3-way episodes need 3 classes, but the val split"):
        fewshot_problem("miniimagenet", 3, 1, k_query=1, eval_query=1, data_root=cache)


def test_wrong_layout(tmp_path):
    _, lists = write_dataset(tmp_path, per_class_folders=True)
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    Image.new("RGB", (84, 84)).save(elsewhere / "unrelated.jpg")
    with pytest.raises(MetaRLError, match="none of the 12 images train.csv lists is under"):
        prepare_miniimagenet(elsewhere, tmp_path / "cache", lists)
    with pytest.raises(MetaRLError, match="does not exist"):
        prepare_miniimagenet(tmp_path / "nowhere", tmp_path / "cache", lists)


def test_missing_class_and_missing_images(tmp_path):
    images, lists = write_dataset(tmp_path, per_class_folders=True)
    for jpg in (images / "n02").iterdir():
        jpg.unlink()
    with pytest.raises(MetaRLError, match="class n02 of train.csv is missing"):
        prepare_miniimagenet(images, tmp_path / "cache", lists)
    (images / "n02").rmdir()
    write_dataset(tmp_path / "again", per_class_folders=True)
    again = tmp_path / "again" / "images"
    (again / "n03" / "n0300000002.jpg").unlink()
    with pytest.raises(MetaRLError, match="1 of the 4 images of class n03 .* n0300000002.jpg"):
        prepare_miniimagenet(again, tmp_path / "cache", lists)


def test_truncated_and_undecodable_files(tmp_path):
    images, lists = write_dataset(tmp_path, per_class_folders=False)
    jpg = images / "n0600000003.jpg"
    jpg.write_bytes(jpg.read_bytes()[:200])
    with pytest.raises(MetaRLError, match="n0600000003.jpg is truncated or not an image"):
        prepare_miniimagenet(images, tmp_path / "cache", lists)
    jpg.write_text("not a jpeg")
    with pytest.raises(MetaRLError, match="n0600000003.jpg is truncated or not an image"):
        prepare_miniimagenet(images, tmp_path / "cache", lists)
    # train and val were converted before test failed; nothing half-written is left behind
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "miniimagenet_train.npz", "miniimagenet_val.npz"]


def test_bad_lists_duplicates_and_broken_cache(tmp_path):
    images, lists = write_dataset(tmp_path, per_class_folders=True)
    (lists / "val.csv").write_text("image,class\nn0400000000.jpg,n04\n")
    with pytest.raises(MetaRLError, match="does not start with the header 'filename,label'"):
        prepare_miniimagenet(images, tmp_path / "cache", lists, splits=("val",))
    Image.new("RGB", (84, 84)).save(images / "n0100000000.jpg")  # a second copy, elsewhere
    with pytest.raises(MetaRLError, match="n0100000000.jpg appears twice"):
        prepare_miniimagenet(images, tmp_path / "cache", lists, splits=("train",))
    with pytest.raises(MetaRLError, match="miniimagenet_test.npz not found; convert"):
        load_split("test", tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "miniimagenet_test.npz").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(MetaRLError, match="truncated or corrupt"):
        load_split("test", tmp_path / "cache")


@pytest.mark.skipif(not (shared_data_dir("miniimagenet") / "train.csv").is_file(),
                    reason="shared MiniImagenet lists not present")
def test_ravi_lists_have_the_published_sizes() -> None:
    seen: set[str] = set()
    for split in SPLITS:
        by_class = read_split_csv(shared_data_dir("miniimagenet") / f"{split}.csv")
        assert len(by_class) == RAVI_CLASSES[split]
        assert {len(v) for v in by_class.values()} == {600}
        assert not seen & set(by_class)
        seen |= set(by_class)


def test_a_moved_data_folder_resumes_and_evaluates_other_data_does_not(tmp_path):
    """config.json records the data's digest: a run resumes (and evaluates) from a copy of its
    dataset in another folder, and refuses a folder with other data, changing nothing."""
    images, lists = write_dataset(tmp_path, per_class_folders=True)
    first = prepare_miniimagenet(images, tmp_path / "first", lists)
    moved = tmp_path / "moved"
    shutil.copytree(first, moved)
    other = tmp_path / "other"
    shutil.copytree(first, other)
    data = dict(np.load(other / "miniimagenet_val.npz"))
    data["images"] = 255 - data["images"]
    write_npz(other / "miniimagenet_val.npz", data, compress=False)
    out = tmp_path / "run"
    tiny = ["--family", "miniimagenet", "--n-way", "2", "--k-shot", "1", "--k-query", "1",
            "--eval-query", "1", "--inner-steps", "1", "--eval-inner-steps", "1",
            "--meta-batch", "2", "--eval-every", "2", "--eval-tasks", "2", "--test-tasks", "2",
            "--checkpoint-every", "1", "--threads", "1", "--out-dir", str(out)]

    def train(iterations: int, root: Path) -> Outcome:
        return call_script("train_supervised.py", *tiny, "--iterations", str(iterations),
                           "--data-root", str(root), *(["--resume"] if out.exists() else []))

    assert train(1, first).returncode == 0
    digest = json.loads((out / "config.json").read_text())["data_digest"]
    assert len(digest) == 64
    resumed = train(2, moved)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr + resumed.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["data_root"] == str(moved) and config["data_digest"] == digest
    assert call_script("evaluate.py", "--run-dir", str(out), "--data-root", str(first),
                       "--tasks", "2", "--steps", "1", "--split", "val").returncode == 0

    before = snapshot(out)
    for outcome in (train(3, other),
                    call_script("evaluate.py", "--run-dir", str(out), "--data-root", str(other),
                                "--tasks", "2", "--steps", "1", "--split", "val")):
        assert outcome.returncode == 2
        assert f"the data in --data-root {other} is not the data the run was trained on" \
            in outcome.stderr
        assert "Traceback" not in outcome.stderr
    assert snapshot(out) == before

    # a run from before digests were recorded keeps its folder, as it always had to
    config.pop("data_digest")
    (out / "config.json").write_text(json.dumps(config))
    refused = train(3, first)
    assert refused.returncode == 2 and "different settings for data_root" in refused.stderr
    assert train(3, moved).returncode == 0


def test_prepare_script_end_to_end(tmp_path):
    """scripts/prepare_fewshot_data.py as a user runs it: MiniImagenet JPEGs into the cache the
    training scripts read; Omniglot's converted sets are found and left alone."""
    images, lists = write_dataset(tmp_path, per_class_folders=True)
    proc = run_script("prepare_fewshot_data.py", "miniimagenet", "--images-dir", str(images),
                      "--data-root", str(tmp_path / "cache"), "--csv-dir", str(lists))
    assert f"ready: {tmp_path / 'cache'}" in proc.stdout
    for split, classes in TINY.items():
        assert load_split(split, tmp_path / "cache")["classes"].tolist() == classes
    shared = shared_data_dir("omniglot")
    if (shared / "images_background.npz").is_file():
        folder = tmp_path / "omniglot"
        folder.mkdir()
        for name in ("images_background.npz", "images_evaluation.npz"):
            (folder / name).symlink_to(shared / name)
        proc = run_script("prepare_fewshot_data.py", "omniglot", "--data-root", str(folder))
        assert f"ready: {folder}" in proc.stdout
        assert sorted(p.name for p in folder.iterdir()) == ["images_background.npz",
                                                             "images_evaluation.npz"]

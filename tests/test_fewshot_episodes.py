"""The N-way K-shot episode sampler on a tensor whose pixels spell out class and image ids."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metarl.errors import MetaRLError
from metarl.supervised.episodes import EpisodeSampler, distinct_draws

CLASSES, PER_CLASS = 12, 10


def labelled_images() -> torch.Tensor:
    """``[12, 10, 1, 1, 2]`` uint8: pixel 0 holds the class, pixel 1 the image index."""
    c = torch.arange(CLASSES)[:, None].expand(CLASSES, PER_CLASS)
    m = torch.arange(PER_CLASS)[None, :].expand(CLASSES, PER_CLASS)
    return torch.stack([c, m], -1).to(torch.uint8).reshape(CLASSES, PER_CLASS, 1, 1, 2)


def ids(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(class, image) ids of every example of a ``[T, E, 1, 1, 2]`` batch."""
    v = (x * 255).round().long().reshape(*x.shape[:2], 2).numpy()
    return v[..., 0], v[..., 1]


def test_shapes_dtypes_and_devices():
    sampler = EpisodeSampler(labelled_images(), n_way=4, k_shot=2, n_query=3)
    batch = sampler.sample(5, np.random.default_rng(0))
    (xs, ys), (xq, yq) = batch.support, batch.query
    assert xs.shape == (5, 8, 1, 1, 2) and ys.shape == (5, 8)
    assert xq.shape == (5, 12, 1, 1, 2) and yq.shape == (5, 12)
    assert xs.dtype == torch.float32 and ys.dtype == torch.int64
    assert float(xs.max()) <= 1.0 and xs.device == sampler.device
    doubles = EpisodeSampler(labelled_images(), 4, 2, 3, dtype=torch.float64)
    assert doubles.sample(1, np.random.default_rng(0)).support[0].dtype == torch.float64


def test_episodes_are_consistent_and_without_replacement():
    sampler = EpisodeSampler(labelled_images(), n_way=5, k_shot=3, n_query=4)
    batch = sampler.sample(20, np.random.default_rng(1))
    (xs, ys), (xq, yq) = batch.support, batch.query
    cs, ms = ids(xs)
    cq, mq = ids(xq)
    for t in range(20):
        label_to_class = {}
        for c, y in zip(np.concatenate([cs[t], cq[t]]), torch.cat([ys[t], yq[t]]).tolist(),
                        strict=True):
            assert label_to_class.setdefault(y, c) == c  # one class per label, in both sets
        assert sorted(label_to_class) == list(range(5))
        assert len(set(label_to_class.values())) == 5  # five distinct classes
        pairs = list(zip(np.concatenate([cs[t], cq[t]]), np.concatenate([ms[t], mq[t]]),
                         strict=True))
        assert len(set(pairs)) == len(pairs)  # no image twice in an episode


def test_labels_are_shuffled_per_episode():
    sampler = EpisodeSampler(labelled_images()[:5], n_way=5, k_shot=1, n_query=1)
    batch = sampler.sample(200, np.random.default_rng(2))
    cs, _ = ids(batch.support[0])
    label0_class = cs[np.arange(200), batch.support[1].argmin(1).numpy()]
    assert set(label0_class.tolist()) == set(range(5))  # every class gets label 0 sometimes
    assert len({tuple(row) for row in cs.tolist()}) > 50  # many different label assignments


def test_determinism_depends_only_on_the_generator():
    sampler = EpisodeSampler(labelled_images(), n_way=3, k_shot=1, n_query=2)
    a = sampler.sample(4, np.random.default_rng(7))
    b = sampler.sample(4, np.random.default_rng(7))
    c = sampler.sample(4, np.random.default_rng(8))
    for u, v in zip(a.support + a.query, b.support + b.query, strict=True):
        assert torch.equal(u, v)
    assert not torch.equal(a.support[0], c.support[0])


def test_clear_errors():
    images = labelled_images()
    with pytest.raises(MetaRLError, match="13-way episodes need 13 classes, but the test split"):
        EpisodeSampler(images, n_way=13, k_shot=1, name="test")
    with pytest.raises(MetaRLError, match="need 11 images of each class, but the train split"):
        EpisodeSampler(images, n_way=5, k_shot=1, n_query=10, name="train")
    with pytest.raises(MetaRLError, match="must be uint8"):
        EpisodeSampler(images.float(), n_way=5, k_shot=1, n_query=1)
    with pytest.raises(MetaRLError, match="--k-shot must be at least 1"):
        EpisodeSampler(images, n_way=5, k_shot=0, n_query=1)


@pytest.mark.parametrize("n, high", [(2, 5), (3, 4)])  # rejection path, permutation path
def test_distinct_draws_are_uniform_over_ordered_tuples(n, high):
    draws = distinct_draws(np.random.default_rng(3), (60000,), n, high)
    assert all(len(set(row)) == n for row in draws[:1000].tolist())
    _, counts = np.unique(draws, axis=0, return_counts=True)
    tuples = math.perm(high, n)
    assert len(counts) == tuples
    expected = len(draws) / tuples
    assert np.abs(counts - expected).max() < 6 * np.sqrt(expected)

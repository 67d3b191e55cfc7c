"""N-way K-shot classification episodes, gathered on the device from a resident tensor.

An episode (a task of MAML section 5.2) picks N classes of a split, gives them the labels
0..N−1 in a random order, and draws K support and Q query images of each class without
replacement. The whole split stays on the device as one uint8 tensor ``[classes, images,
channels, H, W]``; a meta-batch of T episodes costs a few small index draws on the host and a
single gather + conversion on the device, so data never waits on the disk or the CPU.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from metarl.errors import require
from metarl.supervised.tasks import TaskBatch


def distinct_draws(
    rng: np.random.Generator, rows: tuple[int, ...], n: int, high: int
) -> np.ndarray:
    """``rows + (n,)`` integers from ``[0, high)``, distinct within each row, in random order.

    Every ordered n-tuple of distinct values is equally likely. When ``n² ≤ high`` duplicates
    are rare, so i.i.d. draws are redrawn for the few rows that repeat a value (rejection keeps
    the distribution uniform); otherwise each row is the head of a random permutation.
    """
    if n * n > high:
        return np.argsort(rng.random((*rows, high)), axis=-1)[..., :n]
    out = rng.integers(0, high, (*rows, n))
    while True:
        ordered = np.sort(out, axis=-1)
        repeats = (ordered[..., 1:] == ordered[..., :-1]).any(axis=-1)
        if not repeats.any():
            return out
        out[repeats] = rng.integers(0, high, (int(repeats.sum()), n))


class EpisodeSampler:
    """Draws meta-batches of N-way K-shot episodes (a :class:`metarl.supervised.tasks.TaskSampler`).

    Args:
        images: uint8 ``[classes, images_per_class, channels, H, W]``, 0..255, on the device the
            batches should live on.
        n_way: classes per episode (N).
        k_shot: support images per class (K).
        n_query: query images per class (Q); 15 as in Ravi & Larochelle (2017) and MAML's
            MiniImagenet setting.
        dtype: floating type of the returned images (scaled to [0, 1]).
        name: the split's name, for error messages.

    Batches: support ``(x [T, N·K, C, H, W], y [T, N·K])`` and query
    ``(x [T, N·Q, C, H, W], y [T, N·Q])``, with labels ``int64`` and examples grouped by label
    (the order does not matter to the loss, nor to batch norm over the whole set).
    """

    def __init__(
        self,
        images: Tensor,
        n_way: int,
        k_shot: int,
        n_query: int = 15,
        dtype: torch.dtype = torch.float32,
        name: str = "this",
    ) -> None:
        require(
            images.dim() == 5 and images.dtype == torch.uint8,
            f"episode images must be uint8 [classes, images, channels, H, W], got "
            f"{images.dtype} {tuple(images.shape)}",
        )
        require(n_way >= 1, f"--n-way must be at least 1, got {n_way}")
        require(k_shot >= 1, f"--k-shot must be at least 1, got {k_shot}")
        require(n_query >= 1, f"the query size per class must be at least 1, got {n_query}")
        classes, per_class = images.shape[:2]
        require(
            n_way <= classes,
            f"{n_way}-way episodes need {n_way} classes, but the {name} split has only "
            f"{classes}; lower --n-way",
        )
        require(
            k_shot + n_query <= per_class,
            f"{k_shot}-shot episodes with {n_query} query images per class need "
            f"{k_shot + n_query} images of each class, but the {name} split has {per_class}; "
            "lower --k-shot or the query size",
        )
        self.images = images
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.dtype = dtype

    @property
    def device(self) -> torch.device:
        return self.images.device

    def draw_indices(self, n_tasks: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Class ``[T, N]`` (position = label) and image ``[T, N, K+Q]`` indices of T episodes.

        The classes of an episode come in random order, so which class gets which label is
        shuffled anew in every episode (the learner cannot memorise a class→label map).
        """
        classes, per_class = self.images.shape[:2]
        chosen = distinct_draws(rng, (n_tasks,), self.n_way, classes)
        picks = distinct_draws(rng, (n_tasks, self.n_way), self.k_shot + self.n_query, per_class)
        return chosen, picks

    def sample(self, n_tasks: int, rng: np.random.Generator) -> TaskBatch:
        """``n_tasks`` episodes; the result depends only on ``rng``'s state."""
        chosen, picks = self.draw_indices(n_tasks, rng)
        cls = torch.as_tensor(chosen, device=self.device)
        idx = torch.as_tensor(picks, device=self.device)
        x = self.images[cls[:, :, None], idx].to(self.dtype).div_(255)  # [T, N, K+Q, C, H, W]
        labels = torch.arange(self.n_way, device=self.device)[None, :, None]
        y = labels.expand(n_tasks, self.n_way, self.k_shot + self.n_query)
        k = self.k_shot
        return TaskBatch(
            support=(x[:, :, :k].flatten(1, 2), y[:, :, :k].flatten(1, 2)),
            query=(x[:, :, k:].flatten(1, 2), y[:, :, k:].flatten(1, 2)),
        )

"""Few-shot image classification problems (MAML section 5.2): Omniglot and MiniImagenet.

:func:`fewshot_problem` returns a :class:`~metarl.supervised.tasks.SupervisedProblem`: the conv4
network, the mean cross-entropy (inner and query loss; the original code's inner loss, summed
over the N·K support images and divided by K, is N times this mean, so the presets multiply
MAML's step sizes by N), query accuracy as the metric, and an
:class:`EpisodeSampler` per split over a uint8 tensor that lives on ``device`` for the whole
run.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from metarl.core.functional import LossFn, Params, functional_loss
from metarl.core.meta import MetricFn
from metarl.errors import require
from metarl.supervised.episodes import EpisodeSampler
from metarl.supervised.miniimagenet import SPLITS, load_split
from metarl.supervised.models import (
    NormStyle,
    conv4_miniimagenet,
    conv4_omniglot,
    outer_only_names,
)
from metarl.supervised.omniglot import OmniglotProtocol, omniglot_splits
from metarl.supervised.tasks import SupervisedProblem


def accuracy_metric(model: nn.Module) -> MetricFn:
    """``(params, (x, y)) -> {"loss": mean cross-entropy, "accuracy": fraction of x classified
    as y}``, from one forward pass (the loss doubles as the query loss)."""

    def metric(params: Params, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        x, y = batch
        logits = torch.func.functional_call(model, params, (x,))
        return {"loss": nn.functional.cross_entropy(logits, y),
                "accuracy": (logits.argmax(-1) == y).to(logits.dtype).mean()}

    return metric


def classification_problem(
    model: nn.Module,
    splits: dict[str, np.ndarray],
    n_way: int,
    k_shot: int,
    k_query: int,
    eval_query: int,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SupervisedProblem:
    """Wrap ``model`` and uint8 class tensors ``[classes, images, C, H, W]`` per split.

    Training episodes use ``k_query`` query images per class, validation and test episodes
    ``eval_query``. The model is moved to ``device`` and ``dtype``; its outer-only parameters
    (:func:`~metarl.supervised.models.outer_only_names`) become the problem's.
    """
    model.to(device=device, dtype=dtype)
    loss_fn: LossFn = functional_loss(model, nn.functional.cross_entropy)
    samplers = {
        name: EpisodeSampler(
            torch.as_tensor(images).to(device),
            n_way,
            k_shot,
            k_query if name == "train" else eval_query,
            dtype=dtype,
            name=name,
        )
        for name, images in splits.items()
    }
    return SupervisedProblem(model, loss_fn, accuracy_metric(model), samplers,
                             outer_only=outer_only_names(model))


def _omniglot_splits(data_root: str | os.PathLike[str] | None) -> dict[str, np.ndarray]:
    return omniglot_splits(data_root, OmniglotProtocol())


def _miniimagenet_splits(data_root: str | os.PathLike[str] | None) -> dict[str, np.ndarray]:
    return {name: load_split(name, data_root)["images"] for name in SPLITS}


FAMILIES: dict[str, tuple[Callable[[str | os.PathLike[str] | None], dict[str, np.ndarray]],
                          Callable[[int, NormStyle], nn.Module]]] = {
    "omniglot": (_omniglot_splits, conv4_omniglot),
    "miniimagenet": (_miniimagenet_splits, conv4_miniimagenet),
}
"""Family name -> (its splits as uint8 class tensors, its conv4 for (n_way, norm)).
Omniglot: MAML's character split with rotations and conv4-64 (strided); MiniImagenet: Ravi &
Larochelle's split and conv4-32 (max-pool)."""


def fewshot_problem(
    family: str,
    n_way: int,
    k_shot: int,
    k_query: int = 15,
    eval_query: int = 15,
    *,
    data_root: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    norm: NormStyle = "fast",
) -> SupervisedProblem:
    """N-way K-shot classification on ``family`` (a key of :data:`FAMILIES`), with the
    batch-norm parametrisation ``norm`` (:data:`~metarl.supervised.models.NormStyle`)."""
    require(family in FAMILIES, f"unknown few-shot family {family!r}; choose one of "
            + ", ".join(FAMILIES))
    load, make_model = FAMILIES[family]
    return classification_problem(
        make_model(n_way, norm), load(data_root), n_way, k_shot, k_query, eval_query, device, dtype
    )

"""Build the :class:`~metarl.supervised.tasks.SupervisedProblem` a config asks for."""

from __future__ import annotations

import hashlib

from metarl.supervised.config import SupervisedConfig
from metarl.supervised.fewshot import fewshot_problem
from metarl.supervised.sinusoid import sinusoid_problem
from metarl.supervised.tasks import SupervisedProblem


def build_problem(cfg: SupervisedConfig) -> SupervisedProblem:
    """Model, loss and task samplers for ``cfg.family`` on ``cfg.device``."""
    if cfg.family == "sinusoid":
        return sinusoid_problem(cfg.k_shot, cfg.k_query, cfg.eval_query, device=cfg.device,
                                init=cfg.mlp_init)
    return fewshot_problem(cfg.family, cfg.n_way, cfg.k_shot, cfg.k_query, cfg.eval_query,
                           data_root=cfg.data_root, device=cfg.device, norm=cfg.batch_norm)


def data_digest(problem: SupervisedProblem) -> str | None:
    """sha256 over the images of every split (name, shape, dtype and bytes), or None for a
    family with generated tasks (sinusoid).

    Recorded in a classification run's config.json, it lets the run be resumed or evaluated
    from a dataset folder that has moved (``--data-root``), while refusing a folder that holds
    other data.
    """
    arrays = {name: getattr(s, "images", None) for name, s in problem.splits.items()}
    if any(a is None for a in arrays.values()):
        return None
    digest = hashlib.sha256()
    for name in sorted(arrays):
        split_images = arrays[name]
        assert split_images is not None  # every split was checked above
        images = split_images.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(images.shape)}:{images.dtype};".encode())
        digest.update(images.numpy())  # the buffer itself: no copy of a large split
    return digest.hexdigest()

"""Build the :class:`~metarl.tasks.SupervisedProblem` a config asks for."""

from __future__ import annotations

from metarl.errors import MetaRLError
from metarl.supervised.config import SupervisedConfig
from metarl.supervised.fewshot import FAMILIES, fewshot_problem
from metarl.supervised.sinusoid import sinusoid_problem
from metarl.tasks import SupervisedProblem


def build_problem(cfg: SupervisedConfig) -> SupervisedProblem:
    """Model, loss and task samplers for ``cfg.family`` on ``cfg.device``."""
    if cfg.family == "sinusoid":
        return sinusoid_problem(cfg.k_shot, cfg.k_query, cfg.eval_query, device=cfg.device,
                                init=cfg.mlp_init)
    if cfg.family in FAMILIES:
        return fewshot_problem(cfg.family, cfg.n_way, cfg.k_shot, cfg.k_query, cfg.eval_query,
                               data_root=cfg.data_root, device=cfg.device)
    raise MetaRLError(f"family {cfg.family!r} is not available in this build")

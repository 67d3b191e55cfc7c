"""Named hyper-parameter presets that reproduce the papers' settings.

Each preset is a plain dict of training-config overrides, keyed by a short name the scripts
accept as ``--preset NAME``. Sources are cited beside each entry.
"""

from __future__ import annotations

from typing import Any, Literal

from metarl.runs.cli import presets_as_text

SupervisedPreset = Literal[
    "sinusoid", "sinusoid-demo",
    "omniglot-5way-1shot", "omniglot-5way-5shot", "omniglot-20way-1shot", "omniglot-20way-5shot",
    "miniimagenet-5way-1shot", "miniimagenet-5way-5shot",
    "omniglot-5way-1shot-cpu", "miniimagenet-5way-1shot-cpu",
]
"""The names of :data:`PRESETS`."""

PRESETS: dict[str, dict[str, Any]] = {}

# --- Sinusoid regression: MAML section 5.1 and the original code (cbfinn/maml, main.py:
# --datasource=sinusoid --metatrain_iterations=70000 --norm=None). Mean-squared error in both
# loops; α = 0.01, one inner step in training, Adam β = 1e-3, meta-batch 25.
PRESETS["sinusoid"] = dict(
    family="sinusoid", algo="maml", k_shot=10, k_query=10, iterations=70000, meta_batch=25,
    inner_steps=1, inner_lr=0.01, outer_lr=1e-3, eval_inner_steps=10, eval_query=100,
    eval_every=5000, eval_tasks=600, checkpoint_every=5000, test_tasks=600, threads=1,
)
# A few-minute version on 2 CPU cores (the README's demo): same problem, fewer iterations.
PRESETS["sinusoid-demo"] = {**PRESETS["sinusoid"], "iterations": 20000, "eval_every": 5000,
                            "checkpoint_every": 5000}

# --- Few-shot classification: MAML section 5.2, Table 1, and appendix A.1 --------------------
# Fields (supervised/config.py): family, algo, n_way, k_shot, k_query (query images per class
# in training), eval_query (at validation/test), meta_batch, inner_steps, inner_lr,
# eval_inner_steps, outer_lr, iterations, test_tasks.
#
# inner_lr is for our MEAN cross-entropy over the support set. The original code sums the
# per-example loss over the N·K support images and divides by K (utils.xent), i.e. it
# descends N × the mean, so the paper's α is multiplied by N here: Omniglot 5-way α 0.4 → 2.0,
# 20-way α 0.1 → 2.0, MiniImagenet 5-way α 0.01 → 0.05. Adam (β = 1e-3) is invariant to the
# constant scale of the outer loss.
#
# Query sizes follow the original code: Omniglot draws K query images per class in training
# and testing (main.py, DataGenerator(update_batch_size*2)); MiniImagenet uses 15 per class
# (paper A.1, after Ravi & Larochelle).
_FEWSHOT_COMMON = dict(algo="maml", outer_lr=1e-3, iterations=60000, test_tasks=600)


def _omniglot(n_way: int, k_shot: int) -> dict[str, Any]:
    """Paper A.1: 5-way -- 1 step (3 at test), α 0.4, meta-batch 32; 20-way -- 5 steps, α 0.1,
    meta-batch 16."""
    five = n_way == 5
    return dict(
        _FEWSHOT_COMMON, family="omniglot", n_way=n_way, k_shot=k_shot, k_query=k_shot,
        eval_query=k_shot, meta_batch=32 if five else 16, inner_steps=1 if five else 5,
        eval_inner_steps=3 if five else 5, inner_lr=(0.4 if five else 0.1) * n_way,
    )


def _miniimagenet(k_shot: int) -> dict[str, Any]:
    """Paper A.1: 5 steps (10 at test), α 0.01, meta-batch 4 (1-shot) / 2 (5-shot; the
    original README's command uses 4)."""
    return dict(
        _FEWSHOT_COMMON, family="miniimagenet", n_way=5, k_shot=k_shot, k_query=15,
        eval_query=15, meta_batch=4 if k_shot == 1 else 2, inner_steps=5, eval_inner_steps=10,
        inner_lr=0.01 * 5, eval_chunk=20,
    )


for _n in (5, 20):
    for _k in (1, 5):
        PRESETS[f"omniglot-{_n}way-{_k}shot"] = _omniglot(_n, _k)
for _k in (1, 5):
    PRESETS[f"miniimagenet-5way-{_k}shot"] = _miniimagenet(_k)

# Short CPU runs (2 shared cores, minutes rather than hours). Same problem,
# step sizes and inner loop as the paper's presets, fewer and smaller meta-batches; one thread
# (several OpenMP threads on shared cores stall each other).
PRESETS["omniglot-5way-1shot-cpu"] = {
    **PRESETS["omniglot-5way-1shot"], "iterations": 3000, "meta_batch": 16, "eval_every": 500,
    "eval_tasks": 100, "checkpoint_every": 1000, "threads": 1,
}
# MiniImagenet: 5 query images per class instead of 15 (the query set dominates the cost)
# in training and testing, 200 test episodes.
PRESETS["miniimagenet-5way-1shot-cpu"] = {
    **PRESETS["miniimagenet-5way-1shot"], "iterations": 600, "meta_batch": 2, "k_query": 5,
    "eval_query": 5, "eval_every": 200, "eval_tasks": 20, "test_tasks": 200,
    "checkpoint_every": 200, "eval_chunk": 10, "threads": 1,
}


def describe_presets() -> str:
    """Every preset of train_supervised.py with the flags it stands for, as text."""
    return presets_as_text(PRESETS)

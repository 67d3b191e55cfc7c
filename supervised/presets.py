"""Named hyper-parameter presets that reproduce the papers' settings.

Each preset is a plain dict of training-config overrides, keyed by a short name the scripts
accept as ``--preset NAME``. Sources are cited beside each entry.
"""

from __future__ import annotations

from typing import Any

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
PRESETS["sinusoid-demo"] = {**PRESETS["sinusoid"], "iterations": 8000, "eval_every": 2000,
                            "checkpoint_every": 2000}

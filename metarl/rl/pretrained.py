"""The meta-trained policies that ship with metarl, by name.

Each is a finished MAML-TRPO run folder with the same layout as any run that
``metarl train rl`` writes (``config.json``, ``results.json``, ``metrics.jsonl``,
``training.png``, ``checkpoints/best.pt``) plus ``evaluation.json``: the paper's adaptation
protocol on 40 test goals (seed 1) with that checkpoint. Use one wherever a run folder is
accepted, e.g. ``metarl adapt --pretrained halfcheetah-vel --goal 1.37``.
"""

from __future__ import annotations

from pathlib import Path

from metarl.errors import require

ROOT = Path(__file__).resolve().parents[1] / "pretrained"
"""The folder holding one sub-folder per pretrained run (installed with the package)."""

PRETRAINED = ("halfcheetah-vel", "halfcheetah-dir", "ant-vel", "ant-dir",
              "halfcheetah-vel-v0", "halfcheetah-dir-v0", "ant-vel-v0")
"""The names, paper benchmarks first (the ``-v1`` environments); ``-v0`` are the earlier
environment versions, kept so their evaluations can be reproduced."""


def pretrained_run(name: str) -> Path:
    """The run folder of the pretrained policy ``name`` (one of :data:`PRETRAINED`)."""
    require(name in PRETRAINED,
            f"no pretrained policy named {name!r}; choose one of {', '.join(PRETRAINED)}")
    folder = ROOT / name
    require((folder / "checkpoints" / "best.pt").is_file(),
            f"the pretrained policy {name!r} is missing from {folder} (reinstall metarl)")
    return folder

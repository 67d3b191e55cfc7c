#!/usr/bin/env python
"""Meta-train on a supervised few-shot family (sinusoid, Omniglot, MiniImagenet).

Examples::

    python scripts/train_supervised.py --preset sinusoid --k-shot 5 --out-dir runs/sin-k5
    python scripts/train_supervised.py --preset sinusoid --algo fomaml --out-dir runs/fo
    python scripts/train_supervised.py --out-dir runs/sin-k5 --preset sinusoid --resume

Every run writes config.json, checkpoints/, tb/ (TensorBoard), metrics.jsonl, results.json
and PNG plots into --out-dir. See README.md and docs/results.md.
"""

from __future__ import annotations

from metarl.runs.allocator import keep_freed_memory
from metarl.runs.cli import cli_errors, parse_with_preset
from metarl.runs.distributed import run_rank
from metarl.supervised.config import SupervisedConfig, apply_preset
from metarl.supervised.runner import train


def parse(argv: list[str] | None = None) -> SupervisedConfig:
    """Parse flags on top of the preset named by ``--preset`` (explicit flags win)."""
    return parse_with_preset(SupervisedConfig, apply_preset, argv, __doc__)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    cfg = parse(argv)
    keep_freed_memory()  # large tensors reuse freed heap memory (metarl/runs/allocator.py)
    results = train(cfg)
    if results is None:  # a non-zero rank of a distributed run
        return
    test = results["test"]
    metric = "accuracy" if "accuracy_mean" in test else "loss"
    print(f"\n{cfg.algo} on {cfg.family}: test {metric} over {test['n_tasks']} tasks")
    for s in (0, 1, len(test["steps"]) - 1):
        if s < len(test["steps"]):
            print(f"  after {s:2d} steps: {test[f'{metric}_mean'][s]:.4f} "
                  f"± {test[f'{metric}_ci95'][s]:.4f}")
    print(f"results: {cfg.out_dir / 'results.json'}")
    print(f"plots:   {', '.join(str(cfg.out_dir / p) for p in results['plots'])}")


if __name__ == "__main__":
    run_rank(main)  # torchrun ranks skip interpreter finalisation: metarl.runs.distributed

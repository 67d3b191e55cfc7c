"""Meta-train on a supervised few-shot family (sinusoid, Omniglot, MiniImagenet).

Examples::

    metarl train supervised --preset sinusoid --k-shot 5 --out-dir runs/sin-k5
    metarl train supervised --preset sinusoid --algo fomaml --out-dir runs/fo
    metarl train supervised --out-dir runs/sin-k5 --preset sinusoid --resume

Every run writes config.json, checkpoints/, tb/ (TensorBoard), metrics.jsonl, results.json
and PNG plots into --out-dir.
"""

from __future__ import annotations

from typing import Any

from metarl.runs.allocator import keep_freed_memory
from metarl.runs.cli import cli_errors, parse_with_preset
from metarl.supervised.config import SupervisedConfig, apply_preset
from metarl.supervised.runner import train


def report(cfg: SupervisedConfig, results: dict[str, Any]) -> None:
    """The finished run for the terminal: its test metric after 0, 1 and all steps, and where
    its results and plots are."""
    test = results["test"]
    metric = "accuracy" if "accuracy_mean" in test else "loss"
    print(f"\n{cfg.algo} on {cfg.family}: test {metric} over {test['n_tasks']} tasks")
    for s in (0, 1, len(test["steps"]) - 1):
        if s < len(test["steps"]):
            print(f"  after {s:2d} steps: {test[f'{metric}_mean'][s]:.4f} "
                  f"± {test[f'{metric}_ci95'][s]:.4f}")
    print(f"results: {cfg.out_dir / 'results.json'}")
    print(f"plots:   {', '.join(str(cfg.out_dir / p) for p in results['plots'])}")


@cli_errors
def main(argv: list[str] | None = None) -> None:
    """``metarl train supervised``: :func:`metarl.supervised.runner.train` with the flags of
    :class:`SupervisedConfig` on top of the preset named by ``--preset`` (flags given
    explicitly win), then :func:`report` (on rank 0 of a distributed run: the others return
    nothing to report)."""
    cfg = parse_with_preset(SupervisedConfig, apply_preset, argv, __doc__)
    keep_freed_memory()  # large tensors reuse freed heap memory (metarl.runs.allocator)
    results = train(cfg)
    if results is not None:
        report(cfg, results)

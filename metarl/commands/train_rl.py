"""Meta-train a policy with MAML-TRPO on a metarl task distribution (MAML section 5.3).

Examples::

    metarl train rl --preset navigation --out-dir runs/nav-maml
    metarl train rl --preset halfcheetah-vel --device cuda --out-dir runs/hc-vel-v1
    metarl train rl --preset navigation --out-dir runs/nav-maml --resume

The run folder gets config.json, checkpoints/ (the newest ones, and best.pt: the policy
selected by --select-best, which metarl adapt evaluates), tb/ (TensorBoard), metrics.jsonl,
results.json and training.png (returns before and after adaptation, validation returns, KL,
line search, against the iteration; the time split into sampling / inner / outer is in
metrics.jsonl and TensorBoard).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from metarl.rl.config import RLConfig, apply_rl_preset
from metarl.rl.runner import train
from metarl.runs.allocator import keep_freed_memory
from metarl.runs.cli import cli_errors, parse_with_preset


def report(cfg: RLConfig, results: dict[str, Any]) -> None:
    """The run for the terminal: the returns before and after adaptation over its last 10
    iterations, the policy it selected, and where its results and plots are."""
    summary, best = results["last_10_iterations"], results.get("best") or {}
    print(f"\nMAML-TRPO on {results['env']}: {results['iterations']} iterations in "
          f"{results['train_seconds']:.0f} s")
    print(f"  return before adaptation (last 10 iterations): "
          f"{summary['returns/before_adaptation']:.2f}")
    print(f"  return after adaptation  (last 10 iterations): "
          f"{summary['returns/after_adaptation']:.2f}")
    if best.get("score") is not None and math.isfinite(best["score"]):
        print(f"  selected policy (checkpoints/best.pt, by {best['selected_by']}): "
              f"iteration {best['iteration']}, score {best['score']:.2f}")
    run_dir = Path(cfg.out_dir)
    print(f"results: {run_dir / 'results.json'}\nplots:   {run_dir / 'training.png'}")
    print(f"evaluate: metarl adapt --run-dir {run_dir}")


@cli_errors
def main(argv: list[str] | None = None) -> None:
    """``metarl train rl``: :func:`metarl.rl.runner.train` with the flags of :class:`RLConfig`
    on top of the preset named by ``--preset`` (flags given explicitly win), then
    :func:`report` (on rank 0 of a distributed run: the others return nothing to report)."""
    cfg = parse_with_preset(RLConfig, apply_rl_preset, argv, __doc__)
    keep_freed_memory()  # large tensors reuse freed heap memory (metarl.runs.allocator)
    results = train(cfg)
    if results is not None:
        report(cfg, results)

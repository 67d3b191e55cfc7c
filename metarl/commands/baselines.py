"""Baselines of the MAML paper's RL comparison (section 5.3, Figure 5), evaluated exactly
like MAML (same goals, same adaptation steps and step sizes):

* pretrained: one policy trained with Stable-Baselines3 PPO on the task mixture (a new task at
  every episode, no task information), its weights mapped into our Gaussian policy;
* random: a freshly initialised policy;
* oracle: PPO with the task parameters in the observation.

Examples::

    metarl baselines --baseline pretrained --env metarl/Navigation2D-v0 \\
        --ppo-timesteps 500000 --out-dir runs/nav-pretrained
    metarl baselines --baseline random --env metarl/Navigation2D-v0 --out-dir runs/nav-random
"""

from __future__ import annotations

from metarl.commands import run_command
from metarl.rl.paper_baselines import BaselineConfig, train_baseline


def main(argv: list[str] | None = None) -> None:
    """``metarl baselines``: :func:`train_baseline` with the flags of :class:`BaselineConfig`."""
    run_command(BaselineConfig, train_baseline, argv, __doc__)

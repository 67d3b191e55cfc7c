"""Adapt a trained policy to new goals and measure it, with the MAML paper's protocol.

For each goal (one given with --goal, a --goals-file, or --num-tasks goals drawn with --seed)
the policy rolls out --timesteps steps of episodes, takes a REINFORCE step (α, then α/2), and
so on for --steps steps. A meta-trained policy is adapted with its run's own inner update
(inner loss, discounting, GAE λ, advantage normalisation, horizon: the step it was trained
for); a baseline's policy with the paper's. Returns per goal and step go to results.json
(with each reward term's mean per step and the share of episodes the env ended) and
returns.csv, the curve of the mean return against gradient steps to returns.png, the adapted
policies to adapted_policy.pt, and with --video a before/after animation (GIF) of the first
goal.

Examples::

    metarl adapt --run-dir runs/nav-maml                  # 40 test goals
    metarl adapt --run-dir runs/nav-maml --goal 0.3 -0.2 --video
    metarl adapt --pretrained halfcheetah-vel --goal 1.5  # a policy shipped with metarl
    metarl adapt --policy runs/nav-pretrained/policy.pt   # a baseline's policy
"""

from __future__ import annotations

from metarl.commands import run_command
from metarl.rl.adaptation import AdaptConfig, adapt_to_goals


def main(argv: list[str] | None = None) -> None:
    """``metarl adapt``: :func:`adapt_to_goals` with the flags of :class:`AdaptConfig`."""
    run_command(AdaptConfig, adapt_to_goals, argv, __doc__)

"""List the training presets and the flags each one stands for.

A preset only changes defaults: ``metarl train rl --preset ant-dir --out-dir runs/x`` is the
same run as the flags printed for ``ant-dir`` here, and any flag given explicitly wins.
``metarl train <kind> --preset NAME --help`` shows the same values as that command's defaults.

Examples::

    metarl presets                 # every preset of both kinds
    metarl presets --kind rl       # the meta-RL presets only
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metarl.commands import run_command


@dataclass
class PresetsFlags:
    """Which presets to list."""

    kind: Literal["all", "rl", "supervised"] = "all"
    """The presets of ``metarl train rl``, of ``metarl train supervised``, or both."""


def list_presets(flags: PresetsFlags) -> None:
    """Print the presets of the chosen kind(s), each with the flags it sets."""
    from metarl.rl.config import describe_presets as rl_presets
    from metarl.supervised.presets import describe_presets as supervised_presets

    parts = []
    if flags.kind in ("all", "supervised"):
        parts.append("metarl train supervised --preset NAME\n\n" + supervised_presets())
    if flags.kind in ("all", "rl"):
        parts.append("metarl train rl --preset NAME\n\n" + rl_presets())
    print("\n\n".join(parts))


def main(argv: list[str] | None = None) -> None:
    """``metarl presets``: :func:`list_presets` with the flags of :class:`PresetsFlags`."""
    run_command(PresetsFlags, list_presets, argv, __doc__, heap=False)

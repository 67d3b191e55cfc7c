"""Command-line parsing shared by the training scripts: tyro plus named presets."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import tyro

C = TypeVar("C")


def parse_with_preset(
    cls: type[C],
    apply_preset: Callable[[C, str | None], C],
    argv: list[str] | None,
    description: str | None,
) -> C:
    """Parse ``argv`` into ``cls`` on top of the preset named by ``--preset``.

    The preset only changes defaults: every flag given explicitly wins, and ``--help`` shows
    the preset's values as the defaults.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    preset = None
    for i, arg in enumerate(args):
        if arg == "--preset" and i + 1 < len(args):
            preset = args[i + 1]
        elif arg.startswith("--preset="):
            preset = arg.split("=", 1)[1]
    default = apply_preset(cls(), preset)
    cfg = tyro.cli(cls, default=default, args=args, description=description)
    return replace(cfg, preset=preset) if preset else cfg  # type: ignore[type-var]

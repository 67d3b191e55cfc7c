"""Command-line plumbing shared by every entry point: one-line errors and tyro with presets."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from typing import ParamSpec, TypeVar

import tyro

from metarl.errors import MetaRLError
from metarl.runs.runlock import release_run_dirs

C = TypeVar("C")
P = ParamSpec("P")
R = TypeVar("R")


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a script's ``main`` so a :class:`MetaRLError` prints one line and exits with 2;
    the run folders ``main`` locked are released when it ends, however it ends."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MetaRLError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            release_run_dirs()

    return wrapper


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

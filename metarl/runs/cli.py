"""Command-line plumbing shared by every entry point: one-line errors, tyro with presets, the
choices of ``Literal`` settings checked, and presets described."""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass, replace
from functools import wraps
from typing import Any, Literal, ParamSpec, TypeVar

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
    return tyro.cli(cls, default=default, args=args, description=description)


def with_preset(cfg: C, presets: Mapping[str, Mapping[str, Any]], name: str | None) -> C:
    """``cfg`` with the values of ``presets[name]`` and its ``preset`` field set to ``name``
    (an unknown name is one clear error); ``None`` leaves ``cfg`` as it is."""
    if name is None:
        return cfg
    if name not in presets:
        raise MetaRLError(f"unknown --preset {name!r}; choose {say_choices(tuple(presets))}")
    return replace(cfg, **{**presets[name], "preset": name})  # type: ignore[type-var]


def choices_of(annotation: Any) -> tuple[Any, ...]:
    """The values a ``Literal[...]`` annotation allows (``None`` too for ``Literal[...] | None``),
    or ``()`` for any other type."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [choices_of(arg) if arg is not type(None) else (None,)
                   for arg in typing.get_args(annotation)]
        if all(members):
            return tuple(value for member in members for value in member)
    return ()


def say_choices(choices: tuple[Any, ...]) -> str:
    """``"a or b"``, ``"one of a, b, c"``: how an error names the allowed values."""
    names = [str(c) for c in choices if c is not None]
    return " or ".join(names) if len(names) == 2 else f"one of {', '.join(names)}"


def check_choices(cfg: object, prefix: str = "") -> None:
    """Raise one clear :class:`MetaRLError` for the first setting of the dataclass ``cfg`` (or
    of a dataclass inside it, named ``--outer.inner``) whose value its ``Literal`` type does not
    allow: what tyro checks on the command line, checked for configs built in code or read
    from a run's config.json."""
    hints = typing.get_type_hints(type(cfg))
    for f in fields(cfg):  # type: ignore[arg-type]
        value = getattr(cfg, f.name)
        flag = prefix + f.name.replace("_", "-")
        if is_dataclass(value):
            check_choices(value, flag + ".")
            continue
        choices = choices_of(hints[f.name])
        if choices and value not in choices:
            raise MetaRLError(f"unknown --{flag} {value!r}; choose {say_choices(choices)}")


def presets_as_text(presets: Mapping[str, Mapping[str, Any]], width: int = 88) -> str:
    """The presets as text: each name, then the flags it stands for (``--preset NAME`` puts
    these values in place of the defaults; a flag given explicitly still wins)."""

    def flag(name: str, value: Any) -> str:
        name = name.replace("_", "-")
        if isinstance(value, bool):
            return f"--{name}" if value else f"--no-{name}"
        shown = " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        return f"--{name} {shown}"

    blocks = []
    for name, values in presets.items():
        lines = [f"{name}:"]
        line = " "
        for piece in (flag(k, v) for k, v in values.items()):
            if len(line) + 1 + len(piece) > width and line.strip():
                lines.append(line)
                line = " "
            line += " " + piece
        blocks.append("\n".join([*lines, line] if line.strip() else lines))
    return "\n".join(blocks)

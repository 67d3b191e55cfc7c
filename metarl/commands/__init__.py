"""The ``metarl`` command: one entry point whose commands run the toolkit's package functions.

::

    metarl --help
    metarl train rl --preset navigation --out-dir runs/nav-maml
    metarl train supervised --preset sinusoid --out-dir runs/sin-k5
    metarl adapt --pretrained halfcheetah-vel --goal 1.5

Training and plotting name their kind (``metarl train rl``, ``metarl train supervised``)
instead of guessing it from a preset: the two kinds take different flags, which ``--help``
can show only once the kind is known; a run may be started or resumed without a preset; and
one name could come to mean a preset of each kind.

Each command is a module of this package whose ``main(argv)`` parses the flags and calls one
package function (``metarl adapt`` calls :func:`metarl.rl.adaptation.adapt_to_goals`).
The scripts in the repository's ``scripts/`` folder are the same commands under their old names
(:func:`script_main`), so a script and its command cannot drift apart. This package is the one
place that imports both :mod:`metarl.rl` and :mod:`metarl.supervised`; nothing else in metarl
imports it.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, Protocol, TypeVar

import tyro

from metarl.runs.allocator import keep_freed_memory
from metarl.runs.cli import cli_errors

C = TypeVar("C")

PROGRAM = "metarl"


@dataclass(frozen=True)
class Command:
    """One word of the command line: its line in ``--help``, and what it runs."""

    summary: str
    """What it does, in one line."""
    target: str | dict[str, Command]
    """The module whose ``main(argv)`` runs it, or the commands one level below it
    (``metarl train`` → ``rl``, ``supervised``)."""


COMMANDS: dict[str, Command] = {
    "train": Command("meta-train a run", {
        "rl": Command("meta-train a policy with MAML-TRPO on a task distribution",
                      "metarl.commands.train_rl"),
        "supervised": Command("meta-train on a few-shot family (sinusoid, Omniglot, "
                              "MiniImagenet)", "metarl.commands.train_supervised"),
    }),
    "adapt": Command("adapt a trained policy to new goals and measure it (the paper's protocol)",
                     "metarl.commands.adapt"),
    "evaluate": Command("evaluate a supervised run's checkpoint on held-out tasks",
                        "metarl.commands.evaluate"),
    "baselines": Command("train and evaluate an RL baseline of the paper: pretrained, random, "
                         "oracle", "metarl.commands.baselines"),
    "plot": Command("compare runs in one figure", {
        "rl": Command("return against adaptation steps of adapt and baselines evaluations",
                      "metarl.commands.plot_rl"),
        "supervised": Command("test curves (and sinusoid predictions) of finished supervised "
                              "runs", "metarl.commands.plot_supervised"),
    }),
    "data": Command("convert Omniglot or MiniImagenet once into the caches training reads",
                    "metarl.commands.data"),
    "sinusoid": Command("reproduce the paper's sinusoid regression results (all algorithms)",
                        "metarl.commands.sinusoid"),
    "presets": Command("list the training presets and the flags each one sets",
                       "metarl.commands.presets"),
}
"""Every command, in the order ``metarl --help`` lists them."""


def _run(target: str, argv: list[str] | None) -> object:
    """``main(argv)`` of the command module ``target``, imported only when its command runs
    (``metarl --help`` need not load MuJoCo or matplotlib) and looked up then (a test may
    stand in for it)."""
    return importlib.import_module(target).main(argv)


def leaves(commands: dict[str, Command] | None = None,
           prefix: str = "") -> Iterator[tuple[str, Command]]:
    """``("train rl", command)`` for every command of ``commands`` (default: all) that runs
    something, in order."""
    for name, command in (COMMANDS if commands is None else commands).items():
        if isinstance(command.target, dict):
            yield from leaves(command.target, f"{prefix}{name} ")
        else:
            yield prefix + name, command


def find(words: str) -> str:
    """The module that runs the command ``words`` (``"train rl"``)."""
    found = dict(leaves()).get(words)
    if found is None:
        raise KeyError(f"no metarl command {words!r}")
    assert isinstance(found.target, str)
    return found.target


def help_text(commands: dict[str, Command], prog: str) -> str:
    """The help of ``prog``: its usage and every command under it, one line each."""
    rows = list(leaves(commands))
    width = max(len(name) for name, _ in rows) + 3
    lines = [f"usage: {prog} <command> [flags]", ""]
    if prog == PROGRAM:
        lines += ["Model-agnostic meta-learning (MAML, FOMAML, Reptile, MAML-TRPO) for few-shot",
                  "supervised learning and meta-RL.", ""]
    lines += ["commands:", *(f"  {name:<{width}}{c.summary}" for name, c in rows), "",
              f"`{prog} <command> --help` shows a command's flags."]
    return "\n".join(lines)


def _refuse(message: str) -> NoReturn:
    """A mistake on the command line: one line on stderr, exit status 2 (as tyro's)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


@contextmanager
def _program_name(prog: str) -> Iterator[None]:
    """Name the program ``prog`` while a command runs: its parsers (tyro, argparse) take the
    name in their usage lines from ``sys.argv[0]``, so ``metarl adapt --help`` reads
    ``usage: metarl adapt …`` rather than the path of the installed ``metarl`` file."""
    saved = sys.argv[0] if sys.argv else None
    if sys.argv:
        sys.argv[0] = prog
    else:
        sys.argv.append(prog)
    try:
        yield
    finally:
        if saved is None:
            sys.argv.pop(0)
        else:
            sys.argv[0] = saved


def _dispatch(commands: dict[str, Command], args: list[str], prog: str) -> None:
    """Run the command ``args[0]`` of ``commands`` with the rest of ``args``."""
    if args[:1] in (["-h"], ["--help"]):
        print(help_text(commands, prog))
        return
    if prog == PROGRAM and args[:1] == ["--version"]:
        from metarl import __version__

        print(f"{PROGRAM} {__version__}")
        return
    names = ", ".join(commands)
    if not args:
        _refuse(f"{prog} needs a command: {names} (`{prog} --help` says what each does)")
    name, rest = args[0], args[1:]
    command = commands.get(name)
    if command is None:
        close = difflib.get_close_matches(name, list(commands), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        _refuse(f"{prog} has no command {name!r}{hint}; choose one of {names} "
                f"(`{prog} --help` says what each does)")
    if isinstance(command.target, dict):
        _dispatch(command.target, rest, f"{prog} {name}")
        return
    with _program_name(f"{prog} {name}"):
        _run(command.target, rest)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``metarl`` command line ``argv`` (default: this process's arguments)."""
    _dispatch(COMMANDS, list(sys.argv[1:] if argv is None else argv), PROGRAM)


def console() -> None:
    """The installed ``metarl`` executable (and ``python -m metarl``): :func:`main`, ended as a
    ``torchrun`` rank is (:func:`metarl.runs.distributed.run_rank`), so that every rank of
    ``torchrun … -m metarl train …`` ends with its own status; in one process, just
    :func:`main`."""
    from metarl.runs.distributed import run_rank

    try:
        run_rank(main)
    except BrokenPipeError:  # the reader went away (`metarl --help | head -1`): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at exit's flush
        raise SystemExit(1) from None


class ScriptMain(Protocol):
    """A script's ``main``: its command line (default: the process's arguments) to run."""

    def __call__(self, argv: list[str] | None = None) -> object: ...


def script_main(command: str) -> ScriptMain:
    """The ``main(argv)`` of a script in ``scripts/`` that is the command ``command``
    (``"adapt"``) under its old name: the command module's own ``main``."""
    target = find(command)

    def main(argv: list[str] | None = None) -> object:
        return _run(target, argv)

    return main


@cli_errors
def run_command(flags: type[C], action: Callable[[C], object], argv: list[str] | None,
                description: str | None, *, heap: bool = True) -> None:
    """What every command's ``main`` does: parse ``argv`` into the dataclass ``flags`` (tyro;
    ``description`` heads ``--help``), then ``action(flags)``. A :class:`MetaRLError` is one
    line and exit status 2, and the run folders locked are given up however it ends
    (:func:`cli_errors`). ``heap``: keep freed memory on the heap first
    (:func:`keep_freed_memory`), for commands that train or evaluate."""
    cfg = tyro.cli(flags, args=argv, description=description)
    if heap:
        keep_freed_memory()
    action(cfg)


@dataclass(kw_only=True)
class FigureFlags:
    """The flags of every plot command: the figure's file, legend and title."""

    out: Path
    """Output PNG."""
    labels: list[str] = field(default_factory=list)
    """Legend labels, one per input (default: each input's own name: a run's algorithm, an
    evaluation's label)."""
    title: str = ""
    """Figure title (default: none for runs, the env id for evaluations)."""

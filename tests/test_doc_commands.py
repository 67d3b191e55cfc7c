"""Every script command and ``metarl`` command the docs show still parses: flags renamed or
removed since a command was written would otherwise leave README/docs lines that fail when a
user pastes them.

Each command is run through its real entry point (a script through ``runpy`` with
``__main__``, a ``metarl …`` line through :func:`metarl.commands.main`) with ``tyro``'s parser
wrapped so that it stops right after its flags parsed -- nothing is trained, written or
loaded. Commands come from fenced shell blocks in README.md and docs/*.md (``\\``
continuations joined, ``NAME="..."`` assignments of the block substituted), from inline code
spans that give a command with at least one flag, and from the usage lines in the docstrings
of the scripts and of the ``metarl`` command's modules. docs/bad_inputs.md is left out: its
commands are wrong on purpose.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import runpy
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tyro
import tyro.extras

import metarl.commands

from .conftest import REPO

METARL = "metarl"
"""The name under which a ``metarl …`` command is collected (in place of a script's)."""
SCRIPTS = {p.name: p for p in (REPO / "scripts").rglob("*.py") if "device" not in p.parts}
"""Every tyro script by file name (names are unique under scripts/); scripts/device/ is left
out: its scripts use argparse, as they run on a GPU machine before anything is installed."""
SHELL_OPERATORS = {"|", "||", "&", "&&", ";", "<"}
PLACEHOLDERS = ("…", "...", "<", "[", "{")
"""A line holding one of these is a template (``--out-dir <folder>``), not a command."""


def _fenced_lines(text: str) -> Iterator[str]:
    """Lines of the non-Python fenced blocks, continuations joined, block variables expanded."""
    for match in re.finditer(r"```(\w*)\n(.*?)```", text, re.S):
        if match.group(1) in ("python", "text", "json"):
            continue
        variables: dict[str, str] = {}
        for line in match.group(2).replace("\\\n", " ").splitlines():
            assignment = re.match(r'^([A-Z][A-Z0-9_]*)="([^"]*)"', line)
            if assignment:
                variables[assignment.group(1)] = assignment.group(2)
                continue
            for name, value in variables.items():
                line = line.replace("${" + name + "}", value).replace("$" + name, value)
            yield line


def _script_calls(line: str, *, inline: bool) -> Iterator[tuple[str, list[str]]]:
    """``(script, args)`` for each ``[VAR=x] [python | torchrun …] scripts/name.py args`` in one
    line, and ``("metarl", args)`` for each ``metarl args`` (or ``python -m metarl args``); in
    an inline span the ``scripts/`` may be left out, but a flag must be given (else it is a
    mention of the script, not a command)."""
    if any(p in line for p in PLACEHOLDERS):
        return
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return
    segments: list[list[str]] = [[]]
    for token in tokens:
        if token in SHELL_OPERATORS or re.match(r"^\d?>", token):
            segments.append([])
        else:
            segments[-1].append(token)
    for seg in segments:
        while seg and re.match(r"^[A-Z_][A-Z0-9_]*=", seg[0]):
            seg = seg[1:]
        if seg and Path(seg[0]).name in ("python", "python3"):
            seg = seg[1:]
        elif seg and Path(seg[0]).name == "torchrun":  # its own options, up to the script
            while seg and not seg[0].endswith(".py") and seg[:2] != ["-m", METARL]:
                seg = seg[1:]
        if seg[:2] == ["-m", METARL]:
            seg = seg[1:]
        if seg and seg[0] == METARL:
            if not inline or any(a.startswith("--") for a in seg[1:]):
                yield METARL, seg[1:]
            continue
        if not seg or Path(seg[0]).name not in SCRIPTS:
            continue
        args = seg[1:]
        if inline and not any(a.startswith("--") for a in args):
            continue
        if not inline and not seg[0].startswith(("scripts/", "./scripts/")):
            continue
        if "=" in seg[0] or ">" in " ".join(args):
            continue  # redirections the split above did not catch
        args = [a for a in args if not re.match(r"^\d?>", a)]
        # a fenced command keeps its path (it must exist as written); an inline span its name
        yield (seg[0].removeprefix("./") if not inline else Path(seg[0]).name), args


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """``(where, script, args)`` for every command the docs and script docstrings show."""
    found: list[tuple[str, str, list[str]]] = []
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for path in docs:
        if path.name == "bad_inputs.md":
            continue
        text = path.read_text()
        for line in _fenced_lines(text):
            for script, args in _script_calls(line, inline=False):
                found.append((path.name, script, args))
        for span in re.findall(r"`([^`\n]+)`", text):
            for script, args in _script_calls(span, inline=True):
                found.append((path.name, script, args))
    modules = sorted((REPO / "metarl" / "commands").glob("*.py"))
    for source in [*sorted(SCRIPTS.values()), *modules]:
        docstring = ast.get_docstring(ast.parse(source.read_text())) or ""
        for line in docstring.replace("\\\n", " ").splitlines():
            if line.strip().startswith(("python scripts/", f"{METARL} ")):
                for name, args in _script_calls(line, inline=False):
                    found.append((str(source.relative_to(REPO)), name, args))
    return found


class _Parsed(BaseException):
    """Raised by the wrapped parser once a command's flags parsed; stops the script there."""


COMMANDS = documented_commands()


def test_the_docs_show_commands_of_every_kind():
    """The collector finds what it should (guards against a regex that silently finds none)."""
    scripts = {Path(script).name for _, script, _ in COMMANDS}
    assert len(COMMANDS) >= 50
    assert {"train_rl.py", "adapt_rl.py", "baselines_rl.py", "train_supervised.py",
            "reproduce_sinusoid.py", "evaluate.py", "plot_rl.py", METARL} <= scripts
    # README's torchrun lines (the torchrun options are dropped, the script's kept)
    torchrun = [a for w, s, a in COMMANDS if w == "README.md" and "runs/sin-ddp" in a]
    assert torchrun and torchrun[0][:2] == ["--preset", "sinusoid"]


def test_every_metarl_command_shows_an_example():
    """Each command's own module shows at least one use of it in its docstring (its --help)."""
    shown = [" ".join(args) + " " for where, script, args in COMMANDS
             if script == METARL and where.startswith("metarl/commands/")]
    for words, command in metarl.commands.leaves():
        assert any(line.startswith(words + " ") for line in shown), \
            f"metarl {words}: no example in the docstring of {command.target}"


@pytest.mark.parametrize(
    ("where", "script", "args"), COMMANDS,
    ids=[f"{w}:{s}:{' '.join(a)[:60]}" for w, s, a in COMMANDS],
)
def test_documented_command_parses(where, script, args, monkeypatch):
    real_cli, real_subcommands = tyro.cli, tyro.extras.subcommand_cli_from_dict

    def parse_then_stop(real):
        def wrapped(*a, **k):
            real(*a, **k)
            raise _Parsed

        return wrapped

    monkeypatch.setattr(tyro, "cli", parse_then_stop(real_cli))
    monkeypatch.setattr(tyro.extras, "subcommand_cli_from_dict", parse_then_stop(real_subcommands))
    if script == METARL:
        _check_metarl_command(where, args)
        return
    path = REPO / script if "/" in script else SCRIPTS[script]
    assert path.is_file(), f"{where}: `{script}` is not a script of this repository"
    monkeypatch.setattr(sys, "argv", [str(path.relative_to(REPO)), *args])
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(path), run_name="__main__")
    except _Parsed:
        return
    except SystemExit as exit_:
        pytest.fail(f"{where}: `{script} {' '.join(args)}` does not parse "
                    f"(exit {exit_.code}):\n{stderr.getvalue()[-1500:]}")
    pytest.fail(f"{where}: `{script} {' '.join(args)}` ran without reaching the flag parser")


def _check_metarl_command(where: str, args: list[str]) -> None:
    """``metarl args`` reaches its command's flag parser and the flags parse (or, for
    ``--help`` and ``--version``, the command line is answered without an error)."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            metarl.commands.main(args)
    except _Parsed:
        return
    except SystemExit as exit_:
        if exit_.code == 0 and "--help" in args:
            return
        pytest.fail(f"{where}: `metarl {' '.join(args)}` does not parse "
                    f"(exit {exit_.code}):\n{stderr.getvalue()[-1500:]}")
    if args[-1:] in (["--help"], ["-h"], ["--version"]):
        return
    pytest.fail(f"{where}: `metarl {' '.join(args)}` ran without reaching the flag parser")

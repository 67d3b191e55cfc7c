"""The ``metarl`` command (metarl.commands): its help, its one-line refusals, each command's
``--help`` through the real entry point, that a script and its command run the same function
on the same flags, and ``metarl adapt --pretrained``."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import metarl.commands
from metarl.commands import COMMANDS, leaves
from metarl.rl.pretrained import PRETRAINED, pretrained_run

from .conftest import REPO, Outcome, call_script


def metarl_process(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``python -m metarl args`` in a fresh interpreter, as a user runs the command."""
    return subprocess.run([sys.executable, "-m", "metarl", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "100"})


def metarl_here(*args: str) -> Outcome:
    """``metarl args`` in this process (:func:`metarl.commands.main`), as
    :func:`conftest.call_script` runs a script."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            metarl.commands.main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Outcome(code, out.getvalue(), err.getvalue())


def test_the_command_is_installed_by_pyproject():
    """``pip install metarl`` makes the ``metarl`` executable, and the package has the
    commands."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"metarl": "metarl.commands:console"}
    assert "metarl.commands" in project["tool"]["setuptools"]["packages"]


def test_help_lists_every_command_one_line_each():
    proc = metarl_process("--help")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "usage: metarl <command> [flags]"
    for words, command in leaves():
        listed = [line for line in lines if line.split()[:len(words.split())] == words.split()
                  and line.startswith("  ")]
        assert len(listed) == 1 and listed[0].rstrip().endswith(command.summary), words
    names = {words.split()[0] for words, _ in leaves()}
    assert names == set(COMMANDS) >= {"train", "adapt", "evaluate", "baselines", "plot", "data"}


@pytest.mark.parametrize("words", [words for words, _ in leaves()])
def test_each_command_has_help_under_its_own_name(words):
    """``metarl <command> --help`` through the entry point: status 0, the usage line names
    the command (not the path of the executable), and the command's module docstring."""
    proc = metarl_process(*words.split(), "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"usage: metarl {words} " in proc.stdout, proc.stdout[:500]
    assert "Example" in proc.stdout


def test_the_installed_executable_runs_the_command():
    """The ``metarl`` file pip writes beside the interpreter (where this environment has it
    installed) answers like ``python -m metarl``."""
    executable = Path(sys.executable).with_name("metarl")
    if not executable.is_file():
        pytest.skip("metarl is not installed as an executable in this environment")
    proc = subprocess.run([str(executable), "train", "rl", "--help"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "100"})
    assert proc.returncode == 0 and "usage: metarl train rl " in proc.stdout, proc.stderr


def test_a_group_lists_its_commands():
    out = metarl_here("plot", "--help")
    assert out.returncode == 0 and out.stdout.startswith("usage: metarl plot <command>")
    assert "  rl " in out.stdout and "  supervised " in out.stdout
    assert metarl_here("--version").stdout.strip() == f"metarl {metarl.__version__}"


@pytest.mark.parametrize(
    "args,message",
    [
        (["trian"], "error: metarl has no command 'trian' (did you mean train?); choose one of "
                    "train, adapt, evaluate, baselines, plot, data, sinusoid, presets "
                    "(`metarl --help` says what each does)"),
        (["plot", "gan"], "error: metarl plot has no command 'gan'; choose one of rl, "
                          "supervised (`metarl plot --help` says what each does)"),
        ([], "error: metarl needs a command: train, adapt, evaluate, baselines, plot, data, "
             "sinusoid, presets (`metarl --help` says what each does)"),
        (["plot"], "error: metarl plot needs a command: rl, supervised (`metarl plot --help` "
                   "says what each does)"),
    ],
)
def test_a_command_that_does_not_exist_is_one_line(args, message):
    out = metarl_here(*args)
    assert out.returncode == 2 and out.stderr.splitlines() == [message] and not out.stdout


def test_the_entry_point_refuses_in_one_line_too():
    proc = metarl_process("evalute")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: metarl has no command 'evalute' (did you mean evaluate?); choose one of train, "
        "adapt, evaluate, baselines, plot, data, sinusoid, presets (`metarl --help` says what "
        "each does)"]


SAME_FUNCTION = [
    ("adapt_rl.py", "adapt", "adapt_to_goals", ["--run-dir", "r", "--num-tasks", "2"]),
    ("baselines_rl.py", "baselines", "train_baseline", ["--baseline", "random", "--seed", "3"]),
    ("evaluate.py", "evaluate", "evaluate_run", ["--run-dir", "r", "--tasks", "5"]),
    ("plot_rl.py", "plot rl", "plot_evaluations", ["--results", "a", "b", "--out", "f.png"]),
    ("plot.py", "plot supervised", "plot_runs", ["--runs", "a", "--out", "f.png",
                                                 "--labels", "x"]),
    ("prepare_fewshot_data.py", "data", "prepare", ["omniglot", "--data-root", "d"]),
    ("reproduce_sinusoid.py", "sinusoid", "reproduce_sinusoid", ["--iterations", "5"]),
    ("train_supervised.py", "train supervised", "train", ["--preset", "sinusoid",
                                                          "--out-dir", "x"]),
    ("train_rl.py", "train rl", "train", ["--preset", "navigation", "--out-dir", "x"]),
]
"""(script, command, the package function both run, flags): every script in scripts/ that is
a command."""


@pytest.mark.parametrize(("script", "words", "function", "flags"), SAME_FUNCTION,
                         ids=[s for s, *_ in SAME_FUNCTION])
def test_a_script_and_its_command_run_the_same_function(
        monkeypatch: pytest.MonkeyPatch, script: str, words: str, function: str,
        flags: list[str]) -> None:
    """The command's module calls ``function``; stood in for, it receives the same arguments
    from the script as from ``metarl <command>`` given the same flags."""
    module = importlib.import_module(metarl.commands.find(words))
    calls: list[tuple[Any, ...]] = []

    def record(*args: Any, **kwargs: Any) -> list[Path] | None:
        calls.append((args, kwargs))
        return [] if function == "plot_runs" else None  # no files drawn

    monkeypatch.setattr(module, function, record)
    argv0 = sys.argv[0]
    ran = metarl_here(*words.split(), *flags)
    assert ran.returncode == 0, ran.stderr
    assert sys.argv[0] == argv0  # the command's name is given back
    assert call_script(script, *flags).returncode == 0
    assert len(calls) == 2 and calls[0] == calls[1] and calls[0] != ((), {})


WITHOUT_SCRIPT = {"presets"}
"""Commands that have no script: they only print what the package knows."""


def test_every_command_and_script_is_checked():
    """The table above holds every command, and every script in scripts/ that is one."""
    assert {words for _, words, _, _ in SAME_FUNCTION} \
        == {words for words, _ in leaves()} - WITHOUT_SCRIPT
    scripts = {p.name for p in (REPO / "scripts").glob("*.py")
               if "script_main(" in p.read_text()}
    assert scripts == {script for script, *_ in SAME_FUNCTION}


def test_pretrained_names_are_the_choices(tmp_path):
    out = metarl_here("adapt", "--pretrained", "walker", "--goal", "1.0")
    said = " ".join(out.stderr.replace("│", " ").split())
    assert out.returncode == 2 and "invalid choice 'walker'" in said
    assert all(repr(name) in said for name in PRETRAINED), said
    both = metarl_here("adapt", "--pretrained", PRETRAINED[0], "--run-dir", str(tmp_path))
    assert both.returncode == 2 and both.stderr.splitlines() == [
        "error: give exactly one of --run-dir, --pretrained, --checkpoint or --policy"]


def test_adapt_a_pretrained_policy(tmp_path, monkeypatch):
    """``metarl adapt --pretrained NAME --goal G``: the shipped run's best.pt, adapted with its
    run's inner update; the evaluation goes to runs/pretrained-NAME/ under the current folder,
    never into the installed package."""
    name = "halfcheetah-vel"
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in pretrained_run(name).iterdir())
    out = metarl_here("adapt", "--pretrained", name, "--goal", "1.5", "--steps", "1",
                      "--timesteps", "20", "--threads", "1")
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "runs" / f"pretrained-{name}" / "adapt-goal-1.5"
    result = json.loads((folder / "results.json").read_text())
    assert result["policy"]["pretrained"] == name and result["policy"]["selected_by"]
    assert result["policy"]["source"] == str(pretrained_run(name) / "checkpoints" / "best.pt")
    assert result["env"] == json.loads((pretrained_run(name) / "config.json").read_text())["env"]
    assert result["tasks"] == [[1.5]] and len(result["returns_mean"]) == 2
    assert sorted(p.name for p in pretrained_run(name).iterdir()) == before


def test_torchrun_runs_the_command_as_a_module(tmp_path):
    """``torchrun --nproc-per-node 2 -m metarl train supervised …``: both ranks train, each
    ends with status 0 (:func:`metarl.commands.console` ends them as a rank), rank 0 alone
    reports and writes the run folder."""
    out = tmp_path / "two"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "metarl", "train", "supervised", "--preset", "sinusoid", "--iterations", "4",
         "--meta-batch", "4", "--eval-every", "0", "--test-tasks", "4", "--k-shot", "5",
         "--out-dir", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("results: ") == 1 and (out / "results.json").is_file()


def test_a_reader_that_goes_away_is_no_traceback():
    """``metarl --help | head -1``: the help is cut short, and no traceback follows it."""
    proc = subprocess.Popen([sys.executable, "-m", "metarl", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    proc.stdout.close()  # before the command writes: its first write finds no reader
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in err, err


def test_presets_lists_each_kind_with_its_flags():
    """`metarl presets` prints every preset name of the kind asked for, with the flags it sets
    (the values come from the preset tables themselves)."""
    from metarl.rl.config import RL_PRESETS
    from metarl.supervised.presets import PRESETS

    rl = metarl_here("presets", "--kind", "rl")
    assert rl.returncode == 0, rl.stderr
    assert all(f"\n{name}:\n" in rl.stdout for name in RL_PRESETS)
    assert not any(f"\n{name}:\n" in rl.stdout for name in PRESETS if name not in RL_PRESETS)
    both = metarl_here("presets").stdout
    assert all(f"\n{name}:\n" in both for name in [*PRESETS, *RL_PRESETS])
    assert "--inner-lr 2.0" in both.split("\nomniglot-5way-1shot:\n")[1].split(":\n")[0]

"""The README's code examples run as written, and CI runs the README's test command."""

from __future__ import annotations

import re

from .conftest import REPO


def test_readme_python_example_runs() -> None:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert set(namespace["adapted"]) == set(namespace["params"])
    assert all(p.grad is not None for p in namespace["model"].parameters())


def test_ci_runs_the_readme_test_command():
    """.ci/run holds the README's spelled-out test command verbatim (the pytest line that
    `make test` also runs), so CI tests exactly what a user is told to run."""
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme
    block = re.search(r"Spelled out, the two commands are.*?```bash\n(.*?)```", readme, re.S)
    assert block, "README lost its spelled-out commands"
    commands = re.split(r"\n(?=python3 -m venv)", block.group(1).strip())
    test_command = commands[-1]
    assert test_command.rstrip().endswith(".venv/bin/python -m pytest -n auto")
    assert test_command in ci
    makefile = (REPO / "Makefile").read_text()
    assert "test: install\n\t$(BIN)/python -m pytest -n auto\n" in makefile


def test_env_examples_run() -> None:
    """The environment snippets of README.md and docs/envs.md run as written (the envs.md one
    for the sampler needs a policy and CUDA, so only its first, self-contained block runs)."""
    readme_blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    envs_blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "envs.md").read_text(), re.S)
    for where, block in (("README.md", readme_blocks[1]), ("docs/envs.md", envs_blocks[0])):
        namespace: dict = {}
        exec(compile(block, where, "exec"), namespace)
        assert len(namespace["tasks"]) == 40
        assert namespace["obs"].shape == namespace["env"].observation_space.shape

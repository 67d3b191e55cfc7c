"""The README's code example runs as written."""

from __future__ import annotations

import re

from .conftest import REPO


def test_readme_python_example_runs():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert set(namespace["adapted"]) == set(namespace["params"])
    assert all(p.grad is not None for p in namespace["model"].parameters())


def test_makefile_test_target_is_the_readme_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "\nmake test\n" in ci

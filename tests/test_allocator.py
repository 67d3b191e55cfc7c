"""The heap-only allocator setting: large tensors stop being mmap'd once it is applied."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys, torch
from metarl.runs.allocator import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks",
                                               "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
applied = keep_freed_memory()
before = libc.mallinfo2().hblks
x = torch.ones(64 * 2**20 // 4)  # 64 MiB: above glibc's largest mmap threshold
print(applied, libc.mallinfo2().hblks - before)
"""


def probe(env: dict[str, str] | None = None) -> tuple[str, int]:
    import os

    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, env={**os.environ, **(env or {})}).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="needs glibc >= 2.33")
def test_large_tensor_stays_on_the_heap_and_the_opt_out_keeps_glibc_defaults():
    assert probe() == ("True", 0)  # no new mmap'd block
    assert probe({"METARL_MALLOC": "default"}) == ("False", 1)  # glibc maps it


def test_unknown_setting_is_refused_before_anything_changes(monkeypatch: pytest.MonkeyPatch):
    from metarl.errors import MetaRLError
    from metarl.runs.allocator import keep_freed_memory

    monkeypatch.setenv("METARL_MALLOC", "glibc")
    with pytest.raises(MetaRLError, match="METARL_MALLOC='glibc'.*'heap'.*'default'"):
        keep_freed_memory()

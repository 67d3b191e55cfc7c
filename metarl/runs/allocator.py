"""Keep large CPU tensors on glibc's heap, so that freed memory is reused, not re-faulted.

PyTorch allocates CPU tensors with ``malloc``. glibc serves every request above its mmap
threshold (at most 32 MiB) with a fresh ``mmap`` and returns it with ``munmap`` on free, so
each such tensor costs a page fault per 4 KiB page when it is first written. A task-stacked
MAML-TRPO outer step builds hundreds of activation and gradient tensors of tasks × steps ×
100 hidden units × 4 bytes -- 64 MiB at the paper's HalfCheetah batch -- so a large batch can
spend much of its step in those faults (``scripts/benchmarks/bench_trpo.py --compare-malloc``
times a step both ways); smaller batches gain less, and on other allocators or platforms
there is nothing to do.

:func:`keep_freed_memory` switches the current process to heap-only allocation (``mallopt``:
no ``mmap`` for large blocks, no trimming of the heap's top), which is what a long training
process wants: its peak memory stays reserved and is reused every iteration, as CUDA's
caching allocator does on the GPU. Set ``METARL_MALLOC=default`` to keep glibc's behaviour
(e.g. to compare, as ``scripts/benchmarks/bench_trpo.py --compare-malloc`` does).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

from metarl.errors import require

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_ENV = "METARL_MALLOC"
_CHOICES = ("heap", "default")


def keep_freed_memory() -> bool:
    """Serve every allocation of this process from glibc's heap and never trim it; returns
    True if applied (glibc, and ``METARL_MALLOC`` not set to ``default``), False otherwise.

    ``METARL_MALLOC`` must be unset, ``heap`` or ``default``: anything else is a typo that
    would silently pick one of the two, so it is refused with a :class:`MetaRLError`."""
    choice = os.environ.get(_ENV, "heap")
    require(choice in _CHOICES, f"{_ENV}={choice!r} is not a known allocator setting: "
            f"set it to 'heap' (the default) or 'default' (glibc's own), or unset it")
    if choice == "default":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt, Windows)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success. The trim threshold is an int: 2 GiB - 1 is "never" here.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))

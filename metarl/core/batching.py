"""How the tasks of a meta-batch are computed: all at once, or one after another.

Every path gives the same meta-gradient (the tests hold each to the float64 per-task loop at
1e-10); they differ only in speed, and which one is fastest depends on the device and on the
shapes of the meta-batch. On a CPU, one ``torch.func.vmap`` call wins where each task is a few
small tensors (Omniglot's paper shape: 5 support and 5 query images per task), while a plain
loop over tasks wins where each task already fills the convolution kernels (15 query images
per class, MiniImagenet's 84×84 images): vmap turns the convolutions into grouped ones, which
the CPU kernels run slower than ungrouped ones, and it cannot use the fused batch-norm kernel
(:class:`~metarl.supervised.models.BatchStatNorm2d`). So rather than guess, ``auto`` times the
candidates on a meta-batch of the run's own shapes before training and keeps the fastest.

* ``batched``: the whole meta-batch in one call -- :func:`torch.func.vmap` over tasks, or the
  family's task-stacked loss where it has one (``adapt(..., autograd=True)``);
* ``loop``: a Python loop over the tasks, each with ordinary (unbatched) kernels.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Literal, get_args

import torch

TaskBatching = Literal["auto", "batched", "loop"]
"""``--task-batching``: ``auto`` (time both, keep the faster), ``batched`` or ``loop``."""
TASK_BATCHINGS: tuple[str, ...] = get_args(TaskBatching)
PATHS: tuple[str, ...] = ("batched", "loop")
"""The concrete paths ``auto`` chooses between."""


def time_paths(
    steps: Mapping[str, Callable[[], object]],
    *,
    repeats: int = 3,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Median wall-clock milliseconds of each ``steps`` entry over ``repeats`` timed calls.

    Each callable is called once untimed first (allocator and kernel warm-up). The timed
    calls alternate between the candidates, so that a change of load on a shared machine
    hits every candidate alike; on CUDA each call is synchronised.
    """
    dev = torch.device(device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for step in steps.values():
        step()
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync()
            tic = time.perf_counter()
            step()
            sync()
            seconds[name].append(time.perf_counter() - tic)
    return {name: 1e3 * statistics.median(s) for name, s in seconds.items()}


SWITCH_MARGIN = 0.1
"""``auto`` leaves ``batched`` only for a path faster by more than this fraction: timings on a
shared machine move by a few per cent, and near a tie two runs of one config should not
take different paths."""


def choose_path(ms: Mapping[str, float], default: str = "batched",
                margin: float = SWITCH_MARGIN) -> str:
    """The fastest path of ``ms`` (milliseconds per path), or ``default`` unless that one is
    slower by more than ``margin`` (a fraction of the default's time)."""
    best = min(ms, key=ms.__getitem__)
    if default in ms and ms[best] >= (1 - margin) * ms[default]:
        return default
    return best

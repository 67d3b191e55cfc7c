"""SPMD data parallelism over the meta-batch with ``torch.distributed``.

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...), every rank
runs the same script: it draws the same meta-batch of tasks from the shared seed, keeps its
contiguous shard of the tasks, and the per-rank means are averaged with all-reduce — the
meta-gradient (supervised), and for TRPO the policy gradient, every Hessian-vector product of
the conjugate gradient and the line-search objective/KL values. All ranks therefore take the
same steps and hold the same parameters; only rank 0 writes checkpoints, logs and results.

Backends: gloo on CPU, NCCL on CUDA (one GPU per rank, ``LOCAL_RANK``). Every collective has a
timeout, so a rank that dies makes the others fail with a clear message instead of hanging.
``torchrun`` itself stops the other ranks with SIGTERM as soon as one dies: a rank in training
then fails its next collective with that message, and one that is elsewhere (setting up,
evaluating) says that it was stopped (:func:`run_rank`); no rank ends without a line.
Without ``torchrun`` (or with ``WORLD_SIZE=1``) everything degrades to a single process with
no communication.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from metarl.errors import MetaRLError

DEFAULT_TIMEOUT_S = 300.0
T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files."""
        return self.rank == 0

    def shard(self, n: int, what: str = "--meta-batch") -> slice:
        """This rank's contiguous share of ``n`` items (``n`` must divide evenly)."""
        if n % self.world_size:
            raise MetaRLError(f"{what} {n} does not split evenly over {self.world_size} ranks; "
                              f"use a multiple of {self.world_size}")
        size = n // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)

    def mean(self, tensor: Tensor) -> Tensor:
        """The mean of ``tensor`` over ranks (identity in a single process)."""
        if not self.enabled:
            return tensor
        out = tensor.detach().clone()
        _collective(lambda: dist.all_reduce(out, op=dist.ReduceOp.SUM))
        return out / self.world_size

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is True on any rank (e.g. a stop request)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        _collective(lambda: dist.all_reduce(t, op=dist.ReduceOp.MAX))
        return bool(t.item() > 0)

    @property
    def device(self) -> torch.device:
        """Where collectives' tensors live (the rank's GPU under NCCL, else CPU)."""
        if self.enabled and dist.get_backend() == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def barrier(self) -> None:
        if self.enabled:
            _collective(dist.barrier)

    def mean_dict(self, values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-key means over ranks, with one all-reduce for the whole dict."""
        if not self.enabled:
            return dict(values)
        keys = list(values)
        flat = torch.cat([values[k].detach().reshape(-1).to(self.device) for k in keys])
        flat = self.mean(flat)
        out, offset = {}, 0
        for k in keys:
            n = values[k].numel()
            out[k] = flat[offset:offset + n].view_as(values[k]).to(values[k].device)
            offset += n
        return out

    def mean_scalars(self, scalars: Mapping[str, float | Tensor]) -> dict[str, float]:
        """Logged numbers averaged over ranks."""
        as_tensors = {k: torch.as_tensor(float(v), dtype=torch.float64) for k, v in
                      scalars.items()}
        return {k: float(v) for k, v in self.mean_dict(as_tensors).items()}

    def run_on_main(self, fn: Callable[[], T]) -> T | None:
        """Run ``fn`` on rank 0 only; if it raises a :class:`MetaRLError`, every rank raises it.

        Used for the steps only rank 0 does (creating the run folder), so that a user error
        there stops the whole job at once instead of leaving the other ranks waiting.
        """
        result: T | None = None
        message = ""
        if self.is_main:
            try:
                result = fn()
            except MetaRLError as err:
                message = str(err)
        if self.enabled:
            box = [message]
            _collective(lambda: dist.broadcast_object_list(box, src=0))
            message = box[0]
        if message:
            raise MetaRLError(message if self.is_main else f"(rank 0) {message}")
        return result


def _collective(fn: Callable[[], object]) -> None:
    try:
        fn()
    except RuntimeError as err:  # gloo/NCCL report a dead peer or a timeout this way
        raise MetaRLError(
            f"a collective operation failed on rank {dist.get_rank()} "
            f"({str(err).splitlines()[0]}); "
            "another rank has probably died — check its log; the last checkpoint is kept"
        ) from None


def init_distributed(device: str, timeout_s: float | None = None) -> DistContext:
    """Join the job ``torchrun`` started, or return a single-process context.

    The collective timeout is ``timeout_s``, else ``$METARL_DIST_TIMEOUT`` seconds, else 300.
    """
    if timeout_s is None:
        timeout_s = float(os.environ.get("METARL_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(rank=rank, world_size=world, local_rank=local_rank)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (if any); every rank calls it once its work is done.

    Without it, a rank that finishes first (the non-zero ranks return while rank 0 still
    writes results) tears the process group down during interpreter finalisation, where
    gloo's worker threads can abort the process (``terminate called without an active
    exception``, SIGABRT; seen in CI, pytorch/pytorch#190489). Only the normal path calls it:
    after an error a peer may still sit in a collective, and the process exits anyway.
    """
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group(ctx: DistContext) -> Iterator[DistContext]:
    """``with process_group(init_distributed(device)) as ctx:`` -- :func:`shutdown` once the
    work is done: on return, and on a clean stop (SIGINT/SIGTERM: the training loop's
    ``SystemExit(0)``, which every rank raises at the same iteration), but not after an
    error (a peer may still sit in a collective)."""
    try:
        yield ctx
    except SystemExit as stop:
        if stop.code in (0, None):
            shutdown(ctx)
        raise
    shutdown(ctx)


def _stopped_by_launcher(signum: int, frame: FrameType | None) -> None:
    """SIGTERM outside the training loop of a ``torchrun`` rank: one line, then the signal's
    own end (the status torchrun reports stays "SIGTERM").

    torchrun sends SIGTERM to every rank as soon as one fails (or when the job is stopped),
    and a rank that was not training (setting up, evaluating, waiting for nothing) would
    otherwise vanish without a word. A SIGTERM that arrives while an error is being handled
    (a collective that has just failed on the dead peer, its line on the way out) is ignored,
    so that the line is printed and the rank exits with its status."""
    if sys.exc_info()[1] is not None:
        return
    line = (f"error: rank {os.environ.get('RANK', '?')} stopped by SIGTERM, outside training "
            "(torchrun stops every rank once one of them fails, or when the job is stopped); "
            "the rank that failed says why\n")
    os.write(2, line.encode())  # unbuffered: the handler may have interrupted a print
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def _announce_termination() -> Iterator[None]:
    """Under ``torchrun``: :func:`_stopped_by_launcher` handles SIGTERM while the block runs
    (the training loop's own stop request takes over inside it, and hands back after); once
    the block ends in an error, SIGTERM is ignored, as that error is already being reported.
    A single process keeps Python's defaults."""
    if (int(os.environ.get("WORLD_SIZE", "1")) <= 1
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    signal.signal(signal.SIGTERM, _stopped_by_launcher)
    try:
        yield
    except BaseException:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise


def run_rank(main: Callable[[], object]) -> None:
    """A training script's ``__main__``: ``main()``, then :func:`end_rank`, also after a clean
    stop (``SystemExit(0)``), where the rank would otherwise meet the same teardown abort.

    Under ``torchrun`` an error ends the rank that way too, with its status (2 after a
    ``MetaRLError``'s line, 1 after a traceback): the process group is not left then (a peer
    may still sit in a collective), and the interpreter's finalisation would abort on gloo's
    threads (SIGABRT instead of the status). A SIGTERM never ends the rank without a line
    (:func:`_announce_termination`)."""
    with _announce_termination():
        try:
            main()
        except SystemExit as stop:
            if stop.code not in (0, None):
                end_rank(stop.code if isinstance(stop.code, int) else 1)
                raise
        except BaseException:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                traceback.print_exc()
                end_rank(1)
            raise
    end_rank()


def end_rank(status: int = 0) -> None:
    """End this ``torchrun`` rank's process now, with exit ``status``; no-op in a single process.

    Called by the scripts after ``main`` (and after :func:`shutdown` when it succeeded). Even with
    the process group destroyed, gloo can leave a joinable thread behind that the C++ runtime
    meets while the interpreter finalises, and the rank then aborts (``terminate called
    without an active exception``, SIGABRT) after all its work is done: rarely, at random,
    and enough to make ``torchrun`` report the whole job failed (pytorch/pytorch#190489).
    ``os._exit`` skips
    that finalisation. Everything a run writes is closed by then (checkpoints, results and
    event files are written atomically and closed), so only the standard streams are
    flushed first.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)

"""torch.distributed (gloo, CPU): 2 ranks take the same step as 1 process; a dead rank is
reported instead of hanging."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import socket
import subprocess
import sys
import time

import pytest
import torch

from metarl.core.functional import flatten, params_of
from metarl.errors import MetaRLError
from metarl.runs.checkpoint import load_checkpoint

from .conftest import REPO, run_script
from .test_maml_trpo import synthetic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(script: str, *args: str, nproc: int = 2, timeout: float = 600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", str(REPO / "scripts" / script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO)


SIN = ["--preset", "sinusoid", "--task-batching", "batched",
       "--iterations", "12", "--meta-batch", "4", "--eval-every", "6",
       "--eval-tasks", "10", "--test-tasks", "10", "--checkpoint-every", "6", "--k-shot", "5"]


def test_two_ranks_match_one_process_on_sinusoids(tmp_path):
    proc = torchrun("train_supervised.py", *SIN, "--out-dir", str(tmp_path / "two"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = subprocess.run([sys.executable, str(REPO / "scripts" / "train_supervised.py"), *SIN,
                             "--out-dir", str(tmp_path / "one")], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr[-3000:]
    a = load_checkpoint(tmp_path / "one" / "checkpoints" / "ckpt_00000012.pt")["model"]
    b = load_checkpoint(tmp_path / "two" / "checkpoints" / "ckpt_00000012.pt")["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-6), k
    # rank 0 alone wrote the run folder (one results.json, one set of event files)
    assert (tmp_path / "two" / "results.json").is_file()
    assert len(list((tmp_path / "two" / "tb").iterdir())) == 1


def _trpo_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from metarl.rl.maml_trpo import MAMLTRPO
    from metarl.rl.pg import PGBatch
    from metarl.runs.distributed import end_rank, init_distributed, shutdown

    torch.set_num_threads(1)
    ctx = init_distributed("cpu", timeout_s=60)
    policy, support, query = synthetic(n_tasks=4, episodes=6, horizon=8)
    part = ctx.shard(4)
    learner = MAMLTRPO(policy, inner_steps=1, inner_lr=0.2)
    learner.reduce = ctx.mean
    stats = learner.step(PGBatch(*(t[part] for t in support)), PGBatch(*(t[part] for t in query)))
    if ctx.is_main:
        torch.save({"params": flatten(params_of(policy)).detach(), "stats": stats}, out)
    shutdown(ctx)
    end_rank()


def test_two_ranks_match_one_process_for_a_trpo_step(tmp_path):
    out = tmp_path / "two.pt"
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=_trpo_worker, args=(r, 2, port, str(out))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    two = torch.load(out)
    from metarl.rl.maml_trpo import MAMLTRPO

    policy, support, query = synthetic(n_tasks=4, episodes=6, horizon=8)
    stats = MAMLTRPO(policy, inner_steps=1, inner_lr=0.2).step(support, query)
    assert stats["accepted"] == two["stats"]["accepted"] == 1.0
    assert abs(stats["kl"] - two["stats"]["kl"]) < 1e-9
    assert torch.allclose(flatten(params_of(policy)).detach(), two["params"], rtol=0, atol=1e-6)


def test_end_rank_exits_a_torchrun_rank_after_flushing_and_leaves_one_process_alone():
    code = ("import sys; from metarl.runs.distributed import end_rank; print('done', end=''); "
            "print('err', end='', file=sys.stderr); end_rank(); print(' and on')")
    for world, out in (("2", "done"), ("1", "done and on")):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=REPO, env={**os.environ, "WORLD_SIZE": world})
        assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, out, "err"), world


def test_a_clean_stop_also_leaves_the_process_group_and_ends_the_rank(monkeypatch):
    """SIGINT/SIGTERM end training in SystemExit(0) on every rank: like a normal return, the
    process group is left and the rank ended with end_rank (gloo's teardown abort otherwise);
    after an error neither happens."""
    import metarl.runs.distributed as distributed

    left = []
    monkeypatch.setattr(distributed, "shutdown", lambda ctx: left.append(ctx))
    ctx = distributed.DistContext()
    with distributed.process_group(ctx):
        pass
    with pytest.raises(SystemExit), distributed.process_group(ctx):
        raise SystemExit(0)
    for failure in (SystemExit(1), RuntimeError("boom")):
        with pytest.raises(type(failure)), distributed.process_group(ctx):
            raise failure
    assert left == [ctx, ctx]
    code = ("from metarl.runs.distributed import run_rank\n"
            "def stop(): print('stopped', end=''); raise SystemExit({})\n"
            "run_rank(stop); print(' and on')")
    for world, status, out in (("2", 0, "stopped"), ("1", 0, "stopped and on"),
                               ("2", 3, "stopped")):
        proc = subprocess.run([sys.executable, "-c", code.format(status)], capture_output=True,
                              text=True, cwd=REPO, env={**os.environ, "WORLD_SIZE": world})
        assert (proc.returncode, proc.stdout.strip()) == (status, out), (world, status)


def _dying_worker(rank: int, port: int, queue: mp.Queue) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from metarl.runs.distributed import init_distributed

    ctx = init_distributed("cpu", timeout_s=20)
    ctx.mean(torch.ones(3))  # one healthy collective
    if rank == 1:
        os._exit(17)  # dies without a word
    tic = time.time()
    try:
        ctx.mean(torch.ones(3))
        queue.put(("no error", time.time() - tic))
    except MetaRLError as err:
        queue.put((str(err), time.time() - tic))


def test_dead_rank_is_reported_not_hung(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_dying_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    message, waited = queue.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
    assert "another rank has probably died" in message
    assert waited < 60


RANK_0_DIES = """
import os, signal, sys, time
import torch
from metarl.runs.distributed import init_distributed, process_group, run_rank
from metarl.runs.cli import cli_errors

@cli_errors
def main() -> None:
    with process_group(init_distributed("cpu")) as ctx:
        ctx.barrier()
        if ctx.rank == 0:
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGKILL)
        if sys.argv[1] == "collective":
            ctx.mean(torch.ones(1))  # waits for the rank that dies
        time.sleep(60)  # busy elsewhere (setting up, evaluating) when torchrun stops it

run_rank(main)
"""


@pytest.mark.parametrize("where, line, status", [
    ("busy", "error: rank 1 stopped by SIGTERM, outside training (torchrun stops every rank "
             "once one of them fails", -15),
    ("collective", "error: a collective operation failed on rank 1 (", 2),
], ids=["busy", "in-a-collective"])
def test_when_rank_0_is_killed_under_torchrun_the_others_say_so(tmp_path, where, line, status):
    """torchrun SIGTERMs the other ranks as soon as one dies: each still prints its one line
    (before, a rank that was not waiting in a collective died without a word, and one whose
    collective had just failed could be killed while printing), and none waits for the
    SIGKILL that follows an unanswered SIGTERM 30 s later."""
    script = tmp_path / "rank_0_dies.py"
    script.write_text(RANK_0_DIES)
    tic = time.time()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script), where], capture_output=True,
                          text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0 and time.time() - tic < 25, proc.stderr[-3000:]
    assert line in proc.stderr, proc.stderr[-3000:]
    found = re.search(r"rank\s*: 1 \(local_rank: 1\)\s*exitcode\s*: (-?\d+)", proc.stderr)
    assert found and int(found.group(1)) == status, proc.stderr[-1500:]


def test_uneven_meta_batch_is_a_clear_error(tmp_path):
    proc = torchrun("train_supervised.py", *SIN[:-2], "--k-shot", "5", "--meta-batch", "3",
                    "--out-dir", str(tmp_path / "x"))
    assert proc.returncode != 0
    assert "--meta-batch 3 does not split evenly over 2 ranks" in proc.stderr


def test_rl_under_torchrun_smoke(tmp_path):
    proc = torchrun("train_rl.py", "--preset", "navigation", "--iterations", "2",
                    "--meta-batch", "4", "--episodes-per-task", "2", "--horizon", "10",
                    "--hidden-sizes", "16", "--threads", "1", "--out-dir", str(tmp_path / "rl"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "rl" / "results.json").is_file()


def test_main_only_error_reaches_every_rank(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    proc = torchrun("train_supervised.py", *SIN, "--out-dir", str(tmp_path / "busy"))
    assert proc.returncode != 0
    assert "(rank 0) output directory" in proc.stderr  # rank 1 reports rank 0's error
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])


def test_bench_distributed_smoke(tmp_path):
    """scripts/benchmarks/bench_distributed.py end to end with tiny budgets: 1 and 2 ranks of the
    real training script under torchrun, rates and speed-ups printed and written."""
    out = tmp_path / "bench" / "dist.json"
    proc = run_script("bench_distributed.py", "--ranks", "1", "2", "--workloads", "sinusoid",
                      "--iterations", "sinusoid", "4", "--out", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert [(r["workload"], r["ranks"], r["iterations"]) for r in rows] == [
        ("sinusoid", 1, 4), ("sinusoid", 2, 4)]
    assert rows[0]["speedup"] == 1.0 and all(r["iterations_per_second"] > 0 for r in rows)
    assert "sinusoid    2 rank(s):" in proc.stdout

"""Smoke run of scripts/benchmarks/bench_sampler.py with a tiny budget."""

from __future__ import annotations

import json

import pytest

from .conftest import run_script


def test_bench_sampler_writes_results(tmp_path):
    out = tmp_path / "results.json"
    proc = run_script(
        "bench_sampler.py",
        *("--tasks", "2", "--episodes-per-task", "2", "--steps", "5", "--baseline-steps", "2"),
        *("--repeats", "1", "--hidden-sizes", "8", "--threads", "2", "--out", str(out)),
        timeout=300,
    )
    written = json.loads(out.read_text())
    results = written["results"]
    assert {"cpu", "torch", "mujoco", "load_average_start", "load_average_end"} <= set(
        written["machine"])
    assert set(results) == {"HalfCheetah", "Ant"}
    for name, rows in results.items():
        assert set(rows) == {"ceiling", "sync", "sampler"}
        top, sync = rows["ceiling"]["env_steps_per_s"], rows["sync"]["env_steps_per_s"]
        for method, row in rows.items():  # each rate against the ceiling's and the sync one's
            rate = row["env_steps_per_s"]
            assert rate > 0 and row["cpu_us_per_step"] > 0
            assert row["ratio_to_ceiling"] == pytest.approx(rate / top)
            assert row["ratio_to_sync"] == pytest.approx(rate / sync)
            assert f"| {name:11} | {method:15} | {rate:11,.0f} | {rate / top:8.2f} |" in proc.stdout
    assert "| ×ceiling |" in proc.stdout


def test_bench_sampler_rejects_bad_budget(tmp_path):
    proc = run_script("bench_sampler.py", "--repeats", "0", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")

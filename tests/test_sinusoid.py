"""The sinusoid task family of MAML section 5.1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metarl.errors import MetaRLError
from metarl.supervised.sinusoid import SinusoidTasks, sinusoid_problem


def test_task_distribution_matches_the_paper():
    tasks = SinusoidTasks(5, 5).sample_tasks(5000, np.random.default_rng(0))
    amp = np.array([t.amplitude for t in tasks])
    phase = np.array([t.phase for t in tasks])
    assert 0.1 <= amp.min() and amp.max() <= 5.0 and abs(amp.mean() - 2.55) < 0.05
    assert 0.0 <= phase.min() and phase.max() <= math.pi and abs(phase.mean() - math.pi / 2) < 0.05


def test_batches_are_deterministic_and_consistent():
    sampler = SinusoidTasks(5, 7)
    a = sampler.sample(3, np.random.default_rng(42))
    b = sampler.sample(3, np.random.default_rng(42))
    for x, y in zip(a.support + a.query, b.support + b.query):
        assert torch.equal(x, y)
    xs, ys = a.support
    assert xs.shape == (3, 5, 1) and a.query[0].shape == (3, 7, 1)
    assert xs.min() >= -5 and xs.max() <= 5
    # Support and query points of one task lie on the same curve.
    rng = np.random.default_rng(42)
    tasks = sampler.sample_tasks(3, rng)
    batch = sampler.batch_for(tasks, rng)
    for i, task in enumerate(tasks):
        for x, y in (batch.support, batch.query):
            np.testing.assert_allclose(task(x[i].double().numpy()), y[i].numpy(), atol=1e-5)


def test_problem_model_and_loss():
    problem = sinusoid_problem(5, 5)
    assert [p.shape for p in problem.model.parameters()] == [
        (40, 1), (40,), (40, 40), (40,), (1, 40), (1,)]
    batch = problem.splits["train"].sample(2, np.random.default_rng(0))
    params = dict(problem.model.named_parameters())
    x, y = batch.support[0][0], batch.support[1][0]
    assert torch.allclose(problem.loss_fn(params, (x, y)), ((problem.model(x) - y) ** 2).mean())
    assert problem.splits["test"].k_query == 100


def test_bad_shots():
    with pytest.raises(MetaRLError, match="--k-shot must be at least 1"):
        SinusoidTasks(0, 5)

"""Summary statistics reported with every evaluation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def mean_ci95(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (normal approximation).

    ``1.96 · s / sqrt(n)`` with the unbiased sample standard deviation ``s``, the interval
    few-shot papers report (e.g. MAML Table 1 over 600 test episodes).
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("no values to summarise")
    if x.size == 1:
        return float(x[0]), math.nan
    return float(x.mean()), float(1.96 * x.std(ddof=1) / math.sqrt(x.size))

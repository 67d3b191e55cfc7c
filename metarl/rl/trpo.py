"""Trust-region step: conjugate gradient on Hessian-vector products, then a line search.

TRPO (Schulman et al., 2015, section 6 and appendix C) approximately solves

    min_Δ  gᵀΔ   subject to   ½ ΔᵀFΔ ≤ δ

with F the Hessian of the mean KL divergence. Conjugate gradient finds ``s ≈ F⁻¹ g`` from
Hessian-vector products alone; the largest step along ``s`` inside the trust region has length
``β = sqrt(2δ / sᵀFs)``; a backtracking line search then shrinks ``β s`` until the true
objective decreases and the true KL stays within δ. This module is generic: MAML-TRPO supplies
an objective and a KL that run through the inner adaptation (:mod:`metarl.rl.maml_trpo`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def conjugate_gradient(
    hvp: Callable[[Tensor], Tensor],
    b: Tensor,
    iterations: int = 10,
    residual_tol: float = 1e-10,
) -> tuple[Tensor, Tensor]:
    """Solve ``A x = b`` for symmetric positive-definite ``A`` given only ``v ↦ A v``.

    Returns ``x`` and ``A x``; the latter is accumulated from the products CG computes anyway
    (``A x = Σ αᵢ A pᵢ``), which saves TRPO one Hessian-vector product per step. For ``b = 0``
    the answer is ``x = 0`` (the first step size would be 0/0).
    """
    x = torch.zeros_like(b)
    ax = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    if rr == 0:
        return x, ax
    for _ in range(iterations):
        ap = hvp(p)
        alpha = rr / torch.dot(p, ap)
        x = x + alpha * p
        ax = ax + alpha * ap
        r = r - alpha * ap
        rr_new = torch.dot(r, r)
        if rr_new < residual_tol:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, ax


@dataclass
class LineSearchResult:
    """Outcome of :func:`line_search`."""

    accepted: bool
    """A candidate decreased the objective within the KL bound."""
    step_fraction: float
    """Fraction of the full trust-region step taken (0 if rejected)."""
    steps_tried: int
    """Candidates evaluated."""
    objective: float
    """Objective at the accepted point (the old one if rejected)."""
    kl: float
    """KL at the accepted point (0 if rejected)."""
    nonfinite: int
    """Candidates rejected because the objective or KL was NaN/inf."""


def line_search(
    evaluate: Callable[[float], tuple[float, float]],
    objective_before: float,
    max_kl: float,
    ratio: float = 0.8,
    max_steps: int = 15,
) -> LineSearchResult:
    """Backtrack over fractions ``ratio^k`` (k = 0..max_steps−1) of the full step.

    ``evaluate(fraction) -> (objective, kl)`` scores a candidate without applying it. The
    first candidate with a finite objective strictly below ``objective_before`` and a KL
    within ``max_kl`` is accepted.
    """
    nonfinite = 0
    for k in range(max_steps):
        fraction = ratio**k
        obj, kl = evaluate(fraction)
        if not (math.isfinite(obj) and math.isfinite(kl)):
            nonfinite += 1
            continue
        if obj < objective_before and kl <= max_kl:
            return LineSearchResult(True, fraction, k + 1, obj, kl, nonfinite)
    return LineSearchResult(False, 0.0, max_steps, objective_before, 0.0, nonfinite)

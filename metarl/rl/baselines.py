"""The linear feature baseline of rllab, as used by the MAML-RL code.

Features per step: ``[o, o², t, t², t³, 1]`` with ``o`` the observation clipped to ±10 and
``t = step / 100`` (the original code's time feature, independent of the horizon). The
baseline is fit per task, on that task's episodes, by ridge-regularised least squares on the
discounted returns; when the solve is not finite the regulariser grows tenfold, up to five
times, as in rllab's ``LinearFeatureBaseline``. All tasks are solved at once by a Cholesky
factorisation of the ``[tasks, F, F]`` stack of normal matrices ``XᵀX + reg·I``, which are
symmetric positive definite. (Not by LU with pivoting, ``torch.linalg.solve``: on the Ant's
214 features, several of them constant or all zero, MKL's batched LU with two or more threads
can return zero pivots for some tasks, at random, and the solve then raises; Cholesky solves
the same stack.)
"""

from __future__ import annotations

import torch
from torch import Tensor


def linear_features(observations: Tensor, mask: Tensor, timesteps: Tensor | None = None) -> Tensor:
    """Features ``[..., time, 2·obs_dim + 4]`` for observations ``[..., time, obs_dim]``.

    ``timesteps[..., t]`` is step ``t``'s index within its episode (rows holding several
    episodes back to back); without it a row is one episode and the index is ``t``.
    """
    o = observations.clamp(-10.0, 10.0)
    if timesteps is None:
        t = torch.arange(observations.shape[-2], device=o.device, dtype=o.dtype)
        t = t.expand(*observations.shape[:-1])
    else:
        t = timesteps.to(o.dtype)
    t = (t / 100.0).unsqueeze(-1)
    feats = torch.cat([o, o * o, t, t * t, t**3, torch.ones_like(t)], dim=-1)
    return feats * mask.unsqueeze(-1)


def fit_linear_baseline(
    observations: Tensor,
    returns: Tensor,
    mask: Tensor,
    reg: float = 1e-5,
    tries: int = 5,
    timesteps: Tensor | None = None,
) -> Tensor:
    """Per-task ridge regression; returns the fitted values ``[tasks, episodes, time]``.

    Args:
        observations: ``[tasks, episodes, time, obs_dim]``.
        returns: discounted returns ``[tasks, episodes, time]``.
        mask: valid steps ``[tasks, episodes, time]``.
        timesteps: step index within the episode (see :func:`linear_features`).
    """
    feats = linear_features(observations, mask, timesteps)  # [T, E, H, F]
    t = feats.shape[0]
    x = feats.reshape(t, -1, feats.shape[-1]).double()
    y = (returns * mask).reshape(t, -1, 1).double()
    xtx = x.transpose(1, 2) @ x
    xty = x.transpose(1, 2) @ y
    eye = torch.eye(xtx.shape[-1], dtype=xtx.dtype, device=xtx.device)
    coeffs: Tensor | None = None
    for attempt in range(tries):
        factor, info = torch.linalg.cholesky_ex(xtx + reg * (10.0**attempt) * eye)
        solved = torch.cholesky_solve(xty, factor)
        # a task whose factorisation failed (info > 0) counts as not finite: it is retried
        solved = torch.where((info == 0).view(-1, 1, 1), solved, torch.nan)
        if coeffs is None:
            coeffs = solved
        else:  # keep each task's first finite solution
            done = torch.isfinite(coeffs).all(dim=(1, 2), keepdim=True)
            coeffs = torch.where(done, coeffs, solved)
        if bool(torch.isfinite(coeffs).all()):
            break
    assert coeffs is not None
    coeffs = torch.nan_to_num(coeffs, nan=0.0)
    values = (feats.double() @ coeffs.unsqueeze(1)).squeeze(-1)
    return values.to(returns.dtype) * mask

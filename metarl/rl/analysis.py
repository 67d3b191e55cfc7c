"""Why a MAML-TRPO step moves the pre-update policy more than its trust region allows.

The paper's constraint bounds the KL of the *adapted* policies π_θ'_i on the query
observations; the pre-update policy π_θ is not in it, and in runs that fail it moves many
times δ in one step (``trpo/kl_initial``). For the proposed step Δ (before
the line search) this module measures the quadratic KL model of four policies, each
``½ Δᵀ H Δ`` with H the Hessian of the named mean KL at the current θ:

* ``kl_adapted``: the constraint itself, ``H = Jᵀ H' J`` (J = ∂θ'/∂θ, the inner step's
  Jacobian, H' the adapted policies' KL Hessian on the query observations); ≈ δ by
  construction (exactly δ without CG damping);
* ``kl_adapted_no_jacobian``: ``H = H'``, i.e. the adapted policies moved by Δ itself;
* ``kl_initial_query``: π_θ moved by Δ, on the query observations;
* ``kl_initial_support``: π_θ moved by Δ, on the support observations (the quadratic model
  of what ``trpo/kl_initial`` logs).

The ratio ``kl_initial_support / kl_adapted`` -- how many times its trust region the step
moves π_θ -- is the product of three factors that each name one cause:

* ``jacobian_gain = kl_adapted_no_jacobian / kl_adapted``: the inner step undoes part of Δ
  (``JΔ`` is small in the KL metric where Δ is not), so the constraint does not see it;
* ``parameter_gain = kl_initial_query / kl_adapted_no_jacobian``: the same Δ changes π_θ more
  than π_θ'_i (the two sit at different parameters: other ReLU patterns, another std);
* ``observation_gain = kl_initial_support / kl_initial_query``: π_θ's own (support) states
  are more sensitive than the adapted policies' (query) states.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metarl.core.functional import expand, flatten, unflatten
from metarl.rl.maml_trpo import MAMLTRPO, Proposal, Support
from metarl.rl.pg import PGBatch


def quadratic_kls(learner: MAMLTRPO, support: Support, query: PGBatch,
                  proposal: Proposal, step: Tensor | None = None) -> dict[str, float]:
    """The four quadratic KL models of the module docstring for ``step`` (flat; default:
    the proposal's full step), plus the three gains and their product."""
    step = proposal.full_step if step is None else step
    if step is None:
        raise ValueError("the proposed step is not finite; nothing to measure")
    step = step.detach()
    params, adapted, old = proposal.params, proposal.adapted, proposal.old
    keys = list(params)
    first = learner.first_batch(support)  # π_θ's own samples
    n = first.mask.shape[0]

    def half_quadratic(hvp: Tensor) -> float:
        return 0.5 * float(torch.dot(step, hvp))

    constraint = learner.kl_hessian_vector(params, adapted, old, support, query)(step)
    # H' Δ per task: the Hessian of the adapted policies' mean KL in their own parameters.
    at = {k: v.detach().requires_grad_(True) for k, v in adapted.items()}
    at_leaves = [at[k] for k in keys]
    grad_at = torch.autograd.grad(learner.kl(at, old, query), at_leaves, create_graph=True)
    per_task = unflatten(step, params)
    tangent = [per_task[k].expand_as(at[k]) for k in keys]
    h_prime = torch.autograd.grad(grad_at, at_leaves, grad_outputs=tangent)
    no_jacobian = 0.5 * float(sum((h * t).sum() for h, t in zip(h_prime, tangent)))
    initial_on_query = learner.frozen_dist(expand(params, n), query)
    on_query = learner.initial_kl_hessian_vector(params, initial_on_query, query)(step)
    on_support = learner.initial_kl_hessian_vector(params, proposal.old_initial, first)(step)
    out = {
        "kl_adapted": half_quadratic(constraint),
        "kl_adapted_no_jacobian": no_jacobian,
        "kl_initial_query": half_quadratic(on_query),
        "kl_initial_support": half_quadratic(on_support),
    }
    out["jacobian_gain"] = out["kl_adapted_no_jacobian"] / out["kl_adapted"]
    out["parameter_gain"] = out["kl_initial_query"] / out["kl_adapted_no_jacobian"]
    out["observation_gain"] = out["kl_initial_support"] / out["kl_initial_query"]
    out["total_gain"] = out["kl_initial_support"] / out["kl_adapted"]
    return out


def step_anatomy(learner: MAMLTRPO, support: Support, query: PGBatch) -> dict[str, float]:
    """Everything :func:`quadratic_kls` measures for the step TRPO would propose now, the
    step's norm per parameter tensor (``step_norm/<name>``) and how much of the
    meta-gradient is first order (``cos_first_order``: the cosine between ∇_θ L and the
    task-summed ∇_θ' L, which MAML's second-order term turns away from each other)."""
    proposal = learner.propose(support, query)
    out = quadratic_kls(learner, support, query, proposal)
    step = unflatten(proposal.full_step.detach(), proposal.params)  # type: ignore[union-attr]
    out.update({f"step_norm/{k}": float(v.norm()) for k, v in step.items()})
    at = {k: v.detach().requires_grad_(True) for k, v in proposal.adapted.items()}
    first = torch.autograd.grad(learner.surrogate(at, query), list(at.values()))
    first_order = flatten([g.sum(0) for g in first])
    out["cos_first_order"] = float(torch.nn.functional.cosine_similarity(
        proposal.grad, first_order, dim=0))
    return out

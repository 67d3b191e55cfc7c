"""MAML-TRPO: REINFORCE inner updates, a trust-region outer update (MAML section 5.3).

For a meta-batch of tasks with support episodes D_i (sampled by π_θ) and query episodes D'_i
(sampled by the adapted π_θ'_i), the meta-objective is

    L(θ) = mean_i  −E_{D'_i}[ π_{θ'_i(θ)}(a|s) / π_old(a|s) · A(s, a) ],
    θ'_i(θ) = adapt(θ, D_i)  (REINFORCE steps of size α through :func:`metarl.core.adapt.adapt`),

minimised by TRPO with the constraint mean_i KL(π_{θ'_i(θ_old)} || π_{θ'_i(θ)}) ≤ δ, i.e. the
KL between the *adapted* policies before and after the step, so its Hessian-vector products
are taken through the inner update by double back-propagation. That constraint leaves the
pre-update policy π_θ free to move; ``TRPOSettings.trust_region = "adapted+initial"`` also
counts KL(π_θold || π_θ) on the support observations.

With more than one inner step the support data comes in one of two ways: every step on the
one batch D_i (a :class:`PGBatch`), or step k on its own batch D_i^k sampled by the policy
after k steps (a list of batches, ``RLConfig.inner_batches = "fresh"``: the original code's
``num_grad_updates > 1`` and the test protocol). Either way the meta-gradient flows through
every step; the sampling distributions' dependence on θ is dropped, as in the paper.

The inner update runs in one of three equivalent ways (tested equal):

* ``"stacked"`` (default): θ is broadcast to a ``[tasks, ...]`` stack and the sum of the
  per-task inner losses is differentiated once, giving every task's gradient in one pass of
  batched matmuls;
* ``"vmap"``: :func:`torch.func.vmap` of the per-task :func:`~metarl.core.adapt.adapt`;
* ``"loop"``: a Python loop over tasks (the reference).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

import torch
from torch import Tensor

from metarl.core.adapt import LearningRate, adapt, step_sizes
from metarl.core.functional import Params, expand, flatten, index_tasks, stack, unflatten
from metarl.rl.pg import INNER_LOSSES, PGBatch, mean_kl, surrogate_loss
from metarl.rl.policies import GaussianDist, GaussianMLPPolicy
from metarl.rl.trpo import conjugate_gradient, line_search

Mode = Literal["stacked", "vmap", "loop"]
MODES: tuple[str, ...] = get_args(Mode)
Support = PGBatch | Sequence[PGBatch]
"""The inner loop's data: one batch for all ``inner_steps`` steps, or a list of k batches for
k single steps, batch j sampled by the policy after j steps (see the module docstring)."""
Fisher = Literal["gauss-newton", "autograd"]
FISHER: tuple[str, ...] = get_args(Fisher)
TrustRegion = Literal["adapted", "adapted+initial"]
TRUST_REGIONS: tuple[str, ...] = get_args(TrustRegion)


@dataclass
class TRPOSettings:
    """The outer update's settings (defaults: the MAML paper / original code)."""

    max_kl: float = 0.01
    """Trust-region radius δ on the mean KL of the adapted policies (plus the initial
    policy's, see ``trust_region``)."""
    cg_iterations: int = 10
    """Conjugate-gradient iterations."""
    cg_damping: float = 1e-5
    """Damping added to the KL Hessian: (F + λI) v."""
    ls_ratio: float = 0.8
    """Backtracking factor of the line search."""
    ls_steps: int = 15
    """Line-search candidates tried before the step is rejected."""
    trust_region: TrustRegion = "adapted"
    """What the KL constraint measures. ``"adapted"`` (the paper; the original code's
    ``kl_constrain_step=-1``): only the adapted policies π_θ'_i on the query observations, so
    the pre-update policy π_θ itself may move any distance per step. ``"adapted+initial"``
    adds KL(π_θold || π_θ) on the support observations (the term of the original code's
    ``kl_constrain_step=0``), which bounds that drift too: the constraint becomes
    KL_adapted + KL_initial ≤ δ."""
    fisher: Fisher = "gauss-newton"
    """How KL Hessian-vector products are computed (both exact at the current θ, tested
    equal): ``"autograd"`` differentiates ∇_θ KL a second time through the inner update;
    ``"gauss-newton"`` uses that ∇_θ' KL = 0 at the current θ, so the Hessian is exactly
    Jᵀ H' J (J = ∂θ'/∂θ, H' the KL Hessian in θ'): a JVP through the inner update, a
    Hessian-vector product on the query batch and a VJP back, which skips the third
    derivatives of the inner loss that the autograd route multiplies by zero."""


@dataclass
class Proposal:
    """A TRPO step before its line search (:meth:`MAMLTRPO.propose`)."""

    params: Params
    """The live parameters θ (leaves of ``adapted``'s graph)."""
    adapted: Params
    """Task-stacked θ'_i(θ), with the graph to ``params``."""
    old: GaussianDist
    """The adapted policies before the step, on the query observations (constants)."""
    old_initial: GaussianDist
    """The pre-update policy before the step, on the support observations (constants)."""
    loss: float
    """The meta-objective (query surrogate) before the step."""
    grad: Tensor
    """Its gradient in θ, flattened."""
    full_step: Tensor | None
    """``β F⁻¹g`` with ``½ βs·Fβs = δ`` (the step is θ − full_step); None if not finite."""


@dataclass
class MAMLTRPO:
    """The MAML-TRPO meta-learner for a :class:`GaussianMLPPolicy`.

    Attributes:
        policy: holds the meta-parameters θ (updated in place by :meth:`step`).
        inner_steps, inner_lr, first_order: the inner loop, see :func:`metarl.core.adapt.adapt`.
        inner_loss: ``"reinforce"`` (the paper's estimator) or ``"lvc"`` (ProMP's).
        mode: how the inner update is batched over tasks (see the module docstring).
        trpo: the outer update's settings.
    """

    policy: GaussianMLPPolicy
    inner_steps: int = 1
    inner_lr: LearningRate = 0.1
    first_order: bool = False
    inner_loss: str = "reinforce"
    mode: str = "stacked"
    trpo: TRPOSettings = field(default_factory=TRPOSettings)

    def __post_init__(self) -> None:
        if self.inner_loss not in INNER_LOSSES:
            raise ValueError(f"unknown inner loss {self.inner_loss!r}; choose reinforce or lvc")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.trpo.fisher not in FISHER:
            raise ValueError(f"unknown fisher {self.trpo.fisher!r}; choose {', '.join(FISHER)}")
        if self.trpo.trust_region not in TRUST_REGIONS:
            raise ValueError(f"unknown trust region {self.trpo.trust_region!r}; "
                             f"choose {', '.join(TRUST_REGIONS)}")
        self.reduce: Callable[[Tensor], Tensor] = lambda t: t
        """Averages a per-rank quantity over ranks (set by the distributed trainer)."""

    # ------------------------------------------------------------ inner loop
    def task_loss(self) -> Callable[[Params, PGBatch], Tensor]:
        """The inner loss as ``(params, batch) -> scalar``; for task-stacked params and
        batches it is the sum of the per-task losses (so its gradient is per task)."""
        inner = INNER_LOSSES[self.inner_loss]

        def loss(params: Params, batch: PGBatch) -> Tensor:
            # A scalar per task; with task-stacked inputs the sum gives each task's gradient
            # with respect to its own slice of the stack.
            return inner(self.policy, params, batch).sum()

        return loss

    def segments(self, support: Support) -> list[tuple[PGBatch, int, LearningRate]]:
        """``support`` as (batch, steps, step sizes) runs of the inner loop: one run of
        ``inner_steps`` for a single batch, one step per batch of a list (at most
        ``inner_steps`` of them; fewer give the parameters the next batch is sampled with)."""
        if isinstance(support, PGBatch):
            return [(support, self.inner_steps, self.inner_lr)]
        batches = list(support)
        if not 1 <= len(batches) <= max(self.inner_steps, 1):
            raise ValueError(f"got {len(batches)} support batches for {self.inner_steps} "
                             "inner steps; give one batch per step (or a single batch)")
        lrs = step_sizes(self.inner_lr, max(self.inner_steps, 1))
        return [(b, 1, [lr]) for b, lr in zip(batches, lrs)]

    @staticmethod
    def first_batch(support: Support) -> PGBatch:
        """The support batch sampled by θ itself (the only one with ``"shared"`` batches)."""
        return support if isinstance(support, PGBatch) else support[0]

    def adapt(self, params: Params, support: Support, *, first_order: bool | None = None,
              stacked: bool = False) -> Params:
        """Task-stacked adapted parameters θ'_i = adapt(θ, D_i), differentiable in θ.

        ``stacked=True`` means ``params`` already carry the task axis (one copy per task).
        ``support`` is one batch or one batch per step (:meth:`segments`).
        """
        loss = self.task_loss()
        fo = self.first_order if first_order is None else first_order
        runs = self.segments(support)
        batches = [b for b, _, _ in runs]

        def chain(p: Params, data: list[PGBatch]) -> Params:
            for b, (_, steps, lr) in zip(data, runs):
                p = adapt(loss, p, b, steps=steps, lr=lr, first_order=fo)
            return p

        n = batches[0].mask.shape[0]
        if stacked:
            return chain(params, batches)
        if self.mode == "stacked":
            return chain(expand(params, n), batches)
        if self.mode == "vmap":
            return torch.func.vmap(lambda data: chain(params, data))(batches)
        return stack([chain(params, [index_tasks(b, i) for b in batches]) for i in range(n)])

    def adapt_stacked(self, stacked: Params, batch: PGBatch, lr: float) -> Params:
        """One first-order inner step from already task-stacked parameters (evaluation:
        step k+1 of the paper's protocol starts where step k ended, on fresh episodes)."""
        return {k: v.detach() for k, v in
                adapt(self.task_loss(), stacked, batch, steps=1, lr=lr, first_order=True).items()}

    def adapted_for_sampling(self, support: Support) -> Params:
        """θ'_i as constants, to roll out the query episodes with (or, given the first k of
        the fresh batches, the next support batch)."""
        params: Params = dict(self.policy.named_parameters())
        return {k: v.detach() for k, v in self.adapt(params, support, first_order=True).items()}

    # -------------------------------------------------------- meta-objective
    def surrogate(self, adapted: Params, query: PGBatch) -> Tensor:
        """Mean over tasks of the query surrogate at the (stacked) adapted parameters."""
        return surrogate_loss(self.policy, adapted, query).mean()

    def kl(self, adapted: Params, old: GaussianDist, query: PGBatch) -> Tensor:
        """Mean over tasks of KL(π_old' || π_θ') on the query observations."""
        return mean_kl(self.policy, adapted, old, query).mean()

    def initial_kl(self, params: Params, old: GaussianDist, support: PGBatch) -> Tensor:
        """Mean over tasks of KL(π_old || π_θ) of the pre-update policy on the support
        observations (``params`` unstacked: one θ for every task)."""
        return mean_kl(self.policy, expand(params, support.mask.shape[0]), old, support).mean()

    def meta_loss(self, params: Params, support: Support, query: PGBatch) -> Tensor:
        """L(θ): the query surrogate through the inner update (for tests and diagnostics)."""
        return self.surrogate(self.adapt(params, support), query)

    # ----------------------------------------------------------- outer step
    def kl_hessian_vector(
        self, params: Params, adapted: Params, old: GaussianDist, support: Support,
        query: PGBatch,
    ) -> Callable[[Tensor], Tensor]:
        """``v ↦ ∇²_θ KL(π_old' || π_θ'(θ)) v`` at the current θ (see ``TRPOSettings.fisher``).

        ``adapted`` must be ``self.adapt(params, support)`` with its graph to ``params``.
        """
        keys = list(params)
        leaves = [params[k] for k in keys]
        if self.trpo.fisher == "autograd":
            return _double_backprop_hvp(self.kl(adapted, old, query), leaves)
        at = {k: v.detach().requires_grad_(True) for k, v in adapted.items()}
        at_leaves = [at[k] for k in keys]
        grad_kl_at = torch.autograd.grad(self.kl(at, old, query), at_leaves, create_graph=True)
        adapted_out = [adapted[k] for k in keys]

        def h_prime(jv: list[Tensor]) -> tuple[Tensor, ...]:
            return torch.autograd.grad(grad_kl_at, at_leaves, grad_outputs=jv, retain_graph=True)

        def j_transpose(w: tuple[Tensor, ...]) -> Tensor:
            return flatten(torch.autograd.grad(adapted_out, leaves, grad_outputs=w,
                                               retain_graph=True))

        runs = self.segments(support)
        n = runs[0][0].mask.shape[0]
        first_order = self.first_order
        one_step = sum(steps for _, steps, _ in runs) == 1
        if first_order or (one_step and self.mode == "stacked"):
            # One inner step: J_i = I − α ∇²L_i(θ) is symmetric, so J_i v = J_iᵀ v comes from
            # a reverse pass to a task-stacked copy of θ (per-task vector-Jacobian products)
            # -- cheaper than forward mode through the inner gradient. First order: J = I.
            base = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            stack_in = expand(base, n)
            stack_out = self.adapt(stack_in, support, stacked=True)
            ins, outs = [stack_in[k] for k in keys], [stack_out[k] for k in keys]

            def jacobian_vector(v: Tensor) -> list[Tensor]:
                vs = unflatten(v, params)
                if first_order:
                    return [vs[k].expand_as(at[k]) for k in keys]
                w = [vs[k].expand_as(stack_out[k]) for k in keys]
                return list(torch.autograd.grad(outs, ins, grad_outputs=w, retain_graph=True))
        else:
            theta = {k: v.detach() for k, v in params.items()}

            def jacobian_vector(v: Tensor) -> list[Tensor]:
                jv = torch.func.jvp(lambda p: self.adapt(p, support), (theta,),
                                    (unflatten(v, params),))[1]
                return [jv[k] for k in keys]

        return lambda v: j_transpose(h_prime(jacobian_vector(v)))

    def initial_kl_hessian_vector(self, params: Params, old: GaussianDist,
                                  support: PGBatch) -> Callable[[Tensor], Tensor]:
        """``v ↦ ∇²_θ KL(π_old || π_θ) v`` of the pre-update policy (double backprop; no
        inner update is involved, so this is cheap next to :meth:`kl_hessian_vector`)."""
        return _double_backprop_hvp(self.initial_kl(params, old, support), list(params.values()))

    def frozen_dist(self, params: Params, batch: PGBatch) -> GaussianDist:
        """π_params(·|s) on ``batch``'s observations as constants: the "old" policy a KL or an
        importance ratio compares against (``params`` task-stacked like the batch)."""
        with torch.no_grad():
            return GaussianDist(*(t.detach() for t in self.policy.dist(
                {k: v.detach() for k, v in params.items()}, batch.observations)))

    def propose(self, support: Support, query: PGBatch) -> Proposal:
        """The TRPO step before its line search: the meta-gradient, the conjugate-gradient
        direction and the full trust-region step ``β s`` (``None`` when not finite)."""
        s = self.trpo
        params: Params = dict(self.policy.named_parameters())
        leaves = list(params.values())
        adapted = self.adapt(params, support)
        old = self.frozen_dist(adapted, query)
        first = self.first_batch(support)
        old_initial = self.frozen_dist(expand(params, first.mask.shape[0]), first)
        loss = self.surrogate(adapted, query)
        grad = self.reduce(flatten(torch.autograd.grad(loss, leaves, retain_graph=True)))
        hvps = [self.kl_hessian_vector(params, adapted, old, support, query)]
        if s.trust_region == "adapted+initial":
            hvps.append(self.initial_kl_hessian_vector(params, old_initial, first))

        def fisher_vector(v: Tensor) -> Tensor:
            return self.reduce(cast(Tensor, sum(hvp(v) for hvp in hvps))) + s.cg_damping * v

        direction, f_direction = conjugate_gradient(fisher_vector, grad, s.cg_iterations)
        shs = torch.dot(direction, f_direction)
        full_step = None
        if torch.isfinite(direction).all() and torch.isfinite(shs) and shs > 0:
            full_step = direction * torch.sqrt(2.0 * s.max_kl / shs)
        return Proposal(params, adapted, old, old_initial, self.reduce(loss.detach()).item(),
                        grad, full_step)

    def step(self, support: Support, query: PGBatch) -> dict[str, float]:
        """One TRPO meta-update of ``policy`` in place; returns diagnostics.

        A line-search candidate is scored on parameter dicts, never on the live policy; the
        policy changes only once a candidate is accepted. A step whose objective, gradient or
        search direction is not finite is rejected and reported (``nonfinite``). A gradient
        that is exactly zero (every query advantage 0, e.g. a sparse reward never reached)
        leaves nothing to follow: no step, and not counted as non-finite (``zero_gradient``).
        """
        s = self.trpo
        prop = self.propose(support, query)
        params, old, old_initial = prop.params, prop.old, prop.old_initial
        first = self.first_batch(support)
        keys = list(params)
        with_initial = s.trust_region == "adapted+initial"
        loss_before = prop.loss
        stats: dict[str, float] = {"surrogate_before": loss_before,
                                   "grad_norm": prop.grad.norm().item()}
        if prop.full_step is None:
            zero = not bool(prop.grad.any())  # NaN counts as non-zero
            return {**stats, "accepted": 0.0, "nonfinite": 0.0 if zero else 1.0,
                    "zero_gradient": float(zero), "ls_steps": 0.0, "kl": 0.0,
                    "kl_initial": 0.0, "surrogate_after": stats["surrogate_before"],
                    "step_fraction": 0.0}
        full_step = unflatten(prop.full_step.detach(), params)
        theta = {k: v.detach() for k, v in params.items()}

        def candidate(fraction: float) -> Params:
            return {k: theta[k] - fraction * full_step[k] for k in keys}

        def evaluate(fraction: float) -> tuple[float, float]:
            cand = candidate(fraction)
            with torch.no_grad():
                cand_adapted = self.adapt(cand, support, first_order=True)
                kl = self.kl(cand_adapted, old, query)
                if with_initial:
                    kl = kl + self.initial_kl(cand, old_initial, first)
                values = torch.stack([self.surrogate(cand_adapted, query), kl])
                obj, kl_value = self.reduce(values).tolist()
                return obj, kl_value

        result = line_search(evaluate, loss_before, s.max_kl, s.ls_ratio, s.ls_steps)
        kl_initial = 0.0
        if result.accepted:
            with torch.no_grad():
                # How far the pre-update policy moved (the whole constraint when it is in it).
                kl_initial = self.reduce(self.initial_kl(candidate(result.step_fraction),
                                                         old_initial, first)).item()
                for k in keys:
                    params[k].sub_(result.step_fraction * full_step[k])
        return {**stats, "accepted": float(result.accepted), "ls_steps": float(result.steps_tried),
                "kl": result.kl, "kl_initial": kl_initial, "surrogate_after": result.objective,
                "step_fraction": result.step_fraction,
                "nonfinite": float(result.nonfinite > 0 and not result.accepted),
                "zero_gradient": 0.0, "max_step_norm": prop.full_step.norm().item()}


def _double_backprop_hvp(scalar: Tensor, leaves: list[Tensor]) -> Callable[[Tensor], Tensor]:
    """``v ↦ ∇²scalar · v`` with respect to ``leaves`` (flattened), by differentiating
    ``∇scalar · v`` once more; the first gradient's graph is built once and kept."""
    grad = flatten(torch.autograd.grad(scalar, leaves, create_graph=True))
    return lambda v: flatten(torch.autograd.grad(torch.dot(grad, v), leaves, retain_graph=True))

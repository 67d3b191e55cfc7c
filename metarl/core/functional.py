"""Parameters as dictionaries and losses as pure functions of them.

A model's parameters are a ``Params = dict[str, Tensor]`` keyed like ``named_parameters()``.
Adaptation never mutates the ``nn.Module``: the module only supplies the computation, through
:func:`torch.func.functional_call`, and every adapted parameter set is a new dictionary whose
tensors stay in the autograd graph of the parameters they were derived from. This is what lets
one inner loop serve second-order MAML, first-order MAML, Reptile and MAML-RL, and what lets
:func:`torch.func.vmap` run a whole meta-batch of tasks in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

Params = dict[str, Tensor]
"""A model's parameters (or a gradient, or a stack of per-task parameters), keyed by name."""

LossFn = Callable[[Params, Any], Tensor]
"""``(params, batch) -> scalar loss``."""

TaskLossesFn = Callable[[Params, Any], Tensor]
"""``(task-stacked params, task-stacked batch) -> per-task losses [T]``: the loss of a model
whose forward pass accepts parameters with a leading task axis (``MLP.forward_with``)."""


def params_of(module: nn.Module) -> Params:
    """The module's trainable parameters as a dict of the live (leaf) tensors.

    Gradients of anything computed from these flow into ``module``'s ``.grad`` fields, so any
    ``torch.optim`` optimiser built on ``module.parameters()`` can take the outer step.
    """
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


def functional_loss(
    module: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor]
) -> LossFn:
    """Build ``loss(params, (x, y)) = criterion(module_with_params(x), y)``.

    The forward pass is ``module.forward_with(params, x)`` when the module defines that pure
    function (it skips :func:`torch.func.functional_call`'s parameter swapping on every
    call), else ``functional_call(module, params, (x,))``. The module's
    buffers are used as they are; the models in this project keep none that change during a
    forward pass (batch norm uses batch statistics, see :mod:`metarl.supervised.models`).
    """
    forward_with = getattr(module, "forward_with", None)

    def loss(params: Params, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        if forward_with is not None:
            return criterion(forward_with(params, x), y)
        return criterion(functional_call(module, params, (x,)), y)

    return loss


def split_params(params: Mapping[str, Tensor], names: Iterable[str]) -> tuple[Params, Params]:
    """``(params without names, params with names)``; a name ``params`` lacks is an error.

    Used to separate the fast weights the inner loop adapts from outer-only parameters.
    """
    chosen = set(names)
    missing = sorted(chosen - set(params))
    if missing:
        raise ValueError(f"no parameters named {', '.join(missing)} (have {', '.join(params)})")
    return ({k: v for k, v in params.items() if k not in chosen},
            {k: v for k, v in params.items() if k in chosen})


def with_fixed(fn: Callable[[Params, Any], Any], fixed: Mapping[str, Tensor]
               ) -> Callable[[Params, Any], Any]:
    """``fn`` as a function of the other parameters, with ``fixed`` supplied as they are.

    ``with_fixed(loss, {"b": b})(params, batch) == loss({**params, "b": b}, batch)``. The
    inner loop (:func:`metarl.core.adapt.adapt`) differentiates and updates only the dict it is
    given, so the fixed tensors are never adapted; they stay in the autograd graph, and the
    outer gradient still reaches them (MAML's outer-only parameters, e.g. the original code's
    batch-norm offsets).
    """
    held = dict(fixed)

    def fn_with_fixed(params: Params, batch: Any) -> Any:
        return fn({**params, **held}, batch)

    return fn_with_fixed


def detach(params: Mapping[str, Tensor]) -> Params:
    """A copy of ``params`` cut from the autograd graph (values shared, not cloned)."""
    return {k: v.detach() for k, v in params.items()}


def clone(params: Mapping[str, Tensor]) -> Params:
    """Independent leaf copies that require grad, e.g. to fine-tune without touching a model."""
    return {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}


def stack(params_list: Iterable[Mapping[str, Tensor]]) -> Params:
    """Stack per-task parameter dicts along a new leading task axis."""
    items = list(params_list)
    if not items:
        raise ValueError("stack() needs at least one parameter dict")
    return {k: torch.stack([p[k] for p in items]) for k in items[0]}


def unstack(params: Mapping[str, Tensor]) -> list[Params]:
    """Split stacked per-task parameters (leading task axis) into a list of dicts."""
    n = next(iter(params.values())).shape[0]
    return [{k: v[i] for k, v in params.items()} for i in range(n)]


def expand(params: Mapping[str, Tensor], n: int) -> Params:
    """Broadcast one parameter set to ``n`` tasks (a view, no copy; gradients sum back)."""
    return {k: v.unsqueeze(0).expand(n, *v.shape) for k, v in params.items()}


def flatten(tensors: Mapping[str, Tensor] | Iterable[Tensor]) -> Tensor:
    """Concatenate tensors (dict values in insertion order) into one flat vector."""
    values = tensors.values() if isinstance(tensors, Mapping) else tensors
    return torch.cat([t.reshape(-1) for t in values])


def unflatten(vector: Tensor, like: Mapping[str, Tensor]) -> Params:
    """Inverse of :func:`flatten`: cut ``vector`` into tensors shaped like ``like``."""
    out: Params = {}
    offset = 0
    for k, t in like.items():
        n = t.numel()
        out[k] = vector[offset : offset + n].view_as(t)
        offset += n
    if offset != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, parameters need {offset}")
    return out


def axpy(alpha: float | Tensor, x: Mapping[str, Tensor], y: Mapping[str, Tensor]) -> Params:
    """``y + alpha * x`` per key (the shape of every SGD and line-search step)."""
    return {k: y[k] + alpha * x[k] for k in y}


def tree_map(fn: Callable[[Tensor], Tensor], tree: Any) -> Any:
    """Apply ``fn`` to every tensor in nested tuples/lists/dicts (batches of any shape)."""
    if isinstance(tree, Tensor):
        return fn(tree)
    if isinstance(tree, Mapping):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # NamedTuple
        return type(tree)(*(tree_map(fn, v) for v in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(fn, v) for v in tree)
    return tree


def index_tasks(batch: Any, i: int) -> Any:
    """Task ``i`` of a batch whose tensors carry a leading task axis."""
    return tree_map(lambda t: t[i], batch)


def concat_examples(a: Any, b: Any, dim: int = 1) -> Any:
    """Join two batches of the same structure along the example axis (``dim``).

    With a leading task axis the example axis is 1: Reptile and the joint-training baseline
    use this to train on a task's support and query examples together.
    """
    if isinstance(a, Tensor):
        return torch.cat([a, b], dim=dim)
    if isinstance(a, Mapping):
        return {k: concat_examples(a[k], b[k], dim) for k in a}
    if isinstance(a, tuple) and hasattr(a, "_fields"):
        return type(a)(*(concat_examples(x, y, dim) for x, y in zip(a, b)))
    if isinstance(a, (tuple, list)):
        return type(a)(concat_examples(x, y, dim) for x, y in zip(a, b))
    raise TypeError(f"cannot concatenate batches of type {type(a).__name__}")

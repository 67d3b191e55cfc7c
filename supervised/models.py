"""Networks for the supervised few-shot families.

Every model here is an ordinary ``nn.Module`` that holds no state a forward pass changes, so
that :func:`torch.func.functional_call` with any parameter dict (one task's θ', or a task
stack under :func:`torch.func.vmap`) computes exactly the same function as the module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class MLP(nn.Module):
    """A fully connected ReLU network, e.g. the 1-40-40-1 regressor of MAML section 5.1.

    Parameter names are ``layers.{i}.weight`` / ``layers.{i}.bias``.

    Args:
        init: ``"torch"`` (default) keeps PyTorch's initialisation (uniform in ±1/√fan_in,
            biases included, so the first layer's ReLU kinks spread over the input range);
            ``"maml"`` draws weights from a normal truncated at two standard deviations with
            std 0.01 and zero biases, as the original code does (cbfinn/maml,
            ``construct_fc_weights``). On sinusoids the PyTorch default meta-trains to a
            lower post-adaptation MSE (docs/results.md), so it is the default.
    """

    def __init__(
        self,
        in_dim: int = 1,
        hidden: Sequence[int] = (40, 40),
        out_dim: int = 1,
        init: str = "torch",
    ):
        super().__init__()
        sizes = [in_dim, *hidden, out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        if init == "maml":
            for layer in self.layers:
                nn.init.trunc_normal_(layer.weight, std=0.01, a=-0.02, b=0.02)
                nn.init.zeros_(layer.bias)
        elif init != "torch":
            raise ValueError(f"unknown init {init!r}; choose maml or torch")

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x

"""Networks for the supervised few-shot families.

Every model here is an ordinary ``nn.Module`` that holds no state a forward pass changes, so
that :func:`torch.func.functional_call` with any parameter dict (one task's θ', or a task
stack under :func:`torch.func.vmap`) computes exactly the same function as the module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, cast, get_args

import torch
from torch import Tensor, nn
from torch._C._functorch import TransformType, get_interpreter_stack

from metarl.core.functional import Params

MlpInit = Literal["torch", "maml"]
"""How :class:`MLP` initialises its weights (see its ``init`` argument)."""


class MLP(nn.Module):
    """A fully connected ReLU network, e.g. the 1-40-40-1 regressor of MAML section 5.1.

    Parameter names are ``layers.{i}.weight`` / ``layers.{i}.bias``.

    Args:
        init: ``"torch"`` (default) keeps PyTorch's initialisation (uniform in ±1/√fan_in,
            biases included, so the first layer's ReLU kinks spread over the input range);
            ``"maml"`` draws weights from a normal truncated at two standard deviations with
            std 0.01 and zero biases, as the original code does (cbfinn/maml,
            ``construct_fc_weights``). On sinusoids the PyTorch default meta-trains to a
            lower post-adaptation MSE, so it is the default.
    """

    def __init__(
        self,
        in_dim: int = 1,
        hidden: Sequence[int] = (40, 40),
        out_dim: int = 1,
        init: MlpInit = "torch",
    ):
        super().__init__()
        sizes = [in_dim, *hidden, out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        if init == "maml":
            for layer in cast(Iterable[nn.Linear], self.layers):
                nn.init.trunc_normal_(layer.weight, std=0.01, a=-0.02, b=0.02)
                nn.init.zeros_(layer.bias)
        elif init != "torch":
            raise ValueError(f"unknown init {init!r}; choose maml or torch")

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with(dict(self.named_parameters()), x)

    def forward_with(self, params: Params, x: Tensor) -> Tensor:
        """The forward pass with the given parameters (a pure function of them).

        With task-stacked parameters (weights ``[T, out, in]``, biases ``[T, out]``) and
        inputs ``[T, N, in]``, task t's inputs go through task t's parameters (batched
        matmuls), for ``metarl.core.adapt.adapt(..., autograd=True)``.
        """
        n = len(self.layers)
        for i in range(n):
            w, b = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
            if w.dim() == 3:
                x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
            else:
                x = torch.nn.functional.linear(x, w, b)
            if i < n - 1:
                x = torch.relu(x)
        return x


NormStyle = Literal["fast", "original"]
"""How batch norm's affine map is parametrised and who learns it:

* ``"fast"`` (our default): a scale γ and a shift β, both fast weights, adapted in the inner
  loop like the convolution weights;
* ``"original"``: a shift β only, held fixed by the inner loop and meta-learned by the outer
  update alone -- the original code's ``tf.contrib.layers.batch_norm`` with its defaults
  (``center=True, scale=False``), whose β lives outside the ``weights`` dict the inner loop
  updates (cbfinn/maml ``utils.normalize``). See :func:`outer_only_names`.
"""
NORM_STYLES: tuple[str, ...] = get_args(NormStyle)


class BatchStatNorm2d(nn.Module):
    """Batch normalisation from batch statistics only, with a learnable affine map.

    ``y = (x − mean) / sqrt(var + eps) · weight + bias``, with mean and (biased) variance taken
    over the batch and spatial axes of the input it is given. There are no running statistics:
    as in the original MAML code (``tf.contrib.layers.batch_norm`` in training mode, used at
    meta-test time too), every forward pass normalises with the statistics of its own batch, so
    evaluation is transductive over a task's query set. With ``style="original"`` there is no
    ``weight`` (γ = 1) and the ``bias`` is an outer-only parameter (:data:`NormStyle`).

    Two forms of the same function, picked per call:

    * outside :func:`torch.func.vmap` (a per-task loop, task-stacked parameters), the fused
      kernel of :func:`torch.nn.functional.batch_norm` in training mode: one pass over the
      activations, and its first and second derivatives are exact, also under
      :func:`torch.func.grad`;
    * under vmap, the same map written from ``mean``/``var`` ops. The fused kernel's batching
      rule gives a second-order meta-gradient that disagrees with the per-task loop (the
      pitfall of ``nn.BatchNorm2d`` under vmap, pinned by the tests); composed from ordinary
      autograd formulas, every derivative stays exact under vmap and double backward.
    """

    def __init__(self, channels: int, eps: float = 1e-5, style: NormStyle = "fast") -> None:
        super().__init__()
        if style not in NORM_STYLES:
            raise ValueError(f"batch-norm style must be one of {NORM_STYLES}, got {style!r}")
        self.eps = eps
        self.style = style
        self.weight = nn.Parameter(torch.ones(channels)) if style == "fast" else None
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        if not under_vmap():
            return nn.functional.batch_norm(x, None, None, self.weight, self.bias,
                                            training=True, eps=self.eps)
        # y = x·a + (β − mean·a) with a = γ/√(var + eps): one pass for the statistics, one
        # fused multiply-add over the activations.
        var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0, keepdim=True)
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = self.weight.view(1, -1, 1, 1) * scale
        return torch.addcmul(self.bias.view(1, -1, 1, 1) - mean * scale, x, scale)


def under_vmap() -> bool:
    """Whether the caller runs inside :func:`torch.func.vmap` (at any nesting depth, e.g. a
    ``torch.func.grad`` inside a vmap)."""
    stack = get_interpreter_stack()
    return bool(stack) and any(level.key() == TransformType.Vmap for level in stack)


def outer_only_names(model: nn.Module) -> tuple[str, ...]:
    """Names of ``model``'s parameters that the inner loop must leave as they are.

    These are the shifts of its ``style="original"`` batch norms: the original code
    meta-learns them with the outer optimiser only (:data:`NormStyle`). The names go into
    :attr:`metarl.supervised.tasks.SupervisedProblem.outer_only`.
    """
    return tuple(f"{name}.bias" for name, module in model.named_modules()
                 if isinstance(module, BatchStatNorm2d) and module.style == "original")


Downsample = Literal["stride", "maxpool"]


class Conv4(nn.Module):
    """The four-block convolutional network of MAML section 5.2 (after Vinyals et al., 2016).

    Each block is a 3×3 convolution, batch norm (:class:`BatchStatNorm2d`), ReLU, and a halving
    of the resolution: a stride-2 convolution (``"stride"``, used for Omniglot) or a 2×2 max-pool
    (``"maxpool"``, used for MiniImagenet). As in the original code (``maml.py``
    ``forward_conv``), strided features are averaged over space before the linear head (64
    features for Omniglot's 28×28 inputs), while max-pooled ones are flattened (5·5·32 = 800 for
    MiniImagenet's 84×84 inputs).

    The convolutions have no bias: batch norm subtracts the batch mean right after, so a bias
    there would have an identically zero gradient (the original code carries one anyway).

    Parameter names: ``blocks.{i}.conv.weight``, ``blocks.{i}.norm.weight``/``.bias`` (no
    ``.weight`` with ``norm="original"``, :data:`NormStyle`), ``head.weight``/``.bias``.
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        width: int = 64,
        downsample: Downsample = "stride",
        image_size: int = 28,
        eps: float = 1e-5,
        norm: NormStyle = "fast",
    ) -> None:
        super().__init__()
        if downsample not in ("stride", "maxpool"):
            raise ValueError(f"downsample must be 'stride' or 'maxpool', got {downsample!r}")
        self.downsample = downsample
        stride = 2 if downsample == "stride" else 1
        blocks = []
        size = image_size
        for i in range(4):
            block = nn.Module()
            block.conv = nn.Conv2d(
                in_channels if i == 0 else width, width, 3, stride=stride, padding=1, bias=False
            )
            block.norm = BatchStatNorm2d(width, eps, norm)
            blocks.append(block)
            size = (size + 1) // 2 if downsample == "stride" else size // 2
        if size < 1:
            raise ValueError(f"image_size {image_size} is too small for four halvings")
        self.blocks = nn.ModuleList(blocks)
        features = width if downsample == "stride" else width * size * size
        self.head = nn.Linear(features, n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases (the original code's initialisers, except
        its N(0, 1) Omniglot head, which we replace by Xavier too)."""
        for block in self.blocks:
            nn.init.xavier_uniform_(cast(nn.Conv2d, block.conv).weight)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = torch.relu(block.norm(block.conv(x)))  # type: ignore[operator]
            if self.downsample == "maxpool":
                x = nn.functional.max_pool2d(x, 2)
        x = x.mean(dim=(2, 3)) if self.downsample == "stride" else x.flatten(1)
        return self.head(x)


def conv4_omniglot(n_way: int, norm: NormStyle = "fast") -> Conv4:
    """Conv4 for 28×28 grey Omniglot: 64 filters, stride-2 convolutions."""
    return Conv4(1, n_way, width=64, downsample="stride", image_size=28, norm=norm)


def conv4_miniimagenet(n_way: int, norm: NormStyle = "fast") -> Conv4:
    """Conv4 for 84×84 RGB MiniImagenet: 32 filters (to reduce overfitting), 2×2 max-pool."""
    return Conv4(3, n_way, width=32, downsample="maxpool", image_size=84, norm=norm)

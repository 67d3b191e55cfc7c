"""metarl: model-agnostic meta-learning for few-shot supervised learning and meta-RL.

The whole toolkit rests on a handful of pure functions over parameter dictionaries
(see ``docs/design.md``):

* :data:`metarl.functional.Params` -- ``dict[str, Tensor]`` of a model's parameters;
* a loss ``(params, batch) -> Tensor`` built with :func:`metarl.functional.functional_loss`;
* :func:`metarl.adapt.adapt` -- the one inner loop (MAML, FOMAML, Reptile and MAML-RL share it);
* :mod:`metarl.meta` -- the outer objectives (MAML/FOMAML query loss, Reptile pseudo-gradient).
"""

from metarl.adapt import adapt
from metarl.errors import MetaRLError
from metarl.functional import Params, functional_loss, params_of
from metarl.rendering import check_gl_setting

check_gl_setting()  # before any metarl module imports mujoco, which a broken MUJOCO_GL fails

__all__ = ["MetaRLError", "Params", "adapt", "functional_loss", "params_of"]
__version__ = "0.1.0"

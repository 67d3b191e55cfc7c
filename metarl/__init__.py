"""metarl: model-agnostic meta-learning for few-shot supervised learning and meta-RL.

The whole toolkit rests on a handful of pure functions over parameter dictionaries:

* :data:`Params` -- ``dict[str, Tensor]`` of a model's parameters (:func:`params_of`);
* a loss ``(params, batch) -> Tensor`` built with :func:`functional_loss`;
* :func:`adapt` -- the one inner loop (MAML, FOMAML, Reptile and MAML-RL share it);
* :func:`maml_objective` and :func:`reptile_pseudo_gradient` -- the outer objectives.

The maths lives in :mod:`metarl.core`; meta-RL in :mod:`metarl.rl` with its environments in
:mod:`metarl.envs`; the few-shot benchmarks in :mod:`metarl.supervised`; what every training
run shares in :mod:`metarl.runs`.
"""

from metarl.core.adapt import adapt
from metarl.core.functional import Params, functional_loss, params_of
from metarl.core.meta import maml_objective, reptile_pseudo_gradient
from metarl.errors import MetaRLError
from metarl.rl.rendering import check_gl_setting

check_gl_setting()  # before any metarl module imports mujoco, which a broken MUJOCO_GL fails

__all__ = ["MetaRLError", "Params", "adapt", "functional_loss", "maml_objective", "params_of",
           "reptile_pseudo_gradient"]
__version__ = "0.1.0"

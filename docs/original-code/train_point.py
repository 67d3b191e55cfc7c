"""Meta-train the original MAML-TRPO point-navigation policy (cbfinn/maml_rl), settings of
maml_examples/maml_trpo_point.py, without rllab's stub/run_experiment_lite launcher."""
import os, random, sys
import numpy as np
import tensorflow as tf
from rllab.misc import logger

_Session = tf.Session  # one thread per process: runs go side by side on the 2 cores
tf.Session = lambda *a, **k: _Session(*a, config=tf.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1), **k)
from rllab.baselines.linear_feature_baseline import LinearFeatureBaseline
from rllab.envs.normalized_env import normalize
from maml_examples.point_env_randgoal import PointEnvRandGoal
from sandbox.rocky.tf.algos.maml_trpo import MAMLTRPO
from sandbox.rocky.tf.envs.base import TfEnv
from sandbox.rocky.tf.policies.maml_minimal_gauss_mlp_policy import MAMLGaussianMLPPolicy

seed, meta_batch, n_itr, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(out, exist_ok=True)
random.seed(seed); np.random.seed(seed); tf.set_random_seed(seed)
logger.set_snapshot_dir(out); logger.set_snapshot_mode("all")
logger.add_tabular_output(os.path.join(out, "progress.csv"))
logger.add_text_output(os.path.join(out, "debug.log"))
env = TfEnv(normalize(PointEnvRandGoal()))
policy = MAMLGaussianMLPPolicy(name="policy", env_spec=env.spec, grad_step_size=0.5,
                               hidden_nonlinearity=tf.nn.relu, hidden_sizes=(100, 100))
algo = MAMLTRPO(env=env, policy=policy, baseline=LinearFeatureBaseline(env_spec=env.spec),
                batch_size=20, max_path_length=100, meta_batch_size=meta_batch,
                num_grad_updates=1, n_itr=n_itr, use_maml=True, step_size=0.01, plot=False)
algo.train()

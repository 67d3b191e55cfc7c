"""Evaluate a snapshot like maml_examples/test_maml_point.py: 40 goals (np.random.seed(1)),
VPG with 4000-step batches, step size 0.5 then 0.25, AverageReturn after 0..3 steps."""
import csv, json, os, random, sys
import numpy as np
import tensorflow as tf
from rllab.misc import logger

_Session = tf.Session  # one thread per process: runs go side by side on the 2 cores
tf.Session = lambda *a, **k: _Session(*a, config=tf.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1), **k)
from rllab.baselines.linear_feature_baseline import LinearFeatureBaseline
from rllab.envs.normalized_env import normalize
from maml_examples.point_env_randgoal import PointEnvRandGoal
from sandbox.rocky.tf.algos.vpg import VPG
from sandbox.rocky.tf.envs.base import TfEnv

params_file, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
n_goals = int(sys.argv[4]) if len(sys.argv) > 4 else 40
os.makedirs(out, exist_ok=True)
np.random.seed(1)
goals = np.random.uniform(-0.5, 0.5, size=(40, 2))
per_goal = []
for i, goal in enumerate(goals[:n_goals]):
    with tf.Graph().as_default():
        random.seed(seed + i); np.random.seed(seed + i); tf.set_random_seed(seed + i)
        env = TfEnv(normalize(PointEnvRandGoal(goal=list(goal))))
        algo = VPG(env=env, policy=None, load_policy=params_file,
                   baseline=LinearFeatureBaseline(env_spec=env.spec), batch_size=4000,
                   max_path_length=100, n_itr=4,
                   optimizer_args={"init_learning_rate": 0.5,
                                   "tf_optimizer_args": {"learning_rate": 0.25},
                                   "tf_optimizer_cls": tf.train.GradientDescentOptimizer})
        path = os.path.join(out, "goal%02d.csv" % i)
        logger.add_tabular_output(path)
        algo.train()
        logger.remove_tabular_output(path)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    per_goal.append([float(r["AverageReturn"]) for r in rows])
    print(i, goal, per_goal[-1], flush=True)
a = np.array(per_goal)
res = {"label": "original code", "env": "metarl/Navigation2D-v0",  # the task it reproduces
       "code": "cbfinn/maml_rl: rllab PointEnvRandGoal under normalize()",
       "policy": {"source": params_file}, "seed": seed, "steps": [0, 1, 2, 3],
       "step_sizes": [0.5, 0.25, 0.25], "num_tasks": len(a), "tasks": goals[:n_goals].tolist(),
       "returns_per_task": a.tolist(), "returns_mean": a.mean(0).tolist(),
       "returns_ci95": (1.96 * a.std(0, ddof=1) / np.sqrt(len(a))).tolist()}
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=2)
print("mean", a.mean(0), "ci95", res["returns_ci95"])

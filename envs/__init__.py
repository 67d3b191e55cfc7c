"""Gymnasium task distributions for meta-RL, installed as ``metarl.envs``."""

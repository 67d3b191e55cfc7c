"""Supervised few-shot task families, models and runners, installed as ``metarl.supervised``."""

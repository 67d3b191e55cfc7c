"""What every training run shares and nothing of MAML: the loop, checkpoints, run folders and
their locks, atomic file writes, logging, plots, signals, distributed set-up and the command
line's plumbing. Both trainers (supervised and RL) build on it; it imports neither.
"""

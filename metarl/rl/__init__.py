"""Meta-reinforcement learning: policies, the batched sampler, REINFORCE inner updates and the
TRPO outer update through them (MAML-TRPO, Finn et al. 2017, section 5.3), the trainer and
the paper's adaptation protocol.
"""

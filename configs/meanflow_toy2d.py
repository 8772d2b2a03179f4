"""MeanFlow (Geng et al. 2025, Alg. 1) on 2-D data with an MLP: CPU minutes.

  python launch.py --config=configs/meanflow_toy2d.py --workdir=runs/mf_toy2d
  python launch.py --config=configs/meanflow_toy2d.py --workdir=runs/mf_toy2d \\
      --mode=sample --config.sample.num=2000 --config.sample.steps=2

A flow map u(z, r, t) of the linear process (process=linear, the MLP
reading t and t − r), trained from scratch on the MeanFlow identity with the
paper's CIFAR-10 sampler and weight (logit-normal(−2.0, 2.0), 75% of r ≠ t,
p = 0.75, c = 1e-3), with the iCT toy's MLP, optimiser and 8,000 steps
(configs/toy2d.py); one jump 1 → 0, or two through t = 0.5. Seed 0, the
share of samples near a mode at 1 / 2 jumps: 0.85 / 0.94 (the worst mode
served at 0.19 / 0.40 of its share); with ImageNet's law (−0.4, 1.0; 25%;
p = 1, c = 0.01) 0.73 / 0.99 (0.28 / 0.50).
"""

from cm_jax import methods
from configs import base, toy2d

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = toy2d.get_config()
  methods.meanflow.configure(c, methods.meanflow.CIFAR10)
  return c

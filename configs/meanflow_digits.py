"""MeanFlow (Geng et al. 2025, Alg. 1) on the 8×8 digits: the quickstart's
network and run.

  python launch.py --config=configs/meanflow_digits.py --workdir=runs/mf_digits
  python launch.py --config=configs/meanflow_digits.py --workdir=runs/mf_digits \\
      --mode=eval --config.eval.num=1000

The CIFAR-10 recipe's objective (configs/meanflow_cifar10.py: (t, r) ~
lognorm(−2.0, 2.0), 75% of r ≠ t, p = 0.75, c = 1e-3; t and t − r
embedded raw and concatenated) with the quickstart's UNet, optimiser,
batch, EMA and 2,000 steps; one jump, or two through t = 0.5.
"""

from cm_jax import methods
from configs import base, quickstart

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = quickstart.get_config()
  methods.meanflow.configure(c, methods.meanflow.CIFAR10)
  return c

"""sCT (sCM Alg. 1) on 2-D data with an MLP, on TrigFlow: CPU minutes.

  python launch.py --config=configs/sct_toy2d.py --workdir=runs/sct_toy2d
  python launch.py --config=configs/sct_toy2d.py --workdir=runs/sct_toy2d \\
      --mode=sample --config.sample.num=2000 --config.sample.steps=2

sCM's CIFAR-10 objective (configs/sct_cifar10.py: w_φ, prior weighting,
tangent normalisation c = 0.1, ln(σ_d·tan t) ~ N(−1.0, 1.4²), 2 steps
through t = 1.1) from scratch, with the iCT toy's MLP, optimiser and 8,000
steps (configs/toy2d.py) and the tangent warm-up over its first 1,000.
"""

from cm_jax import methods
from configs import base, toy2d

ARGS = {}  # :arg options (base.parse_arg)


def set_scm_toy(c):
  """sCM's objective (cm_jax/methods/scm.py) at toy size: the tangent
  warm-up over the first 1,000 steps."""
  methods.scm.configure(c)
  c.scm.warmup_steps = 1000


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = toy2d.get_config()
  set_scm_toy(c)
  c.method = "sct"
  c.init.workdir = ""  # from scratch
  return c

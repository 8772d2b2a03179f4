"""Shortcut models (Frans et al. 2025) on 2-D data with an MLP: CPU minutes.

  python launch.py --config=configs/shortcut_toy2d.py --workdir=runs/sc_toy2d
  python launch.py --config=configs/shortcut_toy2d.py --workdir=runs/sc_toy2d \\
      --mode=sample --config.sample.num=2000 --config.sample.steps=2

The official objective (kvfrans/shortcut-models: M = 128 dyadic step sizes,
one example in 8 a self-consistency one with targets from the EMA θ⁻ at
rate 0.999, the rest flow matching at d = 0) on a flow map u(z, r, t) of
the linear process, with the iCT toy's MLP, optimiser and 8,000 steps
(configs/toy2d.py); one jump 1 → 0, or two through t = 0.5.
"""

from cm_jax import methods
from configs import base, toy2d

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = toy2d.get_config()
  methods.shortcut.configure(c)
  return c

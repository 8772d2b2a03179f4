"""Shortcut models on the 8×8 digits: the quickstart's network and run.

  python launch.py --config=configs/shortcut_digits.py --workdir=runs/sc_digits

configs/shortcut_toy2d.py's objective (M = 128, 1 in 8 self-consistency
examples, θ⁻ = θ for the short run) with the quickstart's UNet, optimiser,
batch 64 and 2,000 steps; one jump, or two through t = 0.5.
"""

from cm_jax import methods
from configs import base, quickstart

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = quickstart.get_config()
  methods.shortcut.configure(c)
  c.target.mu = 0.0  # θ⁻ = θ, as configs/shortcut_toy2d.py
  return c

"""Shortcut models (Frans et al. 2025) on 2-D data with an MLP: CPU minutes.

  python launch.py --config=configs/shortcut_toy2d.py --workdir=runs/sc_toy2d
  python launch.py --config=configs/shortcut_toy2d.py --workdir=runs/sc_toy2d \\
      --mode=sample --config.sample.num=2000 --config.sample.steps=2

The official objective (kvfrans/shortcut-models: M = 128 dyadic step sizes,
one example in 8 a self-consistency one, the rest flow matching at d = 0)
on a flow map u(z, r, t) of the linear process, with the iCT toy's MLP,
optimiser and 8,000 steps (configs/toy2d.py); one jump 1 → 0, or two
through t = 0.5. One change for the short run: the self-consistency
targets come from θ itself (target.mu = 0), not from the official EMA at
rate 0.999, which lags an 8,000-step run. Seed 0, the share of samples
near a mode at 1 / 2 jumps: μ = 0.999: 0.236 / 0.419; 0.99: 0.450 / 0.521;
0: 0.623 / 0.671.
"""

from cm_jax import methods
from configs import base, toy2d

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = toy2d.get_config()
  methods.shortcut.configure(c)
  c.target.mu = 0.0  # θ⁻ = θ: the official EMA (0.999) lags this short run
  return c

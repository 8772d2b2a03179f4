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

``:cond`` is the official ImageNet recipe's class-conditional training on
the class-conditional toy of configs/lcd_toy2d.py (4 overlapping classes):
class dropout 0.1 on the flow-matching examples (``class_dropout_prob``)
and ``bootstrap_cfg``, the smallest step's self-consistency targets two
half jumps under classifier-free guidance at ``cfg_scale``, so the jumps
carry the guidance; sampled unguided (as the official few-step FIDs) or
with CFG at any ω:

  python launch.py --config=configs/shortcut_toy2d.py:cond --workdir=runs/sc_toy2d_cond
  python launch.py --config=configs/shortcut_toy2d.py:cond --workdir=runs/sc_toy2d_cond \\
      --mode=sample --config.sample.guidance=1.5
"""

from cm_jax import methods
from configs import base, edm_toy2d, toy2d

ARGS = dict(cond=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = toy2d.get_config()
  if arg.cond:
    edm_toy2d.set_class_conditional_toy(c)  # its data, labels and MLP
  methods.shortcut.configure(c)
  c.target.mu = 0.0  # θ⁻ = θ: the official EMA (0.999) lags this short run
  if arg.cond:
    c.shortcut.label_dropout = 0.1  # class_dropout_prob
    c.shortcut.bootstrap_cfg = True
    c.shortcut.cfg_scale = 3.0
    c.sample.labels = ()  # the classes in turn
  return c

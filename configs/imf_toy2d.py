"""Improved MeanFlow (iMF; Geng, Lu et al. 2025) on 2-D data: CPU minutes.

  python launch.py --config=configs/imf_toy2d.py --workdir=runs/imf_toy2d
  python launch.py --config=configs/imf_toy2d.py --workdir=runs/imf_toy2d \\
      --mode=sample --config.sample.num=2000 --config.sample.steps=2

iMF's objective (a regression on v through V = u + (t − r)·sg(du/dt), the
JVP along the network's own v, and the auxiliary v head) with
configs/meanflow_toy2d.py's (t, r) law, weight, MLP (plus the v head: its
own last layer and output), optimiser and 8,000 steps; one jump or two.
"""

from cm_jax import methods
from configs import base, toy2d

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = toy2d.get_config()
  methods.meanflow.configure_imf(c, methods.meanflow.CIFAR10)
  c.model.v_head = True
  return c

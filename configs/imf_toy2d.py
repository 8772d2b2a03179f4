"""Improved MeanFlow (iMF; Geng, Lu et al. 2025) on 2-D data: CPU minutes.

  python launch.py --config=configs/imf_toy2d.py --workdir=runs/imf_toy2d
  python launch.py --config=configs/imf_toy2d.py --workdir=runs/imf_toy2d \\
      --mode=sample --config.sample.num=2000 --config.sample.steps=2

iMF's objective (a regression on v through V = u + (t − r)·sg(du/dt), the
JVP along the network's own v, and the auxiliary v head) with
configs/meanflow_toy2d.py's (t, r) law, weight, MLP (plus the v head: its
own last layer and output), optimiser and 8,000 steps; one jump or two.

``:cond`` is iMF with its guidance as network inputs on the class-
conditional toy of configs/lcd_toy2d.py (4 overlapping classes): ω and the
interval [t_min, t_max] drawn per example as the official code does (ω
log-uniform on [1, 8]), class dropout 0.1, and sampled at any ω without
retraining:

  python launch.py --config=configs/imf_toy2d.py:cond --workdir=runs/imf_toy2d_cond
  python launch.py --config=configs/imf_toy2d.py:cond --workdir=runs/imf_toy2d_cond \
      --mode=sample --config.sample.guidance=3
"""

from cm_jax import methods
from configs import base, edm_toy2d, toy2d

ARGS = dict(cond=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = toy2d.get_config()
  if arg.cond:
    edm_toy2d.set_class_conditional_toy(c)  # its data, labels and MLP
  methods.meanflow.configure_imf(c, methods.meanflow.CIFAR10)
  c.model.v_head = True
  if arg.cond:
    c.model.guidance_inputs = True
    c.meanflow.label_dropout = 0.1
    c.sample.labels = ()  # the classes in turn
  return c

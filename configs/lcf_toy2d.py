"""LCF (LCM Alg. 4): fine-tune the LCM of configs/lcd_toy2d.py on a custom
data set, with no teacher: here the same 4 classes moved onto a circle of
radius 1.5 with std 0.3.

  python launch.py --config=configs/lcf_toy2d.py --workdir=runs/lcf_toy2d \\
      --config.init.workdir=runs/lcd_toy2d
  python launch.py --config=configs/lcf_toy2d.py --workdir=runs/lcf_toy2d \\
      --mode=sample --config.sample.steps=2

The student starts from the LCM's EMA weights (same network, same process)
and trains on pairs (t_n, t_{n+k}) sharing one noise, k = 20, w ~ U[0, 4] as
the network input, target EMA μ = 0.95.
"""

from configs import base, lcd_toy2d

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = lcd_toy2d.get_config()  # the LCM's network, process, k and w range
  c.method = "lcf"
  c.teacher.workdir = ""  # LCF evaluates no teacher ...
  c.init.workdir = "runs/lcd_toy2d"  # ... it fine-tunes the trained LCM
  c.data.radius = 1.5  # the "customised data set"
  c.data.std = 0.3
  c.data.seed = 1
  c.optim.lr = 1e-4  # fine-tuning (LCM paper's LCF: 8e-6 for SD)
  c.train.num_steps = 2000
  c.train.checkpoint_every = 1000
  c.train.sample_every = 1000
  return c

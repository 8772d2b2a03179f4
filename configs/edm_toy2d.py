"""The EDM diffusion teacher on 2-D data (the teacher of configs/cd_toy2d.py).

  python launch.py --config=configs/edm_toy2d.py --workdir=runs/edm_toy2d
  python launch.py --config=configs/edm_toy2d.py --workdir=runs/edm_toy2d \\
      --mode=sample --config.sample.num=2000   # Heun, 18 steps = 35 NFE
"""

from configs import toy2d


def get_config():
  c = toy2d.get_config()  # same data and MLP
  c.method = "edm"
  c.loss.p_mean = -1.2  # EDM §5: ln σ ~ N(−1.2, 1.2²)
  c.loss.p_std = 1.2
  c.optim.name = "adam"  # EDM: Adam (0.9, 0.999), eps 1e-8
  c.optim.lr = 1e-3
  c.train.num_steps = 4000
  c.train.checkpoint_every = 2000
  c.train.sample_every = 2000
  c.sample.ode_steps = 18  # EDM Heun: 35 NFE
  return c

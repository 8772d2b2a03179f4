"""Consistency distillation (CM Alg. 2) on 2-D data from the EDM teacher.

  python launch.py --config=configs/edm_toy2d.py --workdir=runs/edm_toy2d
  python launch.py --config=configs/cd_toy2d.py --workdir=runs/cd_toy2d \\
      --config.teacher.workdir=runs/edm_toy2d
  python launch.py --config=configs/cd_toy2d.py --workdir=runs/cd_toy2d \\
      --mode=sample --config.sample.num=2000 --config.sample.steps=2
"""

from configs import base, toy2d

ARGS = (None,)  # file.py:arg values; None = no arg.


def get_config(arg=None):
  base.check_arg(arg, ARGS)
  c = toy2d.get_config()  # same data and MLP as the teacher
  c.method = "cd"
  c.teacher.workdir = "runs/edm_toy2d"
  c.teacher.solver = "heun"  # CM CD: Heun on the EDM teacher
  c.teacher.init_student = True  # CM CD starts from the teacher's weights
  # CM CIFAR-10 CD: N = 18 fixed, μ = 0 (θ⁻ = θ), uniform n and λ.
  c.curriculum.name = "fixed"
  c.curriculum.num_scales = 18
  c.target.ema = "fixed"
  c.target.mu = 0.0
  c.loss.metric = "l2"  # (LPIPS is for images)
  c.loss.weighting = "uniform"
  c.loss.index_sampling = "uniform"
  c.optim.name = "radam"
  c.optim.lr = 1e-3
  c.train.num_steps = 2000
  c.train.checkpoint_every = 1000
  c.train.sample_every = 1000
  return c

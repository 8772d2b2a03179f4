"""Consistency distillation (CM Alg. 2) on the embedded digits.

  python launch.py --config=configs/edm_digits.py --workdir=runs/edm_digits
  python launch.py --config=configs/cd_digits.py --workdir=runs/cd_digits \\
      --config.teacher.workdir=runs/edm_digits
"""

from configs import base, quickstart

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = quickstart.get_config()  # the teacher's UNet (init_student)
  c.method = "cd"
  c.teacher.workdir = "runs/edm_digits"
  c.teacher.solver = "heun"
  c.teacher.init_student = True
  c.curriculum.name = "fixed"  # CM CIFAR-10 CD: N = 18, μ = 0, uniform n, λ = 1
  c.curriculum.num_scales = 18
  c.target.ema = "fixed"
  c.target.mu = 0.0
  c.loss.metric = "l2"  # the paper's LPIPS needs 32×32 RGB and its weights
  c.loss.weighting = "uniform"
  c.loss.index_sampling = "uniform"
  c.optim.name = "radam"
  c.sample.ts = ()
  return c

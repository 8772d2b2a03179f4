"""ECT (Geng et al. 2024) on 2-D data: from scratch, or tuning the EDM teacher.

  python launch.py --config=configs/ect_toy2d.py --workdir=runs/ect_toy2d
  python launch.py --config=configs/edm_toy2d.py --workdir=runs/edm_toy2d
  python launch.py --config=configs/ect_toy2d.py:tune --workdir=runs/ect_toy2d_tune \\
      --config.init.workdir=runs/edm_toy2d
  python launch.py --config=configs/ect_toy2d.py --workdir=runs/ect_toy2d \\
      --mode=sample --config.sample.num=2000 --config.sample.steps=2

ECT's CIFAR-10 objective (configs/ect_cifar10.py: q = 2, k = 8, b = 1, the
ℓ2 norm, λ = 1/(t − r), ln t ~ N(−1.1, 2²), θ⁻ = stopgrad θ, the σ_min
= 0.003 shift at evaluation only) with
its 8 stages compressed into configs/toy2d.py's 8,000 steps (a stage per
1,000), and that recipe's MLP and optimiser (the iCT toy). ``:tune`` starts
from an EDM teacher's EMA weights (configs/edm_toy2d.py, its 512 × 4 MLP),
ECT's consistency tuning, at lr 1e-4.
"""

from cm_jax import methods
from configs import base, edm_toy2d, toy2d

ARGS = dict(tune=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = toy2d.get_config()  # data, MLP, optimiser, run length of the iCT toy
  # 8 stages in 8,000 steps, as ECT's 200k / 25k
  methods.ect.configure(c, stage_steps=1000)
  if arg.tune:
    edm_toy2d.set_teacher_mlp(c)  # the teacher's network, to start from it
    c.init.workdir = "runs/edm_toy2d"
    # The 512 × 4 MLP at the toy's lr 1e-3 died at step ~4,800 (a gradient
    # spike, then constant output: every sample at the mean); lr 1e-4 is
    # also what CD tunes this network with (configs/cd_toy2d.py).
    c.optim.lr = 1e-4
  return c

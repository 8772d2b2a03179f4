"""ECT (Geng et al. 2024) on the 8×8 digits: the quickstart's network and
run, ECT's objective; ``:tune`` starts from the EDM teacher of cd_digits.py.

  python launch.py --config=configs/ect_digits.py --workdir=runs/ect_digits
  python launch.py --config=configs/edm_digits.py --workdir=runs/edm_digits
  python launch.py --config=configs/ect_digits.py:tune \\
      --workdir=runs/ect_digits_tune --config.init.workdir=runs/edm_digits
  python launch.py --config=configs/ect_digits.py --workdir=runs/ect_digits \\
      --mode=eval --config.eval.num=1000

ECT's CIFAR-10 objective (configs/ect_cifar10.py: q = 2, k = 8, b = 1, the
ℓ2 norm, λ = 1/(t − r), ln t ~ N(−1.1, 2²), θ⁻ = stopgrad θ, the σ_min
= 0.003 shift at evaluation only) from
scratch, its 8 stages compressed into the quickstart's 2,000 steps (250
each), with the quickstart's UNet, optimiser, batch and EMA. ``:tune``
is ECT's consistency tuning: the same run from the EMA weights of
configs/edm_digits.py (the quickstart's UNet, so nothing else changes).
"""

from cm_jax import methods
from configs import base, quickstart

ARGS = dict(tune=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = quickstart.get_config()
  # 8 stages in 2,000 steps, as ECT's 200k / 25k
  methods.ect.configure(c, stage_steps=250)
  if arg.tune:
    c.init.workdir = "runs/edm_digits"
  return c

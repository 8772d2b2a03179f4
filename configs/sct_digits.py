"""sCT (sCM Alg. 1) on the 8×8 digits: the quickstart's network and run.

  python launch.py --config=configs/sct_digits.py --workdir=runs/sct_digits
  python launch.py --config=configs/sct_digits.py --workdir=runs/sct_digits \\
      --mode=eval --config.eval.num=1000

sCM's objective (configs/sct_cifar10.py: w_φ, prior weighting, tangent
normalisation c = 0.1, ln(σ_d·tan t) ~ N(−1.0, 1.4²), 2 steps through
t = 1.1) from scratch, with the quickstart's UNet (positional embedding of
c_noise(t) = t), optimiser, batch, EMA and 2,000 steps, the tangent warm-up
over the first 250.
"""

from configs import base, quickstart, sct_toy2d

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = quickstart.get_config()
  sct_toy2d.set_scm_toy(c)  # sCM's options, keeping the optimiser and run
  c.scm.warmup_steps = 250
  c.method = "sct"
  c.init.workdir = ""
  return c

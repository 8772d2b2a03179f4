"""sCM's TrigFlow diffusion teacher on CIFAR-10 (the teacher of sCD).

  python launch.py --config=configs/trigflow_cifar10.py --workdir=runs/trigflow_cifar10
  python launch.py --config=configs/trigflow_cifar10.py:smoke --workdir=/tmp/trigflow_smoke

method=diffusion on process=trigflow trains F by flow matching in v (sCM §2.1;
``losses.trigflow_diffusion_loss``, EDM's loss re-timed). Recipe (sCM App. G,
as docs/recipes.md restates it): DDPM++ trained "with EDM's settings" for
400k iterations (their FID 2.15): NCSN++-size DDPM++ (positional embedding
of c_noise(t) = t, box resampling), dropout 0.13, Adam lr 1e-3 with a
10 Mimg warm-up, batch 512, EMA half-life 0.5 Mimg, ln(σ_d·tan t) ~
N(−1.2, 1.2²), random flips. Samples with DDIM along EDM's 18-point grid in
t = arctan(σ/σ_d) (DDIM is TrigFlow's first-order PF-ODE solver).
"""

from configs import base

ARGS = dict(smoke=False)  # :arg options (base.parse_arg)


def set_trigflow(c):
  """process=trigflow with sCM's time input c_noise(t) = t."""
  c.process = "trigflow"
  c.trigflow.time_scale = 1.0
  c.model.embedding = "positional"


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = base.get_base_config()
  base.set_cifar10(c)
  base.set_ddpmpp(c, dropout=0.13)
  set_trigflow(c)
  c.method = "diffusion"
  # EDM §5, as ln(σ_d·tan t)
  c.diffusion_model.p_mean, c.diffusion_model.p_std = -1.2, 1.2
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.optim.warmup_steps = 19_531  # 10 Mimg / 512
  c.train.num_steps = 400_000
  c.train.batch_size = 512
  c.train.ema_decay = 0.99929  # half-life 0.5 Mimg at batch 512
  c.sample.ode_steps = 18  # DDIM over EDM's 18-point grid, in t
  c.sample.ts = ()
  if arg.smoke:
    base.shrink_for_smoke(c)
  return c

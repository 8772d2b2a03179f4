"""LCD (LCM Alg. 1) on the class-conditional 2-D toy: CPU seconds.

  python launch.py --config=configs/edm_toy2d.py:cond --workdir=runs/edm_toy2d_cond
  python launch.py --config=configs/lcd_toy2d.py --workdir=runs/lcd_toy2d \\
      --config.teacher.workdir=runs/edm_toy2d_cond
  for w in 0 1 3; do python launch.py --config=configs/lcd_toy2d.py \\
      --workdir=runs/lcd_toy2d --mode=sample --config.sample.steps=1 \\
      --config.sample.guidance=$w; done

The student distils the CFG-augmented PF-ODE of the conditional VP teacher
with w ~ U[0, 4] as a network input, DDIM teacher steps that skip k = 20 of
the 1000 DDPM steps, target EMA μ = 0.95 (the official LCM code), ℓ2.

``:context`` distils the teacher of configs/edm_toy2d.py:context, whose class
is given only as a context vector (the guided pair: the example's context
and the zero context):

  python launch.py --config=configs/edm_toy2d.py:context --workdir=runs/edm_toy2d_context
  python launch.py --config=configs/lcd_toy2d.py:context --workdir=runs/lcd_toy2d_context
"""

from configs import base, edm_toy2d

ARGS = dict(context=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  teacher = "context" if arg.context else "cond"
  c = edm_toy2d.get_config(teacher)  # the teacher's data, process and MLP
  c.method = "lcd"
  c.teacher.workdir = f"runs/edm_toy2d_{teacher}"
  c.teacher.solver = "ddim"  # LCM: Ψ = DDIM
  c.teacher.init_student = True  # LCM: θ ← φ, plus the zero-initialised w input
  c.model.w_embedding = True  # LCM: w as an input (Fourier/sinusoidal, zero-init)
  c.curriculum.name = "fixed"
  c.curriculum.num_scales = 1000  # N: every DDPM step
  c.lcm.skip = 20  # LCM: k = 20 (50 DDIM steps of 1000)
  c.lcm.w_min = 0.0  # toy range; the paper's [2, 14] is for Stable Diffusion
  c.lcm.w_max = 4.0
  c.target.ema = "fixed"
  c.target.mu = 0.95  # official LCM code (the paper's text reads 0.999943)
  c.loss.metric = "l2"  # LCM: ℓ2 (Huber optional)
  # ‖·‖² (loss.reduction=sum), not the script's per-element mean: no grad
  # clip here, and the figures in docs/methods.md were made with it.
  c.loss.weighting = "uniform"
  c.loss.index_sampling = "uniform"
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.train.num_steps = 3000
  c.train.checkpoint_every = 1500
  c.train.sample_every = 1500
  c.train.ema_decay = 0.995
  c.sample.guidance = 2.0  # w of the periodic grids and --mode=sample
  c.sample.ts = ()  # VP: DDPM steps evenly spaced (2 steps: 999, 500)
  return c

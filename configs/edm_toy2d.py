"""The EDM diffusion teacher on 2-D data (the teacher of configs/cd_toy2d.py).

  python launch.py --config=configs/edm_toy2d.py --workdir=runs/edm_toy2d
  python launch.py --config=configs/edm_toy2d.py --workdir=runs/edm_toy2d \\
      --mode=sample --config.sample.num=2000   # Heun, 18 steps = 35 NFE

``:cond`` is the class-conditional VP teacher of configs/lcd_toy2d.py (LCM's
ε-prediction on the DDPM process, label dropout 0.1 for classifier-free
guidance), on a 4-mode mixture whose classes (modes) overlap:

  python launch.py --config=configs/edm_toy2d.py:cond --workdir=runs/edm_toy2d_cond
  python launch.py --config=configs/edm_toy2d.py:cond --workdir=runs/edm_toy2d_cond \\
      --mode=sample --config.sample.guidance=2   # DDIM, 50 steps, CFG w = 2
"""

from configs import toy2d


def set_class_conditional_toy(c):
  """Four overlapping classes, one gmm mode each; an MLP with a label
  embedding (the null label 4 is the unconditional model)."""
  c.data.num_modes = 4
  c.data.std = 0.7  # classes overlap: true samples are 70% Bayes-correct
  c.model.num_classes = 4
  c.process = "vp"  # LCM: DDPM process, ε-prediction, DDIM
  c.vp.num_timesteps = 1000  # SD's scaled-linear β (base), as LCM
  c.sample.ts = ()  # DDPM steps evenly spaced


def get_config(arg=None):
  if arg not in (None, "cond"):
    raise ValueError(f"Unknown config argument {arg!r}; valid: cond.")
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
  if arg == "cond":
    set_class_conditional_toy(c)
    c.cfg.label_dropout = 0.1  # CFG training (LCM teacher)
    c.sample.ode_steps = 50  # DDIM, 50 steps (LCM's teacher schedule)
  return c

"""The EDM diffusion teacher on CIFAR-10 (the CM paper's CD teacher).

  python launch.py --config=configs/edm_cifar10.py --workdir=runs/edm_cifar10
  python launch.py --config=configs/edm_cifar10.py:smoke --workdir=/tmp/edm_smoke

The options combine (``:latent,smoke``, ``:ddpmpp,smoke``); ``smoke`` is
the recipe at CPU size on the CIFAR-10 fixture shipped in the package.

``:cond`` is the class-conditional VP teacher of
configs/lcd_cifar10.py:pixel: LCM's ε-prediction on the DDPM process (SD's
scaled-linear β), 10 classes + the null label, label dropout 0.1, DDPM++
positional noise embedding (c_noise = t). ``:latent`` is the same teacher in the latent space of configs/ae_cifar10.py (16×16×4
latents, unit variance, no flips), the teacher of configs/lcd_cifar10.py.
``:ddpmpp`` trains the same EDM objective on EDM's
DDPM++ network (`edm-cifar10-32x32-uncond-vp`), the run that
configs/ect_cifar10.py tunes:

  python launch.py --config=configs/ae_cifar10.py --workdir=runs/ae_cifar10
  python launch.py --config=configs/edm_cifar10.py:latent \\
      --workdir=runs/edm_cifar10_latent

Recipe (EDM §5 and NVlabs/edm `train.py`, `training/training_loop.py`; the
CM JAX code's teacher config `configs/cifar10_k_ve.py`; docs/recipes.md):
NCSN++ 128 ch, (2, 2, 2), 4 blocks, attention at 16, dropout 0.13, Adam lr
1e-3 with a 10 Mimg linear warm-up, batch 512, EMA half-life 0.5 Mimg with
EDM's ramp-up (ratio 0.05), 400k steps, ln σ ~ N(−1.2, 1.2²). Augmentation
as EDM's own CIFAR-10 run: the non-leaky pipeline at p = 0.12 with its 9
labels fed to the network (`augment`, `model.augment_dim`), the pipe's
x-flips instead of the data's. The CM code's teacher had neither (random
flips, no ramp-up): ``--config.augment.p=0 --config.model.augment_dim=0
--config.data.random_flip=True --config.train.ema_rampup_ratio=0`` is that
one. Target: FID ≈ 2.0 with Heun, 18 steps (35 NFE); EDM reports 1.97 with
the augmentation.
"""

from configs import base

# :arg options (base.parse_arg), combined as in ``:latent,smoke``.
ARGS = dict(smoke=False, cond=False, latent=False, ddpmpp=False)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = base.get_base_config()
  base.set_cifar10(c)
  base.set_ncsnpp(c, fourier_scale=16.0, dropout=0.13)
  if arg.ddpmpp:  # EDM's DDPM++ ("vp" architecture), the network ECT tunes
    base.set_ddpmpp(c, dropout=0.13)
  c.method = "diffusion"
  c.diffusion_model.p_mean = -1.2  # EDM §5
  c.diffusion_model.p_std = 1.2
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.optim.warmup_steps = 19_531  # 10 Mimg / 512
  c.train.num_steps = 400_000
  c.train.batch_size = 512
  c.train.ema_decay = 0.99929  # half-life 0.5 Mimg at batch 512: 0.5^(512/5e5)
  c.train.ema_rampup_ratio = 0.05  # EDM training_loop.py
  c.sample.ode_steps = 18  # Heun: 35 NFE
  if arg.cond or arg.latent:
    set_class_conditional_vp(c)  # LCM's teachers: flips, no augmentation
  else:
    set_edm_augment(c)
  if arg.smoke:
    base.shrink_for_smoke(c)
  if arg.latent:
    set_latent(c, "/tmp/ae_smoke" if arg.smoke else "runs/ae_cifar10")
  return c


def set_edm_augment(c):
  """EDM train.py's --augment=0.12: the non-leaky pipeline (its x-flips
  replace the data's), the 9 augmentation labels as a network input."""
  c.augment.p = 0.12
  c.model.augment_dim = 9
  c.data.random_flip = False


def set_latent(c, ae_workdir):
  """data.source=latents: CIFAR-10 as configs/ae_cifar10.py encodes it
  (LDM/LCM train in such a latent space); 16×16×4 latents, so attention
  at 8×8 as LDM's UNets attend at the lower latent resolutions."""
  c.data.source = "latents"
  c.data.ae_workdir = ae_workdir  # its latest checkpoint; latents cached there
  c.data.random_flip = False  # latents are not flipped
  c.augment.p, c.model.augment_dim = 0.0, 0  # nor warped
  if c.model.attn_resolutions:
    c.model.attn_resolutions = (8,)


def set_class_conditional_vp(c):
  """LCM's teacher, class-conditional: VP (DDPM, ε-prediction), CFG dropout."""
  c.process = "vp"
  c.model.num_classes = 10  # CIFAR-10 labels; label 10 is the null class
  c.model.embedding = "positional"  # DDPM++ / EDM-VP: c_noise = t ∈ [0, 999]
  c.diffusion_model.label_dropout = 0.1
  c.data.random_flip = True
  c.train.ema_rampup_ratio = 0.0
  c.sample.ode_steps = 50  # DDIM, 50 steps (LCM's teacher schedule)
  c.sample.ts = ()

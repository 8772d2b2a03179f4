"""The EDM teacher on the embedded 8×8 digits (the teacher of cd_digits.py,
and of scd_digits.py, which reads it as a TrigFlow network).

  python launch.py --config=configs/edm_digits.py --workdir=runs/edm_digits

``:latent`` is the class-conditional VP teacher of configs/lcd_digits.py, in
the latent space of configs/ae_digits.py (16×16 digits → 8×8×2 latents,
unit variance): LCM's ε-prediction on the DDPM process, label dropout 0.1
for classifier-free guidance, the same small UNet.

  python launch.py --config=configs/ae_digits.py --workdir=runs/ae_digits
  python launch.py --config=configs/edm_digits.py:latent \\
      --workdir=runs/edm_digits_latent
  python launch.py --config=configs/edm_digits.py:latent \\
      --workdir=runs/edm_digits_latent --mode=sample --config.sample.guidance=2
"""

from configs import base, quickstart

ARGS = dict(latent=False)  # :arg options (base.parse_arg)


def set_latent_digits(c, ae_workdir="runs/ae_digits"):
  """data.source=latents: the digits as configs/ae_digits.py encodes them."""
  c.data.source = "latents"
  c.data.ae_workdir = ae_workdir  # its latest checkpoint; latents cached there
  c.data.random_flip = False


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = quickstart.get_config()  # same data and UNet
  c.method = "diffusion"
  c.diffusion_model.p_mean = -1.2  # EDM §5
  c.diffusion_model.p_std = 1.2
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.sample.ode_steps = 18  # Heun: 35 NFE
  if arg.latent:
    set_latent_digits(c)
    c.model.num_classes = 10  # digits 0–9; label 10 is the null class
    c.process = "vp"  # LCM: DDPM process, ε-prediction, DDIM
    c.diffusion_model.label_dropout = 0.1
    c.sample.ode_steps = 50  # DDIM, 50 steps (LCM's teacher schedule)
    c.sample.ts = ()
    c.sample.guidance = 2.0
    c.train.num_steps = 2000
    c.train.checkpoint_every = 1000
    c.train.sample_every = 1000
  return c

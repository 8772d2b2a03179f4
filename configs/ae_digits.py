"""The KL autoencoder of the latent digits chain (CPU minutes, no download).

  python launch.py --config=configs/ae_digits.py --workdir=runs/ae_digits
  python launch.py --config=configs/ae_digits.py --workdir=runs/ae_digits \\
      --mode=sample   # reconstructions of the first sample.num digits

scikit-learn's digits at 16×16 (1 channel) → latents 8×8×2 (f = 2, c = 2),
ℓ1 reconstruction + β·KL with LDM's β = 1e-6. Its latents train
configs/edm_digits.py:latent and configs/lcd_digits.py (data.source=latents,
data.ae_workdir=runs/ae_digits).
"""

from configs import base

ARGS = {}  # :arg options (base.parse_arg)


def set_ae(c, ch, ch_mult, z_channels, out_channels):
  """method=ae: the KL autoencoder (cm_jax/nn/autoencoder.py), ℓ1 + β·KL,
  Adam; no target network (μ = 0)."""
  c.method = "ae"
  base.set_autoencoder(c)  # its fields only: no label, context or w input
  c.model.ch = ch
  c.model.ch_mult = ch_mult  # f = 2^(len − 1)
  c.model.num_res_blocks = 1
  c.model.z_channels = z_channels
  c.model.out_channels = out_channels
  c.loss.metric = "l1"  # LDM: ℓ1 (+ LPIPS and a GAN, not used here)
  c.loss.kl_weight = 1e-6  # LDM's KL autoencoders
  c.target.ema = "fixed"
  c.target.mu = 0.0
  c.optim.name = "adam"
  c.data.random_flip = False


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = base.get_base_config()
  c.data.source = "digits"
  c.data.resolution = 16
  set_ae(c, ch=16, ch_mult=(1, 2), z_channels=2, out_channels=1)
  c.optim.lr = 1e-3
  c.train.num_steps = 2000
  c.train.batch_size = 64
  c.train.ema_decay = 0.999
  c.train.log_every = 100
  c.train.checkpoint_every = 1000
  c.train.sample_every = 1000
  c.sample.grid_size = 64
  c.sample.num = 64
  c.eval.num = 1797  # --mode=eval: reconstruction FID over every digit
  return c

"""The KL autoencoder of latent CIFAR-10 (the latents of configs/lcd_cifar10.py).

  python launch.py --config=configs/ae_cifar10.py --workdir=runs/ae_cifar10
  python launch.py --config=configs/ae_cifar10.py:smoke --workdir=/tmp/ae_smoke

32×32×3 → 16×16×4 (f = 2, c = 4: SD's 4 latent channels; f = 8 would leave
4×4 latents of a 32×32 image), ℓ1 + 1e-6·KL as LDM's KL autoencoders, without
their LPIPS and GAN terms. Adam 1e-4 (LDM: 4.5e-6 × batch), batch 128,
100k steps, EMA 0.9999. `--mode=eval` gives the reconstruction FID
(`fid_recon`) of `eval.num` training images.
"""

from configs import ae_digits, base

ARGS = dict(smoke=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = base.get_base_config()
  base.set_cifar10(c)
  ae_digits.set_ae(c, ch=128, ch_mult=(1, 2), z_channels=4, out_channels=3)
  c.model.num_res_blocks = 2
  c.optim.lr = 1e-4
  c.train.num_steps = 100_000
  c.train.batch_size = 128
  c.train.ema_decay = 0.9999
  c.eval.num = 10_000
  if arg.smoke:  # CPU size, on the shipped CIFAR-10 fixture
    c.model.ch = 16
    c.model.num_res_blocks = 1
    base.set_smoke_schedule(c)
  return c

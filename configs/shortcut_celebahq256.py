"""Shortcut models on latent CelebA-HQ 256 with DiT-B/2 (Frans et al. 2025;
the official README's FID-50k 20.5 at 1 step, 13.8 at 4, 6.9 at 128).

  python launch.py --config=configs/shortcut_celebahq256.py \\
      --workdir=runs/sc_celebahq256 --config.data.ae_workdir=...
  python launch.py --config=configs/shortcut_celebahq256.py:smoke \\
      --workdir=/tmp/sc_celebahq256_smoke

Recipe: the official JAX code, kvfrans/shortcut-models (``train.py``
defaults and its README's CelebA command: ``--model.hidden_size 768
--model.patch_size 2 --model.depth 12 --model.num_heads 12
--model.mlp_ratio 4 --model.cfg_scale 0 --model.class_dropout_prob 1
--model.num_classes 1 --batch_size 64 --max_steps 410_000
--model.train_type shortcut``):
- DiT-B/2 on 32×32×4 SD-VAE latents, unconditional (the official
  num_classes 1 with every label dropped feeds one learned label embedding
  to every example; here the network has none: num_classes 0);
- the shortcut objective of cm_jax/methods/shortcut.py: M = 128 dyadic step
  sizes, one example in 8 a self-consistency one whose target is two half
  jumps of θ⁻, the EMA of θ at rate 0.999 (``target_update_rate``,
  ``bootstrap_ema``), clipped to ±4, flow matching on the rest;
- AdamW, lr 1e-4 constant, β = (0.9, 0.999), weight decay 0.1, no warm-up,
  no dropout, batch 64, 410k steps;
- samples from θ itself (``use_ema`` 0: train.ema_decay = 0 makes the
  sampling EMA θ), in 1, 4 or 128 jumps.
Data: ``data.source=latents`` of a VAE the user names (``data.ae_workdir``
or ``data.autoencoder``); SD-VAE latents of CelebA-HQ arrive with the
data-at-scale work. ``:smoke`` trains a 2-block DiT for 20 steps of the
recipe's batch of 64 on the shipped CIFAR-10 fixture's pixels (32×32×3, in
place of latents).
"""

from cm_jax import methods
from configs import base

ARGS = dict(smoke=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = base.get_base_config()
  base.set_dit(c, "B", patch_size=2)  # hidden 768, depth 12, 12 heads
  c.model.num_classes = 0
  methods.shortcut.configure(c)  # M = 128, 1 in 8, θ⁻ at 0.999, clip 4
  c.data.source = "latents"
  c.data.random_flip = False  # latents: flips are the encoder's
  c.optim.name = "adamw"
  c.optim.lr = 1e-4
  c.optim.b1, c.optim.b2 = 0.9, 0.999
  c.optim.weight_decay = 0.1
  c.optim.warmup_steps = 0
  c.train.batch_size = 64
  c.train.num_steps = 410_000
  c.train.ema_decay = 0.0  # use_ema 0: sample θ
  c.eval.steps = (1, 4, 128)
  if arg.smoke:
    base.set_smoke_schedule(c)
    c.train.batch_size = 64  # 8 self-consistency examples for 7 step sizes
    c.model.depth, c.model.hidden_size, c.model.num_heads = 2, 64, 4
    c.eval.steps = (1, 4)
  return c

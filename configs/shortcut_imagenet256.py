"""Class-conditional shortcut models on latent ImageNet 256 (Frans et al.
2025; the official README's FID-50k: DiT-B/2 40.3 at 1 step, 28.3 at 4,
15.5 at 128; DiT-XL/2 10.6, 7.8 and 3.8).

  python launch.py --config=configs/shortcut_imagenet256.py:size=xl2 \\
      --workdir=runs/sc_in256_xl2 --config.data.ae_workdir=...
  python launch.py --config=configs/shortcut_imagenet256.py:smoke \\
      --workdir=/tmp/sc_in256_smoke

Recipe: the official JAX code, kvfrans/shortcut-models (``train.py``
defaults and its README's ImageNet commands: ``--model.hidden_size 768
--model.patch_size 2 --model.depth 12 --model.num_heads 12
--model.mlp_ratio 4 --dataset_name imagenet256 --model.cfg_scale 1.5
--model.class_dropout_prob 0.1 --model.bootstrap_cfg 1 --batch_size 256
--max_steps 810_000 --model.train_type shortcut``; DiT-XL with
``--model.hidden_size 1152 --model.depth 28 --model.num_heads 16``):
- DiT-B/2 or XL/2 (``:size=b2|xl2``) on 32×32×4 SD-VAE latents, 1,000
  classes and the null class; (t, d) through two time embedders;
- the shortcut objective of cm_jax/methods/shortcut.py: M = 128 dyadic step
  sizes, one example in 8 a self-consistency one whose target is two half
  jumps of θ⁻, the EMA of θ at rate 0.999 (``target_update_rate``,
  ``bootstrap_ema``), clipped to ±4, flow matching on the rest;
- class dropout 0.1 on the flow-matching examples (``class_dropout_prob``);
  ``bootstrap_cfg``: the smallest step's self-consistency targets (2d =
  2/128, 4 of the 32) are two half jumps under classifier-free guidance at
  ``cfg_scale`` 1.5;
- AdamW, lr 1e-4 constant, β = (0.9, 0.999), weight decay 0.1, no warm-up,
  no dropout, batch 256, 810k steps;
- samples from θ itself (``use_ema`` 0: train.ema_decay = 0), in 1, 4 or
  128 jumps, unguided (the guidance is in the jumps; the official eval's
  step-count FIDs use cfg 1) or with CFG at ω = 1.5 (``sample.guidance``;
  the official eval's "cfg" FID: 128 jumps at cfg_scale).
Data: ``data.source=latents`` of a VAE the user names (``data.ae_workdir``
or ``data.autoencoder``); SD-VAE latents of ImageNet arrive with the
data-at-scale work. ``:smoke`` trains a 2-block DiT for 20 steps of a batch
of 64 on the shipped CIFAR-10 fixture's pixels (32×32×3, in place of
latents, 10 classes), with the recipe's objective and guidance.
"""

from cm_jax import methods
from configs import base

# :arg options (base.parse_arg): size=b2 | xl2, smoke.
ARGS = dict(size="b2", smoke=False)
SIZES = {"b2": "B", "xl2": "XL"}  # the README's two commands


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  if arg.size not in SIZES:
    raise ValueError(f"configs/shortcut_imagenet256.py:size={arg.size} is "
                     "not one of the official commands' DiTs; valid: "
                     f"{', '.join(SIZES)}.")
  c = base.get_base_config()
  base.set_dit(c, SIZES[arg.size], patch_size=2)
  c.model.num_classes = 1000
  methods.shortcut.configure(c)  # M = 128, 1 in 8, θ⁻ at 0.999, clip 4
  c.shortcut.label_dropout = 0.1  # class_dropout_prob
  c.shortcut.bootstrap_cfg = True
  c.shortcut.cfg_scale = 1.5
  c.data.source = "latents"
  c.data.random_flip = False  # latents: flips are the encoder's
  c.optim.name = "adamw"
  c.optim.lr = 1e-4
  c.optim.b1, c.optim.b2 = 0.9, 0.999
  c.optim.weight_decay = 0.1
  c.optim.warmup_steps = 0
  c.train.batch_size = 256
  c.train.num_steps = 810_000
  c.train.ema_decay = 0.0  # use_ema 0: sample θ
  c.eval.steps = (1, 4, 128)
  c.sample.labels = ()
  if arg.smoke:
    base.set_smoke_schedule(c)
    c.train.batch_size = 64  # 8 self-consistency examples for 7 step sizes
    c.model.depth, c.model.hidden_size, c.model.num_heads = 2, 64, 4
    c.model.num_classes = 10
    c.eval.steps = (1, 4)
  return c

"""MeanFlow on latent ImageNet 256 with a DiT (Geng et al. 2025, Table 2:
1-NFE FID 6.17 (B/2), 5.01 (M/2), 3.84 (L/2), 3.43 (XL/2); 2-NFE 2.20 for
XL/2).

  python launch.py --config=configs/meanflow_imagenet256.py:size=xl2 \\
      --workdir=runs/mf_in256_xl2 --config.data.ae_workdir=...
  python launch.py --config=configs/meanflow_imagenet256.py:smoke \\
      --workdir=/tmp/mf_in256_smoke

Recipe: MeanFlow Table 4 and the official JAX code (Gsunshine/meanflow,
configs/default.py, meanflow.py, models/models_dit.py):
- DiT-B/2, M/2, L/2 or XL/2 (``:size=b2|m2|l2|xl2``) on 32×32×4 SD-VAE
  latents, 1,000 classes with the null class, t and t − r raw through two
  time embedders whose outputs are summed with the label's (c = t + h + y);
- (t, r) ~ lognorm(−0.4, 1.0), sorted, 25% of r ≠ t; adaptive weight p = 1,
  c = 0.01; class dropout 0.1 (the first n ~ Binomial(B, 0.1) examples);
- classifier-free guidance in the target, (ω, κ, t interval) per size:
  B/2, M/2 (1.0, 0.5, [0, 1]); L/2 (0.2, 0.92, [0, 0.8]); XL/2 (0.2, 0.92,
  [0, 0.75]) (ω' = ω/(1 − κ) = 2, 2, 2.5, 2.5);
- Adam β = (0.9, 0.95), lr 1e-4 constant, no weight decay, no dropout,
  batch 256, 240 epochs of 1,281,167 images (1.2M iterations), EMA 0.9999;
- one jump z_0 = z_1 − u(z_1, 0, 1) (two through t = 0.5).
Data: ``data.source=latents`` of a VAE the user names (``data.ae_workdir``
or ``data.autoencoder``); SD-VAE latents of ImageNet arrive with the
data-at-scale work. ``:smoke`` trains a 2-block DiT for 20 steps on the
shipped CIFAR-10 fixture's pixels (32×32×3, in place of latents, 10
classes), with the recipe's objective and guidance.
"""

from cm_jax import methods
from configs import base

# :arg options (base.parse_arg): size=b2 | m2 | l2 | xl2, smoke.
ARGS = dict(size="b2", smoke=False)
SIZES = {"b2": "B", "m2": "M", "l2": "L", "xl2": "XL"}


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  if arg.size not in SIZES:
    raise ValueError(f"configs/meanflow_imagenet256.py:size={arg.size} is "
                     f"not a MeanFlow DiT; valid: {', '.join(SIZES)}.")
  size = SIZES[arg.size]
  c = base.get_base_config()
  base.set_dit(c, size, patch_size=2)
  c.model.num_classes = 1000
  methods.meanflow.configure(c, methods.meanflow.IMAGENET)
  c.meanflow.label_dropout = 0.1
  (c.meanflow.omega, c.meanflow.kappa, c.meanflow.t_start,
   c.meanflow.t_end) = methods.meanflow.GUIDANCE[size]
  c.data.source = "latents"
  c.data.random_flip = False  # latents: flips are the encoder's (DiT, MF)
  c.optim.name = "adam"
  c.optim.lr = 1e-4
  c.optim.b1, c.optim.b2 = 0.9, 0.95
  c.optim.warmup_steps = 0
  c.train.batch_size = 256
  c.train.num_steps = 240 * 1_281_167 // 256
  c.train.ema_decay = 0.9999
  c.sample.labels = ()
  if arg.smoke:
    base.set_smoke_schedule(c)
    c.model.depth, c.model.hidden_size, c.model.num_heads = 2, 64, 4
    c.model.num_classes = 10
  return c

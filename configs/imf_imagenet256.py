"""Improved MeanFlow (iMF) on latent ImageNet 256 with iMF's in-context DiT
(Geng, Lu et al. 2025, Table 5 / the official README: 1-NFE FID 3.39
(B/2), 2.27 (M/2), 1.86 (L/2), 1.72 (XL/2); 2-NFE 1.54 (XL/2)).

  python launch.py --config=configs/imf_imagenet256.py:size=b2 \\
      --workdir=runs/imf_in256_b2 --config.data.ae_workdir=...
  python launch.py --config=configs/imf_imagenet256.py:smoke \\
      --workdir=/tmp/imf_in256_smoke

Recipe: the official JAX code, Lyy-iiis/imeanflow (in its configs/:
default.py, train_config.yml (iMF-B/2, "recommended") and
eval_config.yml; imf.py, models/imfDiT.py):
- imfDiT-B/2, M/2, L/2 or XL/2 (``:size=b2|m2|l2|xl2``; depth 12, 24, 32,
  48; width 768, 768, 1024, 1024) on 32×32×4 SD-VAE latents, 1,000
  classes with the null class; conditions as in-context tokens (class 8,
  ω 4, t_min 2, t_max 2, h = t − r 4; no t), an 8-block v head;
- iMF's loss (``losses.guided_improved_meanflow_loss``): (t, r) ~
  lognorm(−0.4, 1.0), sorted, half of the batch r ≠ t (data_proportion
  0.5); adaptive weight p = 1, c = 0.01; class dropout 0.1; ω ∝ ω^−1 on
  [1, 8] (cfg_beta 1, s_max 7), t_min ~ U[0, ½), t_max ~ U[½, 1);
- Adam β = (0.9, 0.95), lr 1e-4 after a 10-epoch linear warm-up, then
  constant; no weight decay, no dropout; batch 1024; 640 epochs of
  ⌊1,281,167/1024⌋ = 1,251 steps (drop_last), 800,640 steps; EMA 0.9999
  (``ema_type: const``);
- one jump at ω and interval per size, the official eval_config.yml's
  settings for its released checkpoints: B/2 ω = 8.0 on [0.4, 0.65], M/2
  and L/2 10.5 on [0.4, 0.6], XL/2 8.0 on [0.42, 0.62] (XL/2 at 2 NFE:
  4.0 on [0.36, 0.64]).
The official configs give the training recipe for B/2 only; the other
sizes keep it here (the paper's longer runs for larger sizes are theirs
to set with --config.train.num_steps).
Data: ``data.source=latents`` of a VAE the user names (``data.ae_workdir``
or ``data.autoencoder``); SD-VAE latents of ImageNet arrive with the
data-at-scale work. ``:smoke`` trains a 3-block, 64-wide imfDiT (1-block
heads) for 20 steps (5 of warm-up) on the shipped CIFAR-10 fixture's pixels (32×32×3, in
place of latents, 10 classes), with the recipe's objective and guidance.
"""

from cm_jax import methods
from configs import base

# :arg options (base.parse_arg): size=b2 | m2 | l2 | xl2, smoke.
ARGS = dict(size="b2", smoke=False)
SIZES = {"b2": "B", "m2": "M", "l2": "L", "xl2": "XL"}
# (ω, [t_min, t_max]) of one-step sampling per size (eval_config.yml).
SAMPLING = {"B": (8.0, (0.4, 0.65)), "M": (10.5, (0.4, 0.6)),
            "L": (10.5, (0.4, 0.6)), "XL": (8.0, (0.42, 0.62))}
IMAGENET_TRAIN = 1_281_167


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  if arg.size not in SIZES:
    raise ValueError(f"configs/imf_imagenet256.py:size={arg.size} is not an "
                     f"iMF DiT; valid: {', '.join(SIZES)}.")
  size = SIZES[arg.size]
  c = base.get_base_config()
  base.set_imf_dit(c, size)
  c.model.num_classes = 1000
  c.model.guidance_inputs = True
  methods.meanflow.configure_imf(c, methods.meanflow.IMF_IMAGENET)
  c.meanflow.label_dropout = 0.1
  c.meanflow.guidance_s_max, c.meanflow.guidance_beta = 7.0, 1.0
  c.data.source = "latents"
  c.data.random_flip = False  # LatentDataset's use_flip is never read
  c.optim.name = "adam"
  c.optim.lr = 1e-4
  c.optim.b1, c.optim.b2 = 0.9, 0.95
  steps_per_epoch = IMAGENET_TRAIN // 1024  # drop_last
  c.optim.warmup_steps = 10 * steps_per_epoch
  c.train.batch_size = 1024
  c.train.num_steps = 640 * steps_per_epoch
  c.train.ema_decay = 0.9999
  c.sample.labels = ()
  c.sample.guidance, c.sample.guidance_interval = SAMPLING[size]
  c.eval.steps = (1,)
  if arg.smoke:
    base.set_smoke_schedule(c)
    c.model.depth, c.model.hidden_size, c.model.num_heads = 3, 64, 4
    c.model.v_head_depth = 1
    c.model.num_classes = 10
    c.optim.warmup_steps = 5
  return c

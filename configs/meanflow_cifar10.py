"""MeanFlow on CIFAR-10, unconditional (Geng et al. 2025, Table 3: 1-NFE
FID 2.92), on the linear process.

  python launch.py --config=configs/meanflow_cifar10.py --workdir=runs/mf_cifar10
  python launch.py --config=configs/meanflow_cifar10.py --workdir=runs/mf_cifar10 \\
      --mode=eval   # 1 jump (1 → 0) and 2 (1 → 0.5 → 0)
  python launch.py --config=configs/meanflow_cifar10.py:smoke --workdir=/tmp/mf_smoke

Recipe: MeanFlow App. A (CIFAR-10) as the authors' PyTorch code runs it
(Gsunshine/py-meanflow, cifar10_v0.sh, "the original configuration
used in the paper"; models/model_configs.py, train_arg_parser.py):
- the EDM U-Net (SongUNet: 128 channels, (2, 2, 2), 4 blocks, attention at
  16×16, FIR (1, 3, 3, 1) resampling, standard encoder and decoder), its
  positional time embeddings 256 wide (channel_mult_noise 2) for t and for
  t − r, concatenated; dropout 0.2; no preconditioning (u directly);
- (t, r) ~ lognorm(−2.0, 2.0), sorted, 75% of r ≠ t; the adaptive weight
  p = 0.75, c = 1e-3;
- Adam (0.9, 0.999), no weight decay, lr 6e-4 after a linear warm-up over
  200 epochs (10k iterations), batch 1024, 800k iterations, EMA 0.99995
  (the paper's; the code also keeps 0.9999 and 0.9996);
- x-flips and EDM's augmentation pipe at p = 0.12 without y-flips and
  rotations (its labels as an input: the 6 of py-meanflow are ours without
  the three that these settings keep at zero); data in [−1, 1].
Sampling: z_0 = z_1 − u(z_1, 0, 1), or two jumps through t = 0.5.
"""

from cm_jax import methods
from configs import base, edm_cifar10

ARGS = dict(smoke=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = base.get_base_config()
  base.set_cifar10(c)
  base.set_ddpmpp(c, dropout=0.2)
  c.model.resample_filter = (1, 3, 3, 1)  # py-meanflow's SongUNet
  c.model.channel_mult_noise = 2
  methods.meanflow.configure(c, methods.meanflow.CIFAR10)
  edm_cifar10.set_edm_augment(c)
  c.augment.yflip, c.augment.rotate_frac = 0.0, 0.0
  c.optim.name = "adam"
  c.optim.lr = 6e-4
  c.optim.b1, c.optim.b2 = 0.9, 0.999
  c.optim.warmup_steps = 10_000
  c.train.batch_size = 1024
  c.train.num_steps = 800_000
  c.train.ema_decay = 0.99995
  if arg.smoke:
    base.shrink_for_smoke(c)
  return c

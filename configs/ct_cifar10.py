"""CT on CIFAR-10 (Song et al. 2023, CM Alg. 3), the paper's recipe (RECIPES.md §1b).

  python launch.py --config=configs/ct_cifar10.py --workdir=runs/ct_cifar10
  python launch.py --config=configs/ct_cifar10.py:smoke --workdir=/tmp/ct_smoke

Target: FID 8.70 (1 step) / 5.83 (2 steps). The paper's metric is LPIPS,
which this version does not ship yet: the full config fails at start saying
so; ``:smoke`` uses l2 on the shipped 4,000-image subset.
"""

from configs.base import SHARED_CIFAR10_SUBSET, get_base_config


def get_config(arg=None):
  c = get_base_config()
  c.data.source = "tfds"
  c.data.name = "cifar10"
  c.data.split = "train"
  c.data.data_dir = None
  c.data.random_flip = True
  c.data.path = ""

  # NCSN++: nf 128, ch_mult (2, 2, 2), 4 blocks, attn 16, Fourier scale 16.
  c.model.ch = 128
  c.model.ch_mult = (2, 2, 2)
  c.model.num_res_blocks = 4
  c.model.attn_resolutions = (16,)
  c.model.dropout = 0.0
  c.model.embedding = "fourier"
  c.model.fourier_scale = 16.0
  c.model.resample_filter = (1, 3, 3, 1)
  c.model.num_classes = 0

  # CM §5 / App. C: N(k) from s0 = 2 to s1 = 150, μ(k) = exp(s0 log μ0 / N(k))
  # with μ0 = 0.9 (the paper's form: μ(0) = μ0; the official code has μ0²),
  # uniform n, λ = 1, LPIPS.
  c.curriculum.name = "ct"
  c.curriculum.s0 = 2
  c.curriculum.s1 = 150
  c.target.ema = "adaptive"
  c.target.mu0 = 0.9
  c.loss.metric = "lpips"
  c.loss.weighting = "uniform"
  c.loss.index_sampling = "uniform"

  c.optim.name = "radam"
  c.optim.lr = 4e-4  # launch.sh (the config file says 2e-4)
  c.train.num_steps = 800_000
  c.train.batch_size = 512
  c.train.ema_decay = 0.9999
  c.sample.ts = ()  # CM's 2-step times were searched; default: EDM grid midpoint

  if arg == "smoke":
    c.data.source = "npz"
    c.data.path = SHARED_CIFAR10_SUBSET
    c.loss.metric = "l2"
    c.model.ch = 16
    c.model.ch_mult = (1, 2)
    c.model.num_res_blocks = 1
    c.model.attn_resolutions = ()
    c.train.num_steps = 20
    c.train.batch_size = 8
    c.train.log_every = 5
    c.train.checkpoint_every = 10
    c.train.sample_every = 20
    c.sample.grid_size = 16
    c.sample.num = 16
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; valid: smoke.")
  return c

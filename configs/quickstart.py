"""The embedded default: iCT on scikit-learn's handwritten digits, on a CPU.

  make quickstart
  # which runs: python launch.py --config=configs/quickstart.py --workdir=runs/quickstart

No download. A small UNet on the 8×8 digits, under 10 minutes on 2 CPU cores;
sample grids land in runs/quickstart/samples/.
"""

from configs import base

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = base.get_base_config()
  c.data.source = "digits"
  c.data.resolution = 8  # the digits' native 8×8, 1 channel (CPU budget)
  c.data.random_flip = False  # digits are not mirror-symmetric

  c.model.ch = 32
  c.model.ch_mult = (1, 2)
  c.model.num_res_blocks = 1
  c.model.attn_resolutions = ()
  c.model.resample_filter = (1, 1)  # DDPM++ resampling: cheaper than NCSN++ FIR
  c.model.residual_input = False
  c.model.dropout = 0.0
  c.model.embedding = "positional"  # one-step digits came out cleaner than
                                    # with Fourier features (scale 0.02) here
  c.model.num_classes = 0

  c.curriculum.s0 = 10
  c.curriculum.s1 = 1280
  c.optim.lr = 1e-3
  c.train.num_steps = 2000
  c.train.batch_size = 64
  c.train.ema_decay = 0.995
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  c.train.sample_every = 500
  c.sample.grid_size = 64
  c.sample.num = 64
  c.sample.ts = (0.821,)
  return c

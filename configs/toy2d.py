"""iCT on 2-D data with an MLP: seconds to a minute on a CPU.

  python launch.py --config=configs/toy2d.py --workdir=runs/toy2d
  python launch.py --config=configs/toy2d.py --workdir=runs/toy2d --mode=sample \\
      --config.sample.num=2000 --config.sample.steps=2

Data: an 8-mode Gaussian mixture on a circle (or --config.data.name=
checkerboard | swissroll | moons). Writes scatter plots of samples over data.
"""

from configs.base import get_base_config


def get_config():
  c = get_base_config()
  c.data.source = "toy2d"
  c.data.name = "gmm"  # gmm | checkerboard | swissroll | moons
  c.data.num_modes = 8  # gmm: equal-weight modes evenly spaced on a circle
  c.data.radius = 1.0  # gmm: circle radius
  c.data.std = 0.05  # gmm: each mode's isotropic std
  c.data.num_examples = 65_536  # fixed training set drawn with data.seed
  c.data.context_dim = 0  # gmm: D > 0 gives each example a context vector (a
  #                         random unit vector per mode) in batch["context"]
  c.data.context_noise = 0.0  # gmm: std of per-example noise on that vector
  c.data.seed = 0

  c.model.name = "mlp"
  c.model.hidden = 128
  c.model.depth = 3
  c.model.embedding = "positional"  # Fourier features (scale 16 or 0.02) train worse here
  c.model.dropout = 0.0
  c.model.num_classes = 0

  # iCT objective (base defaults), curriculum compressed to the short run.
  c.curriculum.s0 = 10
  c.curriculum.s1 = 1280
  c.optim.lr = 1e-3
  c.optim.grad_clip = 1.0  # steadies this short high-lr run (runs vary less)
  c.train.num_steps = 8000
  c.train.batch_size = 128
  c.train.ema_decay = 0.995  # 0.999 lags this short run: samples shrink inwards
  c.train.log_every = 500
  c.train.checkpoint_every = 4000
  c.train.sample_every = 4000
  c.sample.grid_size = 2000
  c.sample.num = 2000
  c.sample.batch_size = 2000
  c.sample.ts = (0.821,)
  return c

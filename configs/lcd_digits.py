"""LCD (LCM Alg. 1) in the latent space of the digits: CPU minutes.

  python launch.py --config=configs/ae_digits.py --workdir=runs/ae_digits
  python launch.py --config=configs/edm_digits.py:latent \\
      --workdir=runs/edm_digits_latent
  python launch.py --config=configs/lcd_digits.py --workdir=runs/lcd_digits
  for s in 1 2 4; do python launch.py --config=configs/lcd_digits.py \\
      --workdir=runs/lcd_digits --mode=sample --config.sample.steps=$s; done

The latent teacher (class-conditional, VP, ε-prediction) is distilled
through the CFG-augmented PF-ODE with w ~ U[0, 4] as a network input, DDIM
teacher steps skipping k = 20 of the 1000 DDPM steps, target EMA μ = 0.95
(the official LCM code), ℓ2; the student starts from the teacher. Samples
are 8×8×2 latents, decoded by the autoencoder to 16×16 digits.
"""

from configs import base, edm_digits

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = edm_digits.get_config("latent")  # the teacher's data, process and UNet
  c.method = "lcd"
  c.teacher.workdir = "runs/edm_digits_latent"
  c.teacher.solver = "ddim"  # LCM: Ψ = DDIM
  c.teacher.init_student = True  # LCM: θ ← φ, plus the zero-initialised w input
  c.model.w_embedding = True  # LCM: w as an input (sinusoidal, zero-init)
  c.curriculum.name = "fixed"
  c.curriculum.num_scales = 1000  # N: every DDPM step
  c.lcm.skip = 20  # LCM: k = 20 (50 DDIM steps of 1000)
  c.lcm.w_min = 0.0  # small-data range; the paper's [2, 14] is for SD
  c.lcm.w_max = 4.0
  c.target.ema = "fixed"
  c.target.mu = 0.95  # official LCM code
  c.loss.metric = "l2"  # LCM: ℓ2
  # ‖·‖² (loss.reduction=sum), not the script's per-element mean: no grad
  # clip here, and the figures in docs/methods.md were made with it.
  c.loss.weighting = "uniform"
  c.loss.index_sampling = "uniform"
  c.optim.name = "adam"
  c.optim.lr = 5e-4  # LCM's script: 1e-4; larger for a CPU-minutes run
  c.train.num_steps = 1000
  c.train.checkpoint_every = 500
  c.train.sample_every = 500
  c.train.ema_decay = 0.995
  c.sample.guidance = 2.0  # w of the grids and --mode=sample
  c.sample.ts = ()  # VP: DDPM steps evenly spaced (4 steps: 999, 749, 500, 250)
  return c

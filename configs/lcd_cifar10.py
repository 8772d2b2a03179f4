"""LCD (LCM Alg. 1) on class-conditional latent CIFAR-10, LCM's recipe.

  python launch.py --config=configs/ae_cifar10.py --workdir=runs/ae_cifar10
  python launch.py --config=configs/edm_cifar10.py:latent \\
      --workdir=runs/edm_cifar10_latent
  python launch.py --config=configs/lcd_cifar10.py --workdir=runs/lcd_cifar10
  python launch.py --config=configs/lcd_cifar10.py --workdir=runs/lcd_cifar10 \\
      --mode=sample --config.sample.steps=4 --config.sample.guidance=4
  # CPU size, on the CIFAR-10 fixture shipped in cm_jax/data/fixtures:
  python launch.py --config=configs/ae_cifar10.py:smoke --workdir=/tmp/ae_smoke
  python launch.py --config=configs/edm_cifar10.py:latent,smoke \\
      --workdir=/tmp/edm_latent
  python launch.py --config=configs/lcd_cifar10.py:smoke --workdir=/tmp/lcd \\
      --config.teacher.workdir=/tmp/edm_latent

The data are the latents of configs/ae_cifar10.py (``data.ae_workdir``; the
smoke variants read /tmp/ae_smoke), encoded once, cached and scaled to unit
variance; samples and FID are decoded images. ``:pixel`` (teacher
configs/edm_cifar10.py:cond) runs the same recipe in pixel space; the
options combine (``:pixel,smoke``, teacher configs/edm_cifar10.py:cond,smoke).

Recipe (LCM §4, Alg. 1, and the official LCM script
`train_lcm_distill_sd_wds.py` unless noted; docs/recipes.md): the student is
the teacher's network plus LCM's w input (sinusoidal(1000·w), zero-initialised
projection), initialised from the teacher; DDIM teacher steps skipping k = 20
of the 1000 DDPM steps (N = 1000); w ~ U[2, 14] (paper); target EMA μ = 0.95;
ℓ2 as the script's per-element mean (F.mse_loss; ``loss.reduction=mean``);
lr 1e-4 constant after 500 warm-up steps, clip 1.0 on the gradient of that
mean (on ‖·‖², whose gradient is d = 1,024 latent or 3,072 pixel elements
times larger, it would act as a clip at 1/d on the script's loss); the
script's AdamW weight decay 1e-2 is not applied (cm_jax has Adam and RAdam);
LCM c_skip, c_out with timestep scaling 10.

Start times: the pair (t_n, t_{n+20}) is drawn from all 980 start times
t_{n+20} ∈ {20, …, 999} (LCM Alg. 1, n ~ U[1, N − k]; ``lcm.starts=all``),
not from the script's 50-point DDIM grid t_{n+20} ∈ {19, 39, …, 999}, t_n =
max(t_{n+20} − 20, 0) (``--config.lcm.starts=ddim``): the sampler's times,
evenly spaced DDPM steps (999, 749, 500, 250 for 4 steps), are not all on
that grid, and all 980 train the student at each of them.

"""

from configs import base, edm_cifar10


ARGS = dict(smoke=False, pixel=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  teacher = "cond" if arg.pixel else "latent"  # configs/edm_cifar10.py's
  c = edm_cifar10.get_config(f"{teacher},smoke" if arg.smoke else teacher)
  c.method = "lcd"
  c.teacher.workdir = "" if arg.smoke else f"runs/edm_cifar10_{teacher}"
  c.teacher.solver = "ddim"
  c.teacher.init_student = True  # θ ← φ; the w projection starts at zero
  c.model.w_embedding = True
  c.model.dropout = 0.0
  c.curriculum.name = "fixed"
  c.curriculum.num_scales = 1000  # every DDPM step; pairs k = 20 apart
  c.lcm.skip = 20
  c.lcm.starts = "all"  # LCM Alg. 1; "ddim": the script's 50-point grid
  c.lcm.w_min = 2.0
  c.lcm.w_max = 14.0
  c.target.ema = "fixed"
  c.target.mu = 0.95
  c.loss.metric = "l2"
  c.loss.reduction = "mean"  # the script's F.mse_loss: clip 1.0 as it means it
  c.loss.weighting = "uniform"
  c.loss.index_sampling = "uniform"
  c.optim.name = "adam"
  c.optim.lr = 1e-4
  c.optim.warmup_steps = 500
  c.optim.grad_clip = 1.0
  c.train.num_steps = 100_000  # LCM paper: 100k iterations
  c.train.batch_size = 512
  c.train.ema_decay = 0.9999
  c.sample.guidance = 4.0  # w of the grids; any value in [w_min, w_max]
  c.sample.ts = ()  # DDPM steps evenly spaced (4 steps: 999, 749, 500, 250)
  if arg.smoke:
    c.optim.warmup_steps = 0
    c.train.num_steps = 20
    c.train.batch_size = 8
  return c

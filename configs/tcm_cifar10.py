"""TCM on CIFAR-10 (Lee et al. 2025, "Truncated Consistency Models").

  python launch.py --config=configs/edm_cifar10.py:ddpmpp --workdir=runs/edm_ddpmpp
  python launch.py --config=configs/tcm_cifar10.py:stage1 \\
      --workdir=runs/tcm_cifar10_stage1 --config.init.workdir=runs/edm_ddpmpp
  python launch.py --config=configs/tcm_cifar10.py --workdir=runs/tcm_cifar10 \\
      --config.teacher.workdir=runs/tcm_cifar10_stage1
  python launch.py --config=configs/tcm_cifar10.py:smoke --workdir=/tmp/tcm_smoke \\
      --config.teacher.workdir=/tmp/tcm_smoke_stage1

Recipe: the authors' code, NVlabs/TCM, its README's "Stage-1 (CIFAR-10)"
and "Stage-2 (CIFAR-10)" commands (``ct_train.py``; ``training/loss.py``
ECMLoss; ``training/networks_tcm.py`` TCMPrecond). Stage 1 is ECT with
TCM's choices (cm_jax/methods/tcm.py, ``configure_stage1``) on DDPM++
with dropout 0.2, from an EDM run's EMA weights (--transfer=edm-cifar10-
32x32-uncond-vp.pkl; here configs/edm_cifar10.py:ddpmpp), RAdam at lr 1e-4,
batch 512, EMA 0.9999, Δt halving every 25k iterations up to the 0.999
cap. Stage 2 (method=tcm) starts θ and its EMA from the stage-1 run's EMA,
which is also the frozen model below t′ = 1: RAdam at lr 5e-5, batch 1024,
ln t ~ Student-t(0.01) at loc 0, scale 0.2 truncated to [ln 1, ln 80], a
quarter of each batch on the boundary t = t′ weighted 0.1. Both scripts
run for ``iteration=3000000``; the README names no iteration for its
released model, which reaches FID 2.46 at one step and 2.05 at two
(sample.ts = (0.821,), the --mid_t default). ``:smoke`` is a CPU-size run
on the CIFAR-10 fixture in cm_jax/data/fixtures (``:stage1,smoke`` first).
"""

from cm_jax import methods
from configs import base

ARGS = dict(stage1=False, smoke=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = base.get_base_config()
  base.set_cifar10(c)
  c.data.random_flip = False  # --augment=0.0, --xflip default off
  base.set_ddpmpp(c, dropout=0.2)  # --arch=ddpmpp --dropout=0.2
  c.optim.name = "radam"  # --optim=RAdam, betas (0.9, 0.999), no decay
  c.train.ema_decay = 0.9999  # --ema_beta default, constant
  c.train.num_steps = 3_000_000  # iteration=3000000
  c.sample.ts = (0.821,)  # --mid_t default
  if arg.stage1:
    # double_iter=25000; from the EDM run (--transfer)
    methods.tcm.configure_stage1(c, stage_steps=25_000)
    c.init.workdir = "runs/edm_ddpmpp"
    c.optim.lr = 1e-4  # --lr=1e-4
    c.train.batch_size = 512  # bsize=512
  else:
    # The stage goes on from the stage-1 run's (--resume_tick): any stage-1
    # run past 9 × 25k iterations has the capped ratio 0.999, as here.
    methods.tcm.configure(c, stage_steps=25_000, start_stage=9)
    c.teacher.workdir = "runs/tcm_cifar10_stage1"  # --tcm_teacher_pkl
    c.optim.lr = 5e-5  # --lr=5e-5
    c.train.batch_size = 1024  # bsize=1024
  if arg.smoke:
    base.shrink_for_smoke(c)
    c.ect.stage_steps = 5
    c.init.workdir = ""
    if not arg.stage1:
      c.teacher.workdir = "/tmp/tcm_smoke_stage1"
  return c

"""ECT on CIFAR-10 (Geng et al. 2024, "Consistency Models Made Easy").

  python launch.py --config=configs/edm_cifar10.py:ddpmpp --workdir=runs/edm_ddpmpp
  python launch.py --config=configs/ect_cifar10.py --workdir=runs/ect_cifar10 \\
      --config.teacher.workdir=runs/edm_ddpmpp
  python launch.py --config=configs/ect_cifar10.py:scratch --workdir=runs/ect_scratch
  python launch.py --config=configs/ect_cifar10.py:smoke --workdir=/tmp/ect_smoke

Recipe: the authors' code, locuslab/ect `run_ecm.sh` and `ct_train.py`
(`training/loss.py`: ECMLoss), the paper's CIFAR-10 "ECM" run
(docs/recipes.md). Consistency tuning starts from an EDM run's EMA weights
(ECT transfers EDM's `edm-cifar10-32x32-uncond-vp.pkl`, DDPM++ trained with
EDM's objective; here `configs/edm_cifar10.py:ddpmpp`). Target at this
length, 200k iterations (the authors' README, batch 128): FID 3.86 at one
step and 2.15 at two; they report 3.60 / 2.11 at 400k iterations
(--config.train.num_steps=400000; the repository holds no 400k script, so
that the stages go on every 25k there is an assumption). ``:scratch`` trains
the same recipe from random weights; ``:smoke`` is a CPU-size run from
scratch on the CIFAR-10 fixture in cm_jax/data/fixtures.
"""

from configs import base

ARGS = (None, "scratch", "smoke")  # file.py:arg values; None = no arg.


def set_ect(c, stage_steps):
  """ECT's objective (method=ect, from scratch until teacher.workdir is set)
  as locuslab/ect's CIFAR-10 code (main branch: ``training/loss.py``
  ECMLoss, ``training/networks.py`` ECMPrecond, ``ct_train.py`` defaults):
  mapping "sigmoid", q = 2, k = 8, b = 1; c = 0 (the ℓ2 norm); ln t ~
  N(−1.1, 2.0²), unclipped; r clamped at 0, where the target is x0;
  λ = 1/(t − r) (``return loss / (t - r)``); θ⁻ = stopgrad θ; EDM's plain
  c_skip, c_out in training and the σ_min = 0.003 shift at evaluation;
  Δt halves every ``stage_steps``."""
  c.method = "ect"
  c.teacher.workdir = ""
  c.ect.q, c.ect.k, c.ect.b = 2.0, 8.0, 1.0
  c.ect.stage_steps = stage_steps
  c.ect.train_shift = False  # ECMPrecond: shifted only in eval mode
  c.diffusion.sigma_min = 0.003  # ECMPrecond's sigma_min (evaluation)
  c.loss.metric = "l2_norm"
  c.loss.weighting = "ict"  # 1/(t − r); snrpk is the imgnet branch's
  c.loss.p_mean, c.loss.p_std = -1.1, 2.0
  c.target.ema, c.target.mu = "fixed", 0.0


def get_config(arg=None):
  base.check_arg(arg, ARGS)
  c = base.get_base_config()
  base.set_cifar10(c)
  c.data.random_flip = False  # run_ecm.sh: --augment=0.0, ct_train --xflip off
  base.set_ddpmpp(c, dropout=0.2)  # --arch=ddpmpp --dropout=0.2
  set_ect(c, stage_steps=25_000)  # --double=250 ticks × 12.8 kimg / 128
  c.teacher.workdir = "runs/edm_ddpmpp"  # --transfer: the EDM run's EMA
  c.optim.name = "radam"  # --optim=RAdam --lr=0.0001, betas (0.9, 0.999)
  c.optim.lr = 1e-4
  c.train.batch_size = 128  # --batch=128
  c.train.num_steps = 200_000  # --duration=25.6 Mimg / 128
  c.train.ema_decay = 0.9999  # --ema_beta default
  c.sample.ts = (0.821,)  # --mid_t default
  if arg in ("scratch", "smoke"):
    c.teacher.workdir = ""
  if arg == "smoke":
    base.shrink_for_smoke(c)
    c.ect.stage_steps = 5  # every stage within the 20 steps
  return c

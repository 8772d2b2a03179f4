"""sCD on CIFAR-10 (Lu & Song 2024, sCM Alg. 1), from the TrigFlow teacher.

  python launch.py --config=configs/trigflow_cifar10.py --workdir=runs/trigflow_cifar10
  python launch.py --config=configs/scd_cifar10.py --workdir=runs/scd_cifar10 \\
      --config.teacher.workdir=runs/trigflow_cifar10
  python launch.py --config=configs/trigflow_cifar10.py:smoke --workdir=/tmp/trigflow_smoke
  python launch.py --config=configs/scd_cifar10.py:smoke --workdir=/tmp/scd_smoke

sCT's recipe (configs/sct_cifar10.py, sCM App. G) with dx_t/dt from the
teacher's PF-ODE, σ_d·F_pretrain(x_t/σ_d, t), dropout 0 (sCD) and the
student starting from the teacher's EMA weights (Alg. 1). Target: none
stated here. The sCD FIDs readable in the stored paper text sit in its
ImageNet columns; sCM's CIFAR-10 table was not confirmed to report sCD.
"""

from configs import base, sct_cifar10

ARGS = dict(smoke=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = base.get_base_config()
  base.set_cifar10(c)
  base.set_ddpmpp(c, dropout=0.0)  # sCD: dropout 0
  sct_cifar10.set_scm(c)
  c.method = "scd"
  c.teacher.workdir = "runs/trigflow_cifar10"
  c.teacher.init_student = True  # θ ← θ_pretrain
  if arg.smoke:
    base.shrink_for_smoke(c)
    c.teacher.workdir = "/tmp/trigflow_smoke"
    c.scm.warmup_steps = 10
  return c

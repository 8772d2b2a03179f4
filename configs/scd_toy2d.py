"""sCD (sCM Alg. 1) on 2-D data from the TrigFlow teacher.

  python launch.py --config=configs/edm_toy2d.py:trigflow --workdir=runs/trigflow_toy2d
  python launch.py --config=configs/scd_toy2d.py --workdir=runs/scd_toy2d \\
      --config.teacher.workdir=runs/trigflow_toy2d

sCM's objective (configs/sct_toy2d.py) with dx_t/dt from the teacher,
starting from its weights, with CD's toy optimisation (configs/cd_toy2d.py:
the teacher's 512 × 4 MLP, RAdam lr 1e-4, batch 512, 8,000 steps), so CD and
sCD distil one kind of budget.
"""

from configs import base, cd_toy2d, sct_toy2d

ARGS = (None,)  # file.py:arg values; None = no arg.


def get_config(arg=None):
  base.check_arg(arg, ARGS)
  c = cd_toy2d.get_config()  # data, MLP, optimiser and length of CD's toy
  sct_toy2d.set_scm_toy(c)
  c.method = "scd"
  c.teacher.workdir = "runs/trigflow_toy2d"
  c.teacher.init_student = True
  return c

"""TCM (Lee et al. 2025) on the 8×8 digits: the quickstart's network and run.

  python launch.py --config=configs/tcm_digits.py:stage1 --workdir=runs/tcm_digits_stage1
  python launch.py --config=configs/tcm_digits.py --workdir=runs/tcm_digits \\
      --config.teacher.workdir=runs/tcm_digits_stage1
  python launch.py --config=configs/tcm_digits.py --workdir=runs/tcm_digits \\
      --mode=eval --config.eval.num=1000

TCM's CIFAR-10 objectives (configs/tcm_cifar10.py) with the quickstart's
UNet, optimiser, batch and EMA: stage 1 is ECT with TCM's choices from
scratch, its stages compressed to one per 250 of the quickstart's 2,000
steps (as configs/ect_digits.py); stage 2 goes on at stage 8 for 2,000
more steps from the stage-1 EMA, with t′ = 1.
"""

from cm_jax import methods
from configs import base, quickstart

ARGS = dict(stage1=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = quickstart.get_config()
  if arg.stage1:
    methods.tcm.configure_stage1(c, stage_steps=250)
  else:
    methods.tcm.configure(c, stage_steps=250, start_stage=8)
    c.teacher.workdir = "runs/tcm_digits_stage1"
  return c

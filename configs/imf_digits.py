"""Improved MeanFlow (iMF) on the 8×8 digits: the quickstart's network and
run.

  python launch.py --config=configs/imf_digits.py --workdir=runs/imf_digits

configs/meanflow_digits.py with iMF's loss and the UNet's v head (its own
output GroupNorm and convolution); one jump, or two through t = 0.5.
"""

from configs import base, meanflow_digits

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = meanflow_digits.get_config()
  c.method = "imf"
  c.model.v_head = True
  return c

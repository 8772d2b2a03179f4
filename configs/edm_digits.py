"""The EDM teacher on the embedded 8×8 digits (the teacher of cd_digits.py).

  python launch.py --config=configs/edm_digits.py --workdir=runs/edm_digits
"""

from configs import quickstart


def get_config():
  c = quickstart.get_config()  # same data and UNet
  c.method = "edm"
  c.loss.p_mean = -1.2  # EDM §5
  c.loss.p_std = 1.2
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.sample.ode_steps = 18  # Heun: 35 NFE
  return c

"""sCD (sCM Alg. 1) on the 8×8 digits from the VE EDM teacher of CD.

  python launch.py --config=configs/edm_digits.py --workdir=runs/edm_digits
  python launch.py --config=configs/scd_digits.py --workdir=runs/scd_digits \\
      --config.teacher.workdir=runs/edm_digits

sCM's objective (configs/sct_digits.py: w_φ, prior weighting, tangent
normalisation c = 0.1, ln(σ_d·tan t) ~ N(−1.0, 1.4²), 2 steps through
t = 1.1) with dx_t/dt from runs/edm_digits, the teacher that
configs/cd_digits.py distils, so CD and sCD distil one teacher. That VE
network is read as TrigFlow's F(x_in, t) = −net(x_in, ¼·ln(σ_d·tan t))
(trigflow.network=edm, cm_jax/processes.py), and the student starts from
its weights (sCM: θ ← θ_pretrain; the w_φ head starts at 0): the
quickstart's UNet (positional embedding of EDM's c_noise), with CD's digits
optimisation (RAdam lr 1e-3, batch 64, EMA 0.995, 2,000 steps) and the
tangent warm-up over the first 250 (an eighth, as sct_digits.py).
"""

from configs import base, cd_digits, sct_toy2d

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = cd_digits.get_config()  # the teacher's UNet and CD's optimisation
  sct_toy2d.set_scm_toy(c)  # sCM's options, keeping the optimiser and run
  c.scm.warmup_steps = 250
  c.method = "scd"
  c.trigflow.network = "edm"  # the VE teacher's network as TrigFlow's F
  c.teacher.workdir = "runs/edm_digits"
  c.teacher.init_student = True  # θ ← θ_pretrain
  return c

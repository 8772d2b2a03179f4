"""Flow matching on 2-D data: the diffusion model of the linear process.

  python launch.py --config=configs/fm_toy2d.py --workdir=runs/fm_toy2d
  python launch.py --config=configs/fm_toy2d.py --workdir=runs/fm_toy2d \\
      --mode=sample --config.sample.num=2000   # 50 Euler steps of dz/dt = v

method=diffusion on process=linear (z_t = (1 − t)·x + t·ε; Lipman et al.
2023, Liu et al. 2023), the kind of model the flow-map methods
(configs/meanflow_toy2d.py, configs/shortcut_toy2d.py) generalise:
‖v_θ(z_t, t) − (ε − x)‖² with logit t ~ N(0, 1) (SD3's rectified-flow
sampler, Esser et al. 2024), on the EDM toy teacher's MLP, optimiser and
4,000 steps (configs/edm_toy2d.py); sampled by 50 Euler steps.
"""

from configs import base, edm_toy2d

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = edm_toy2d.get_config()
  c.process = "linear"
  c.diffusion_model.p_mean, c.diffusion_model.p_std = 0.0, 1.0  # logit t
  c.sample.ode_steps = 50
  c.sample.ts = ()
  return c

"""The EDM diffusion teacher on 2-D data (the teacher of configs/cd_toy2d.py,
and of configs/scd_toy2d.py:edm, which reads it as a TrigFlow network).

  python launch.py --config=configs/edm_toy2d.py --workdir=runs/edm_toy2d
  python launch.py --config=configs/edm_toy2d.py --workdir=runs/edm_toy2d \\
      --mode=sample --config.sample.num=2000   # Heun, 18 steps = 35 NFE

``:cond`` is the class-conditional VP teacher of configs/lcd_toy2d.py (LCM's
ε-prediction on the DDPM process, label dropout 0.1 for classifier-free
guidance), on a 4-mode mixture whose classes (modes) overlap:

  python launch.py --config=configs/edm_toy2d.py:cond --workdir=runs/edm_toy2d_cond
  python launch.py --config=configs/edm_toy2d.py:cond --workdir=runs/edm_toy2d_cond \\
      --mode=sample --config.sample.guidance=2   # DDIM, 50 steps, CFG w = 2

``:trigflow`` is the same unconditional teacher on sCM's TrigFlow process
(F trained by flow matching in v, sCM §2.1; DDIM sampling along EDM's grid
in t), the teacher of configs/scd_toy2d.py:

  python launch.py --config=configs/edm_toy2d.py:trigflow --workdir=runs/trigflow_toy2d

``:trigflow,cond`` is the class-conditional toy's teacher on TrigFlow (the
MLP of ``:cond``, label dropout 0.1), the teacher of configs/scd_toy2d.py:cond
(sCD with classifier-free guidance):

  python launch.py --config=configs/edm_toy2d.py:trigflow,cond \
      --workdir=runs/trigflow_toy2d_cond

``:context`` is the same teacher conditioned on a context vector instead of a
label: each mode has a fixed random unit vector in 8-D (plus noise of std
0.1 per example), and the MLP sees only that vector (model.context_dim = 8,
no label embedding), as a text-conditioned model sees a text embedding:

  python launch.py --config=configs/edm_toy2d.py:context --workdir=runs/edm_toy2d_context
  python launch.py --config=configs/edm_toy2d.py:context --workdir=runs/edm_toy2d_context \\
      --mode=sample --config.sample.guidance=2   # contexts of the first examples
"""

from configs import base, toy2d

# :arg options (base.parse_arg); ``:trigflow,cond`` combines two.
ARGS = dict(cond=False, context=False, trigflow=False)


def set_class_conditional_toy(c):
  """Four overlapping classes, one gmm mode each; an MLP with a label
  embedding (the null label 4 is the unconditional model)."""
  c.data.num_modes = 4
  c.data.std = 0.7  # classes overlap: true samples are 70% Bayes-correct
  c.model.num_classes = 4
  c.process = "vp"  # LCM: DDPM process, ε-prediction, DDIM
  c.vp.num_timesteps = 1000  # SD's scaled-linear β (base), as LCM
  c.sample.ts = ()  # DDPM steps evenly spaced


def set_context_conditional_toy(c, dim=8, noise=0.1):
  """The class-conditional toy with the class given only as a context vector
  (mode k's random unit vector in ``dim`` dimensions + N(0, noise²·I))."""
  set_class_conditional_toy(c)
  c.data.context_dim = dim
  c.data.context_noise = noise
  c.model.num_classes = 0  # no label embedding: the class is in the context
  c.model.context_dim = dim


def set_teacher_mlp(c):
  """The MLP of the unconditional teacher and of its CD student
  (configs/cd_toy2d.py, which starts from the teacher's weights): 512 wide,
  4 hidden layers. CD's one-step student needs the width: on seed 0 its
  fraction of samples near a mode after the recipe's 8,000 steps was 0.764
  at 128 × 3 (the iCT toy's MLP), 0.838 at 256 × 4 and 0.872 at 512 × 4."""
  c.model.hidden = 512
  c.model.depth = 4


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = toy2d.get_config()  # same data; the MLP below (:cond, :context: the same)
  c.train.ema_decay = 0.995  # the teacher-based toys' figures (docs/methods.md) used it
  c.method = "diffusion"
  c.diffusion_model.p_mean = -1.2  # EDM §5: ln σ ~ N(−1.2, 1.2²)
  c.diffusion_model.p_std = 1.2
  c.optim.name = "adam"  # EDM: Adam (0.9, 0.999), eps 1e-8
  c.optim.lr = 1e-3
  c.train.num_steps = 4000
  c.train.checkpoint_every = 2000
  c.train.sample_every = 2000
  c.sample.ode_steps = 18  # EDM Heun: 35 NFE
  if arg.cond or arg.context:
    (set_context_conditional_toy if arg.context else
     set_class_conditional_toy)(c)
    c.diffusion_model.label_dropout = 0.1  # CFG training (LCM teacher)
    c.sample.ode_steps = 50  # DDIM, 50 steps (LCM's teacher schedule)
  else:
    set_teacher_mlp(c)
  if arg.trigflow:  # sCM's TrigFlow teacher (flow matching in v)
    c.process = "trigflow"
    c.sample.ts = ()
  return c

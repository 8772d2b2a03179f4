"""sCD (sCM Alg. 1) on 2-D data from the TrigFlow teacher, or (``:edm``) from
the VE EDM teacher that CD distils.

  python launch.py --config=configs/edm_toy2d.py:trigflow --workdir=runs/trigflow_toy2d
  python launch.py --config=configs/scd_toy2d.py --workdir=runs/scd_toy2d \\
      --config.teacher.workdir=runs/trigflow_toy2d

sCM's objective (configs/sct_toy2d.py) with dx_t/dt from the teacher,
starting from its weights, with CD's toy optimisation (configs/cd_toy2d.py:
the teacher's 512 × 4 MLP, RAdam, batch 512, 8,000 steps) but lr 3e-5, so
CD and sCD distil one kind of budget. The lr is the one that matters
(docs/methods.md, "sCD on the toy"): at CD's 1e-4 this student ended at 0.24 of its
samples near a mode and at 1e-3 it collapsed to the mean; at 3e-5, 0.93.
sCD's tangent is the teacher's exact velocity, without sCT's noise, and
the same MLP trained by sCD from scratch with the exact mixture velocity
needed lr 1e-4 where sCT trains at 1e-3 (0.80 against 0.14).

``:edm`` distils runs/edm_toy2d, the VE EDM teacher of configs/cd_toy2d.py,
so CD and sCD distil one and the same teacher. TrigFlow is VE re-timed (σ =
σ_d·tan t, x_VE = x_t/cos t), and EDM's preconditioned network is then
TrigFlow's F(x_in, t) = −net(x_in, ¼·ln(σ_d·tan t)) (trigflow.network=edm,
cm_jax/processes.py); the student starts as that teacher plus sCM's w_φ
head (θ ← θ_pretrain):

  python launch.py --config=configs/edm_toy2d.py --workdir=runs/edm_toy2d
  python launch.py --config=configs/scd_toy2d.py:edm \\
      --workdir=runs/scd_toy2d_edm \\
      --config.teacher.workdir=runs/edm_toy2d

``:cond`` distils the class-conditional TrigFlow teacher of
configs/edm_toy2d.py:trigflow,cond (four overlapping classes) through its
classifier-free guided velocity v_∅ + w·(v_c − v_∅), w ~ U[1, 3] per
example, with w as the student's input (model.w_embedding, as sCM's
ImageNet 512 sCD; sCM draws w ~ U[1, 2]); sample at a w of that range:

  python launch.py --config=configs/edm_toy2d.py:trigflow,cond \
      --workdir=runs/trigflow_toy2d_cond
  python launch.py --config=configs/scd_toy2d.py:cond \
      --workdir=runs/scd_toy2d_cond \
      --config.teacher.workdir=runs/trigflow_toy2d_cond
  python launch.py --config=configs/scd_toy2d.py:cond \
      --workdir=runs/scd_toy2d_cond --mode=sample --config.sample.guidance=2
"""

from configs import base, cd_toy2d, edm_toy2d, sct_toy2d

ARGS = dict(edm=False, cond=False)  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = cd_toy2d.get_config()  # data, MLP, optimiser and length of CD's toy
  sct_toy2d.set_scm_toy(c)
  c.method = "scd"
  c.teacher.workdir = "runs/trigflow_toy2d"
  c.teacher.init_student = True
  c.optim.lr = 3e-5  # 1e-4: 0.24 near a mode; 1e-3: collapse (docs/methods.md)
  if arg.edm:  # CD's VE teacher, read as a TrigFlow network
    c.trigflow.network = "edm"
    c.teacher.workdir = "runs/edm_toy2d"
  if arg.cond:  # the class-conditional teacher, guided
    edm_toy2d.set_class_conditional_toy(c)
    c.process = "trigflow"
    c.model.hidden, c.model.depth = 128, 3  # the teacher's (:cond) MLP
    c.teacher.workdir = "runs/trigflow_toy2d_cond"
    c.scm.guidance_min, c.scm.guidance_max = 1.0, 3.0
    c.model.w_embedding = True  # w as the student's input
    c.sample.guidance = 2.0
    c.sample.ts = (1.1,)  # sCM's 2-step time
  return c

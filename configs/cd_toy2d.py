"""Consistency distillation (CM Alg. 2) on 2-D data from the EDM teacher.

  python launch.py --config=configs/edm_toy2d.py --workdir=runs/edm_toy2d
  python launch.py --config=configs/cd_toy2d.py --workdir=runs/cd_toy2d \\
      --config.teacher.workdir=runs/edm_toy2d
  python launch.py --config=configs/cd_toy2d.py --workdir=runs/cd_toy2d \\
      --mode=sample --config.sample.num=2000 --config.sample.steps=2

The CM paper's CD (Heun, N = 18, μ = 0, the student starts from the teacher)
with the optimisation sized for 2-D data: the teacher's 512 × 4 MLP
(`edm_toy2d.set_teacher_mlp`), lr 1e-4 (1e-3 left the student at 0.33 of
its samples near a mode against the teacher's 0.94), batch 512 and 8,000
steps; the 2-step τ is the one `--mode=search` found on the trained student
(docs/methods.md, "Teacher → distillation").
"""

from configs import base, edm_toy2d, toy2d

ARGS = {}  # :arg options (base.parse_arg)


def get_config(arg=None):
  arg = base.parse_arg(arg, **ARGS)
  c = toy2d.get_config()  # same data as the teacher ...
  c.train.ema_decay = 0.995  # the teacher-based toys' figures (docs/methods.md) used it
  edm_toy2d.set_teacher_mlp(c)  # ... and its network
  c.method = "cd"
  c.teacher.workdir = "runs/edm_toy2d"
  c.teacher.solver = "heun"  # CM CD: Heun on the EDM teacher
  c.teacher.init_student = True  # CM CD starts from the teacher's weights
  # CM CIFAR-10 CD: N = 18 fixed, μ = 0 (θ⁻ = θ), uniform n and λ.
  c.curriculum.name = "fixed"
  c.curriculum.num_scales = 18
  c.target.ema = "fixed"
  c.target.mu = 0.0
  c.loss.metric = "l2"  # (LPIPS is for images)
  c.loss.weighting = "uniform"
  c.loss.index_sampling = "uniform"
  c.optim.name = "radam"
  c.optim.lr = 1e-4  # (and toy2d's clip at 1.0)
  c.train.batch_size = 512
  c.train.num_steps = 8000
  c.train.checkpoint_every = 4000
  c.train.sample_every = 4000
  # The 2-step τ: --mode=search on the seed-0 student (docs/methods.md), by the share
  # of samples off every mode (a Gaussian fit, frechet, is flat in τ here).
  c.search.metric = "modes"
  c.search.num = 8000  # 1,000 leave that share noisier than its range in τ
  c.sample.ts = (0.47,)
  return c

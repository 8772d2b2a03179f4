"""The diffusion teacher φ that consistency distillation (CM Alg. 2) distils.

A teacher is any cm_jax run trained with ``method=edm``; ``config.teacher.workdir``
names it, and its latest checkpoint's EMA weights are used. The teacher's
network is rebuilt from the config stored in that checkpoint, so the student
may have another architecture, unless it starts from the teacher's weights
(``teacher.init_student``, as the CM paper does for CD).
"""

import os

import jax
import ml_collections

from cm_jax import checkpoint, nn, sharding
from cm_jax.train.state import dummy_inputs


def load_teacher(config, mesh, example_shape):
  """Returns (teacher model, its EMA params replicated on ``mesh``)."""
  workdir = config.teacher.workdir
  if not workdir:
    raise ValueError("method=cd needs a trained EDM teacher: set "
                     "--config.teacher.workdir=DIR (a run of an edm_* config).")
  if not os.path.isdir(checkpoint.checkpoint_dir(workdir)):
    raise FileNotFoundError(
        f"No checkpoints in {checkpoint.checkpoint_dir(workdir)}; train the "
        "teacher first or fix --config.teacher.workdir.")
  manager = checkpoint.make_manager(workdir)
  meta = checkpoint.read_meta(manager)
  if meta is None:
    raise FileNotFoundError(f"{workdir} has no finished checkpoint yet.")
  if meta["config"].get("method") != "edm":
    raise ValueError(f"teacher.workdir={workdir} holds a method="
                     f"{meta['config'].get('method')!r} run; CD distils an EDM "
                     "denoiser (a run of method=edm).")
  model = nn.get_model(ml_collections.ConfigDict(meta["config"]["model"]))
  init = lambda: model.init(jax.random.key(0), *dummy_inputs(model, example_shape))
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                     sharding=sharding.replicated(mesh)),
      jax.eval_shape(init)["params"])
  params = checkpoint.restore(manager, {"ema": abstract}, meta["step"])["ema"]
  return model, params, meta


def check_student_matches(teacher_meta, config):
  """The student can start from the teacher's weights only with its network."""
  diff = checkpoint.config_differences(teacher_meta["config"], config, "model")
  if diff:
    raise ValueError(
        "teacher.init_student=True needs the teacher's network, but the "
        f"configs differ ({', '.join(diff)}); match config.model to the "
        "teacher or set --config.teacher.init_student=False.")

"""The one experiment builder: from a config to everything a mode runs.

``Experiment(config, workdir)`` constructs, once and in one place, the data
source, the network, the noise process, the objective (whose ``needs`` say
what else it takes: a teacher, starting weights, label dropout, a sampler),
the optimizer, the mesh, the state shardings and the jitted train step.
Every mode (``cm_jax.modes``) and every benchmark builds on it; nothing else
wires a step.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from cm_jax import (checkpoint, generate, methods, nn, processes, sharding,
                    teacher, visualize)
from cm_jax.data import augment as augment_lib
from cm_jax.data import get_source, latents
from cm_jax.evaluation import evaluate as evaluate_lib
from cm_jax.evaluation import fid
from cm_jax.train import optim, validate
from cm_jax.train.state import init_state, state_shardings
from cm_jax.train.step import jit_train_step


class Experiment:
  """Data source, network, process, objective, optimizer and mesh of a run.

  ``source`` replaces the config's data (benchmarks pass synthetic data).
  """

  def __init__(self, config, workdir, mesh=None, source=None):
    self.config = config
    self.workdir = workdir
    self.mesh = sharding.make_mesh() if mesh is None else mesh
    self.source = get_source(config.data) if source is None else source
    validate.check_experiment(config, self.source)
    self.model = nn.get_model(config.model)
    self.process = processes.make_process(config)
    self.objective = methods.make_objective(config,
                                               self.source.example_shape)
    self.needs = self.objective.needs
    validate.check_needs(config, self.needs, self.model)
    teacher.run_workdir(config, self.needs)  # the run field it reads: early
    self.tx = optim.make_optimizer(config.optim)

  # -------------------------------------------------------------- state ----

  @functools.cached_property
  def _init(self):
    return functools.partial(init_state, self.model, self.tx,
                             self.source.example_shape, self.config.seed)

  def state_sharding(self):
    """Shardings of the state under ``train.param_sharding`` (replicated or
    FSDP; step and key replicated); from eval_shape, no compute."""
    return state_shardings(jax.eval_shape(self._init), self.mesh,
                           self.config.train.param_sharding)

  def new_state(self):
    """A fresh state created directly with its shardings."""
    return jax.jit(self._init, out_shardings=self.state_sharding())()

  def abstract_state(self):
    """The state as ShapeDtypeStructs with shardings: a restore target that
    initialises and compiles nothing."""
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        jax.eval_shape(self._init), self.state_sharding())

  def restore(self, state, items=checkpoint.ARRAY_ITEMS, manager=None,
              resume=False):
    """Loads the latest checkpoint of the workdir into ``state`` (if any);
    unfinished and unreadable ones are passed over with a warning.

    ``resume``: a training run continues from it, so a changed optimizer,
    seed or data is refused too (``validate.check_resume``) and the
    unreadable checkpoints are moved aside (it will save those steps again).
    Returns (state, meta); meta is None for a fresh workdir.
    """
    manager = manager or checkpoint.make_manager(self.workdir)

    def check(meta):  # configs before arrays, for a one-line reason
      checkpoint.check_compatible(
          meta["config"], self.config, self.workdir,
          meta.get("example_shape"), self.source.example_shape)
      validate.check_data_scale(meta["config"], self.source, self.workdir)
      if resume:
        validate.check_resume(meta["config"], self.config, self.workdir)

    restored, meta = checkpoint.restore_latest(
        manager, {name: getattr(state, name) for name in items}, check,
        move_aside=resume)
    if meta is None:
      return state, None
    scalar = lambda value, like: jax.device_put(np.int32(value), like.sharding)
    state = state.replace(step=scalar(meta["step"], state.step),
                          skipped=scalar(meta.get("skipped", 0), state.skipped),
                          **restored)
    return state, meta

  @functools.cached_property
  def teacher(self):
    """(model, EMA params, meta) of the teacher or starting run
    (``Needs.run_field``: teacher.workdir or init.workdir) when the objective
    needs one (``Needs.teacher``; an optional one only when named), else
    None."""
    workdir = teacher.run_workdir(self.config, self.needs)
    if not self.needs.teacher or (self.needs.teacher_optional
                                  and not workdir):
      return None
    return teacher.load_teacher(self.config, self.needs, self.mesh,
                                self.source.example_shape)

  def initial_state(self, manager):
    """(state, meta): the workdir's latest checkpoint, or a fresh state that
    starts from the teacher's weights where the objective says so (CM: CD
    from φ; LCM: LCD from φ, LCF from the trained LCM). meta is None when
    fresh."""
    state, meta = self.restore(self.new_state(), manager=manager,
                               resume=True)
    if meta is not None or self.teacher is None:
      return state, meta
    _, teacher_params, teacher_meta = self.teacher
    start = teacher.student_init(self.config, self.needs, state.online,
                                 teacher_params, teacher_meta)
    if start is not None:
      copy = lambda: jax.tree.map(jnp.copy, start)  # own buffers: donated
      state = state.replace(online=copy(), target=copy(), ema=copy(),
                            opt_state=self.tx.init(start))
    return state, None

  # --------------------------------------------------------------- step ----

  def step_teacher(self):
    """(model, params) of the teacher the train step evaluates, or
    (None, None) (``Needs.teacher_in_step``)."""
    if not self.needs.teacher_in_step:
      return None, None
    model, params, _ = self.teacher
    return model, params

  @functools.lru_cache(maxsize=None)
  def train_step(self, steps_per_dispatch=1):
    """The jitted step(state, batch, teacher_params) → (state, metrics) of
    ``steps_per_dispatch`` updates (``lax.scan`` over stacked batches when
    > 1), with explicit shardings, donating the state."""
    config = self.config
    teacher_model, _ = self.step_teacher()
    return jit_train_step(
        self.state_sharding(), sharding.batch_sharding(self.mesh),
        sharding.replicated(self.mesh), steps_per_dispatch=steps_per_dispatch,
        model=self.model, tx=self.tx, objective=self.objective,
        lr_schedule=optim.learning_rate_schedule(config.optim),
        ema_decay=config.train.ema_decay,
        ema_rampup_ratio=config.train.ema_rampup_ratio,
        augment=augment_lib.from_config(config.augment),
        teacher_model=teacher_model,
        label_dropout=(config.diffusion_model.label_dropout
                       if self.needs.label_dropout else 0.0),
        skip_nonfinite=config.train.nonfinite == "skip")

  # ---------------------------------------------------- samples and FID ----

  def reference_points(self, num=2000):
    """Data drawn under 2-D sample scatters, in data units as the samples
    (a standardised 2-D source decodes them; None for images)."""
    if self.source.is_image:
      return None
    x = self.source.get(np.arange(min(num, self.source.num_examples)))["x"]
    decode = getattr(self.source, "decode", None)
    return x if decode is None else decode(x)

  @functools.cached_property
  def extractor(self):
    """The FID Inception (images) or None (2-D points are their features)."""
    if not self.source.is_image:
      return None
    ec = self.config.eval
    return fid.get_extractor(ec.batch_size, self.mesh, ec.weights or None)

  @functools.cached_property
  def reference(self):
    # Decoded samples are compared with data in data space: a latent
    # source's images; a standardised 2-D source's unscaled points.
    data = getattr(self.source, "image_data", None)
    scaled_points = not self.source.is_image and hasattr(self.source, "decode")
    if data is None and scaled_points:
      data = {**self.config.data.to_dict(), "standardize": False}
    return evaluate_lib.reference_stats(self.config, self.extractor, data=data)

  def generate(self, params, num, steps, key, progress=False):
    """``num`` samples in data space (images in [−1, 1] or 2-D points), by
    the objective's kind of sampler: latents (data.source=latents) are
    decoded; an autoencoder reconstructs the first ``num`` examples. A model
    with context_dim > 0 samples with ``sample.context`` or the data's
    contexts."""
    config = self.config
    if self.needs.sampler == "reconstruct":
      return latents.reconstruct(self.model, params, self.source, num,
                                 config.sample.batch_size)
    contexts = generate.sample_contexts(
        getattr(self.model, "context_dim", 0), config.sample.context,
        self.source, num)
    samples = generate.generate(self.model, params, config,
                                self.source.example_shape, num, steps, key,
                                kind=self.needs.sampler, progress=progress,
                                contexts=contexts)
    decode = getattr(self.source, "decode", None)
    return samples if decode is None else decode(samples)

  def evaluate(self, params, num, steps_list, progress=False):
    """FID/KID of ``num`` samples from ``params`` per number of steps:
    {"fid_1step": …, "kid_1step": …, …}; a sampler without steps (a
    diffusion teacher's ODE, an autoencoder's reconstructions) gives one
    entry, "fid_ode" or "fid_recon"."""
    fixed = {"diffusion": "ode", "reconstruct": "recon"}.get(
        self.needs.sampler)
    results = {}
    for steps in ((None,) if fixed else steps_list):
      samples = self.generate(params, num, int(steps or 1),
                              jax.random.key(self.config.eval.seed),
                              progress=progress)
      if self.source.is_image:
        samples = visualize.to_uint8(samples)
      suffix = fixed or f"{steps}step"
      metrics = evaluate_lib.sample_metrics(samples, self.reference,
                                            self.config, self.extractor)
      results.update({f"{k}_{suffix}": v for k, v in metrics.items()})
    return results


def load_trained(config, workdir, mesh=None):
  """(Experiment, EMA parameters, meta) of the workdir's latest checkpoint,
  restored onto abstract shapes: no training state is initialised or
  compiled just to be overwritten. A workdir without checkpoints is
  refused before anything is written into it."""
  missing = FileNotFoundError(
      f"No checkpoint in {checkpoint.checkpoint_dir(workdir)}; train first "
      "(--mode=train) or point --workdir at a trained run.")
  if not os.path.isdir(checkpoint.checkpoint_dir(workdir)):
    raise missing
  exp = Experiment(config, workdir, mesh)
  state, meta = exp.restore(exp.abstract_state(), items=("ema",))
  if meta is None:
    raise missing
  return exp, state.ema, meta

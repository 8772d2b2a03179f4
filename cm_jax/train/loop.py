"""The training loop and the sample mode: everything ``launch.py`` runs."""

import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from clu import parameter_overview

from cm_jax import checkpoint, generate, nn, sharding, teacher
from cm_jax.data import DataIterator, get_source
from cm_jax.train import objective as objective_lib
from cm_jax.train import optim
from cm_jax.train.state import init_state
from cm_jax.train.step import jit_train_step
from cm_jax.train.writer import MetricWriter, Progress, every


class Experiment:
  """What train and sample share: data source, network, optimizer, mesh."""

  def __init__(self, config, workdir, mesh=None):
    self.config = config
    self.workdir = workdir
    self.mesh = sharding.make_mesh() if mesh is None else mesh
    self.source = get_source(config.data)
    self.model = nn.get_model(config.model)
    self.tx = optim.make_optimizer(config.optim)

  @functools.cached_property
  def _init(self):
    return functools.partial(init_state, self.model, self.tx,
                             self.source.example_shape, self.config.seed)

  def state_sharding(self):
    """Replicated parameters (data parallelism); from eval_shape, no compute."""
    return jax.tree.map(lambda _: sharding.replicated(self.mesh),
                        jax.eval_shape(self._init))

  def new_state(self):
    """A fresh state created directly with its shardings."""
    return jax.jit(self._init, out_shardings=self.state_sharding())()

  def reference_points(self, num=2000):
    """Data drawn under 2-D sample scatters (None for images)."""
    if self.source.is_image:
      return None
    return self.source.get(np.arange(min(num, self.source.num_examples)))["x"]

  def restore(self, state, items=checkpoint.ARRAY_ITEMS, manager=None):
    """Loads the latest checkpoint of the workdir into ``state`` (if any).

    Returns (state, meta); meta is None for a fresh workdir.
    """
    manager = manager or checkpoint.make_manager(self.workdir)
    meta = checkpoint.read_meta(manager)
    if meta is None:
      return state, None
    # Compare configs before touching arrays, for a one-line reason.
    checkpoint.check_compatible(meta["config"], self.config, self.workdir)
    restored = checkpoint.restore(
        manager, {name: getattr(state, name) for name in items}, meta["step"])
    state = state.replace(step=jax.device_put(
        np.int32(meta["step"]), state.step.sharding), **restored)
    return state, meta


def _meta(config, step, position):
  return {"step": int(step), "data_position": int(position),
          "seed": int(config.seed), "config": json.loads(config.to_json())}


def _check_finite(metrics, step, manager):
  if not all(math.isfinite(float(v)) for v in metrics.values()):
    last = manager.latest_step()
    where = (f"the last good checkpoint is step {last} in {manager.directory}, "
             "kept" if last is not None else "no checkpoint was written yet")
    raise FloatingPointError(
        f"Non-finite loss, gradient or parameters at step {step} ({metrics}); "
        f"{where}. Lower --config.optim.lr or enable --config.optim.grad_clip.")


def train(config, workdir, mesh=None):
  """Trains until ``train.num_steps``, resuming from the workdir's checkpoint."""
  exp = Experiment(config, workdir, mesh)
  tc = config.train
  sharding.check_batch_size(tc.batch_size, exp.mesh)
  manager = checkpoint.make_manager(workdir, tc.keep_checkpoints)
  teacher_model = teacher_params = teacher_meta = None
  if config.method in teacher.TEACHER_METHODS:  # cd, lcd: φ; lcf: the LCM
    teacher_model, teacher_params, teacher_meta = teacher.load_teacher(
        config, exp.mesh, exp.source.example_shape)
  state, meta = exp.restore(exp.new_state(), manager=manager)
  start = None if meta else teacher.student_init(
      config, state.online, teacher_params, teacher_meta)
  if start is not None:
    # CM / LCM: the student starts from the teacher's (or LCM's) weights.
    copy = lambda: jax.tree.map(jnp.copy, start)  # own buffers: donated
    state = state.replace(online=copy(), target=copy(), ema=copy(),
                          opt_state=exp.tx.init(start))
  if config.method == "lcf":  # LCF needs no teacher network in the step
    teacher_model = teacher_params = None
  step = 0 if meta is None else meta["step"]
  position = 0 if meta is None else meta["data_position"]
  if meta is None:
    logging.info("Starting from scratch in %s.", workdir)
    logging.info("Parameters:\n%s",
                 parameter_overview.get_parameter_overview(state.online))
  else:
    logging.info("Resumed from step %d (data position %d).", step, position)

  iterator = DataIterator(
      exp.source, tc.batch_size, seed=config.seed,
      random_flip=config.data.random_flip, process_index=jax.process_index(),
      process_count=jax.process_count(), position=position)
  train_step = jit_train_step(
      exp.state_sharding(), sharding.batch_sharding(exp.mesh),
      sharding.replicated(exp.mesh), model=exp.model, tx=exp.tx,
      objective=objective_lib.make_objective(config, exp.source.example_shape),
      lr_schedule=optim.learning_rate_schedule(config.optim),
      ema_decay=tc.ema_decay, teacher_model=teacher_model,
      label_dropout=config.cfg.label_dropout if config.method == "edm" else 0.0)
  is_chief = jax.process_index() == 0
  writer = MetricWriter(workdir, tensorboard=tc.tensorboard, enabled=is_chief)
  progress = Progress(step, tc.num_steps)
  # XLA's in-process CPU collectives can starve when several multi-device
  # steps are in flight on few cores (fake devices in tests): wait per step.
  sync_each_step = (jax.default_backend() == "cpu"
                    and exp.mesh.devices.size > 1)

  while step < tc.num_steps:
    batch = sharding.to_global(next(iterator), exp.mesh)
    state, metrics = train_step(state, batch, teacher_params)
    if sync_each_step:
      jax.block_until_ready(metrics)
    step += 1
    last = step == tc.num_steps
    save_now = every(step, tc.checkpoint_every) or last
    if every(step, tc.log_every) or save_now:
      metrics = jax.device_get(metrics)
      _check_finite(metrics, step, manager)
      metrics["steps_per_s"] = progress.report(step, metrics)
      writer.write(step, metrics)
    if every(step, tc.sample_every) or (last and tc.sample_every > 0):
      _sample_grid(exp, state.ema, step)
    if save_now:
      checkpoint.save(manager, state, _meta(config, step, iterator.position))
  manager.wait_until_finished()
  writer.close()
  return state


def _sample_grid(exp, params, step):
  """A one-step sample grid (PNG) from the EMA parameters, on process 0."""
  if jax.process_index() != 0:
    return
  config = exp.config
  samples = generate.generate(exp.model, params, config,
                              exp.source.example_shape, config.sample.grid_size,
                              1, jax.random.key(config.seed + 1))
  path = generate.save_samples(
      samples, exp.source.is_image,
      os.path.join(exp.workdir, "samples", f"grid_{step:08d}"),
      exp.reference_points())
  logging.info("Wrote %s", path)


def sample(config, workdir, mesh=None):
  """--mode=sample: ``sample.num`` samples in ``sample.steps`` steps from the
  EMA parameters of the workdir's latest checkpoint."""
  exp = Experiment(config, workdir, mesh)
  state, meta = exp.restore(exp.new_state(), items=("ema",))
  if meta is None:
    raise FileNotFoundError(
        f"No checkpoint in {checkpoint.checkpoint_dir(workdir)}; train first "
        f"(--mode=train) or point --workdir at a trained run.")
  sc = config.sample
  samples = generate.generate(exp.model, state.ema, config,
                              exp.source.example_shape, sc.num, sc.steps,
                              jax.random.key(sc.seed))
  prefix = os.path.join(workdir, "samples",
                        f"samples_{meta['step']}_{sc.steps}step")
  generate.save_samples(samples, exp.source.is_image, prefix,
                        exp.reference_points())
  logging.info("Wrote %s.npz and .png (%d samples, %d step(s)).", prefix,
               len(samples), sc.steps)
  return prefix + ".npz"

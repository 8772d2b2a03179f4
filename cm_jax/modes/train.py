"""--mode=train: the training loop, resuming from the workdir's checkpoint.

The loop knows no method: the ``Experiment`` builds the step, and the
objective's ``needs`` decide the teacher, the starting weights and the
sampler of the periodic grids.
"""

import contextlib
import json
import math
import os

import jax
import numpy as np
from absl import logging
from clu import parameter_overview

from cm_jax import checkpoint, data, generate, registry, sharding
from cm_jax.data import DataIterator
from cm_jax.data.prefetch import Prefetcher
from cm_jax.experiment import Experiment
from cm_jax.train import preemption
from cm_jax.train.lock import workdir_lock
from cm_jax.train.writer import MetricWriter, Progress, every

NONFINITE = ("stop", "skip")
# What a skipped update may leave non-finite in the metrics (not θ: never).
SKIPPABLE = ("loss", "grad_norm")


def train(config, workdir, mesh=None):
  """Trains until ``train.num_steps``, resuming from the workdir's checkpoint."""
  exp = Experiment(config, workdir, mesh)
  per_dispatch = _check_train_config(config, exp.mesh)
  # One training run per workdir (process 0 holds the lock for the job).
  lock = (workdir_lock(workdir) if jax.process_index() == 0
          else contextlib.nullcontext())
  with lock:
    return _train(exp, per_dispatch)


def _train(exp, per_dispatch):
  config, workdir, tc = exp.config, exp.workdir, exp.config.train
  manager = checkpoint.make_manager(workdir, tc.keep_checkpoints)
  _, teacher_params = exp.step_teacher()  # a missing teacher fails first
  state, step, position = _start(exp, manager)
  load = _loader(exp, per_dispatch)
  writer = _open_writer(exp, step)
  progress = Progress(step, tc.num_steps)
  # XLA's in-process CPU collectives can starve when several multi-device
  # steps are in flight on few cores (fake devices in tests): wait per step.
  sync_each_step = (jax.default_backend() == "cpu"
                    and exp.mesh.devices.size > 1)
  chunks = _chunks(step, tc.num_steps, position, per_dispatch)
  with preemption.GracefulStop() as stop, \
      Prefetcher(load, chunks, config.data.prefetch) as batches:
    for size, batch in batches:
      step_fn = exp.train_step(size if per_dispatch > 1 else 1)
      state, metrics = step_fn(state, batch, teacher_params)
      if sync_each_step:
        jax.block_until_ready(metrics)
      if per_dispatch > 1:  # stacked [size]: report the chunk's last step
        metrics = jax.tree.map(lambda m: m[-1], metrics)
      step += size
      position += size
      if _after_step(exp, manager, writer, progress, stop, state, metrics,
                     step, position):
        break
  checkpoint.wait(manager)
  writer.close()
  return state


def _check_train_config(config, mesh):
  """Checks the run's periodic settings; returns ``train.steps_per_dispatch``."""
  registry.lookup({n: n for n in NONFINITE}, config.train.nonfinite,
                  "train.nonfinite")
  if config.train.keep_checkpoints < 1:
    raise ValueError(
        f"train.keep_checkpoints={config.train.keep_checkpoints} would delete "
        "every checkpoint, those of earlier runs included; set "
        "--config.train.keep_checkpoints=1 or more.")
  sharding.check_batch_size(config.train.batch_size, mesh)
  return _check_dispatch(config)


def _start(exp, manager):
  """(state, step, data position) to start from, logged after the data."""
  state, meta = exp.initial_state(manager)
  logging.info(data.describe(exp.config.data, exp.source))
  warning = data.ignored_resolution(exp.config.data, exp.source)
  if warning:
    logging.warning(warning)
  if meta is None:
    logging.info("Starting from scratch in %s.", exp.workdir)
    logging.info("Parameters:\n%s",
                 parameter_overview.get_parameter_overview(state.online))
    return state, 0, 0
  logging.info("Resumed from step %d (data position %d).", meta["step"],
               meta["data_position"])
  return state, meta["step"], meta["data_position"]


def _loader(exp, per_dispatch):
  """load(position, size) → (size, global batches of data positions
  position … position + size − 1, stacked when several per dispatch)."""
  config = exp.config
  iterator = DataIterator(
      exp.source, config.train.batch_size, seed=config.seed,
      random_flip=config.data.random_flip, process_index=jax.process_index(),
      process_count=jax.process_count())

  def load(position, size):
    batches = [iterator.batch_at(position + i) for i in range(size)]
    if per_dispatch == 1:
      return size, sharding.to_global(batches[0], exp.mesh)
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *batches)
    return size, sharding.to_global(stacked, exp.mesh, stacked=True)

  return load


def _open_writer(exp, step):
  """metrics.jsonl (process 0), without lines logged after ``step``: those
  steps are redone."""
  tc = exp.config.train
  writer = MetricWriter(exp.workdir, tensorboard=tc.tensorboard,
                        enabled=jax.process_index() == 0)
  dropped = writer.discard_after(step)
  if dropped:
    logging.info("Dropped %d metrics.jsonl line(s) after step %d.", dropped,
                 step)
  return writer


def _after_step(exp, manager, writer, progress, stop, state, metrics, step,
                position):
  """The periodic work after a dispatch that ends at ``step``: metrics,
  FID, grids, checkpoints, a requested stop. Returns True to stop."""
  config, tc = exp.config, exp.config.train
  last = step == tc.num_steps
  stopping = not last and stop.requested(step, manager)
  scheduled_save = every(step, tc.checkpoint_every) or last
  save_now = scheduled_save or stopping
  eval_now = every(step, config.eval.every)
  log_now = every(step, tc.log_every) or scheduled_save or eval_now
  if log_now or save_now:
    metrics = jax.device_get(metrics)
    _check_finite(metrics, step, manager, tc)
  if log_now:  # not at a stop: the file must match an uninterrupted run
    metrics["steps_per_s"] = progress.report(step, metrics)
    if eval_now:
      metrics.update(exp.evaluate(state.ema, config.eval.train_num, (1,)))
      logging.info("step %d  FID %.3f (%d samples, 1 step)", step,
                   metrics["fid_1step"], config.eval.train_num)
    writer.write(step, metrics)
  if every(step, tc.sample_every) or (last and tc.sample_every > 0):
    _sample_grid(exp, state.ema, step)
  if save_now:
    checkpoint.save(manager, state, _meta(
        config, step, position, exp.source.example_shape,
        jax.device_get(state.skipped)))
  else:  # a background save that failed stops the run now, not a save later
    checkpoint.check_saves(manager)
  if stopping:
    checkpoint.wait(manager)
    logging.info("Stopped by %s at step %d/%d; checkpoint %s. Rerun the "
                 "same command to resume.", stop.signal_name, step,
                 tc.num_steps, os.path.join(str(manager.directory), str(step)))
  return stopping


def _meta(config, step, position, example_shape, skipped):
  return {"step": int(step), "data_position": int(position),
          "seed": int(config.seed), "example_shape": list(example_shape),
          "skipped": int(skipped), "config": json.loads(config.to_json())}


def _check_finite(metrics, step, manager, train_config):
  skip = train_config.nonfinite == "skip"
  checked = {k: v for k, v in metrics.items() if not (skip and k in SKIPPABLE)}
  too_many = skip and metrics["skipped"] > train_config.max_skipped
  if too_many or not all(math.isfinite(float(v)) for v in checked.values()):
    checkpoint.wait(manager)  # the last good checkpoint, complete
    last = manager.latest_step()
    where = (f"the last good checkpoint is step {last} in {manager.directory}, "
             "kept" if last is not None else "no checkpoint was written yet")
    what = (f"{int(metrics['skipped'])} non-finite updates skipped by step "
            f"{step} (over train.max_skipped)" if too_many else
            f"Non-finite loss, gradient or parameters at step {step}")
    raise FloatingPointError(
        f"{what} ({metrics}); {where}. Lower --config.optim.lr or enable "
        "--config.optim.grad_clip.")


def _chunks(step, num_steps, position, per_dispatch):
  """(data position, number of steps) of each dispatch from ``step`` on.

  Chunks end on multiples of ``per_dispatch`` (a resumed run first realigns),
  so every periodic event, a multiple of it, falls between dispatches.
  """
  while step < num_steps:
    size = min(per_dispatch - step % per_dispatch, num_steps - step)
    yield position, size
    step += size
    position += size


def _check_dispatch(config):
  """``train.steps_per_dispatch``, checked against the periodic events."""
  per_dispatch = config.train.steps_per_dispatch
  if per_dispatch < 1:
    raise ValueError(f"train.steps_per_dispatch={per_dispatch} must be ≥ 1.")
  periods = {"train.log_every": config.train.log_every,
             "train.checkpoint_every": config.train.checkpoint_every,
             "train.sample_every": config.train.sample_every,
             "eval.every": config.eval.every}
  for name, period in periods.items():
    if period > 0 and period % per_dispatch:
      raise ValueError(
          f"{name}={period} is not a multiple of train.steps_per_dispatch="
          f"{per_dispatch} (events happen between dispatches); set "
          f"--config.{name} to a multiple of it.")
  return per_dispatch


def _sample_grid(exp, params, step):
  """A one-step sample grid (PNG) from the EMA parameters. Every process
  samples (the program spans all devices); process 0 writes."""
  config = exp.config
  samples = exp.generate(params, config.sample.grid_size, 1,
                         jax.random.key(config.seed + 1))
  if jax.process_index() != 0:
    return
  path = generate.save_samples(
      samples, exp.source.is_image,
      os.path.join(exp.workdir, "samples", f"grid_{step:08d}"
                   f"{generate.guidance_suffix(config.sample)}"),
      exp.reference_points())
  logging.info("Wrote %s", path)

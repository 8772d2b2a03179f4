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

from cm_jax import checkpoint, generate, nn, sharding, teacher, visualize
from cm_jax.data import DataIterator, get_source, latents
from cm_jax.data.prefetch import Prefetcher
from cm_jax.evaluation import evaluate as evaluate_lib
from cm_jax.evaluation import fid
from cm_jax.train import objective as objective_lib
from cm_jax.train import optim, preemption, validate
from cm_jax.train.state import init_state, state_shardings
from cm_jax.train.step import jit_train_step
from cm_jax.train.writer import MetricWriter, Progress, every


class Experiment:
  """What train and sample share: data source, network, optimizer, mesh."""

  def __init__(self, config, workdir, mesh=None):
    self.config = config
    self.workdir = workdir
    self.mesh = sharding.make_mesh() if mesh is None else mesh
    self.source = get_source(config.data)
    validate.check_experiment(config, self.source)
    self.model = nn.get_model(config.model)
    self.tx = optim.make_optimizer(config.optim)

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

  def reference_points(self, num=2000):
    """Data drawn under 2-D sample scatters (None for images)."""
    if self.source.is_image:
      return None
    return self.source.get(np.arange(min(num, self.source.num_examples)))["x"]

  @functools.cached_property
  def extractor(self):
    """The FID Inception (images) or None (2-D points are their features)."""
    if not self.source.is_image:
      return None
    ec = self.config.eval
    return fid.get_extractor(ec.batch_size, self.mesh, ec.weights or None)

  @functools.cached_property
  def reference(self):
    # Latent sources compare decoded samples with the images they encoded.
    return evaluate_lib.reference_stats(
        self.config, self.extractor,
        data=getattr(self.source, "image_data", None))

  def generate(self, params, num, steps, key, progress=False):
    """``num`` samples in data space (images in [−1, 1] or 2-D points):
    latents (data.source=latents) are decoded; an autoencoder (method=ae)
    reconstructs the first ``num`` examples instead. A model with
    context_dim > 0 samples with ``sample.context`` or the data's contexts."""
    config = self.config
    if config.method == "ae":
      return latents.reconstruct(self.model, params, self.source, num,
                                 config.sample.batch_size)
    contexts = generate.sample_contexts(
        getattr(self.model, "context_dim", 0), config.sample.get("context"),
        self.source, num)
    samples = generate.generate(self.model, params, config,
                                self.source.example_shape, num, steps, key,
                                progress=progress, contexts=contexts)
    decode = getattr(self.source, "decode", None)
    return samples if decode is None else decode(samples)

  def evaluate(self, params, num, steps_list, progress=False):
    """FID/KID of ``num`` samples from ``params`` per number of steps:
    {"fid_1step": …, "kid_1step": …, …} (edm: "fid_ode", …; ae: the
    reconstructions' "fid_recon", …)."""
    config = self.config
    results = {}
    fixed = {"edm": ("ode",), "ae": ("recon",)}  # one sampler, no steps
    for steps in fixed.get(config.method, steps_list):
      named = steps in fixed.get(config.method, ())
      samples = self.generate(params, num, 1 if named else int(steps),
                              jax.random.key(config.eval.seed),
                              progress=progress)
      if self.source.is_image:
        samples = visualize.to_uint8(samples)
      suffix = steps if named else f"{steps}step"
      metrics = evaluate_lib.sample_metrics(samples, self.reference, config,
                                            self.extractor)
      results.update({f"{k}_{suffix}": v for k, v in metrics.items()})
    return results

  def restore(self, state, items=checkpoint.ARRAY_ITEMS, manager=None):
    """Loads the latest checkpoint of the workdir into ``state`` (if any);
    unfinished and unreadable ones are passed over with a warning.

    Returns (state, meta); meta is None for a fresh workdir.
    """
    manager = manager or checkpoint.make_manager(self.workdir)
    # Compare configs before touching arrays, for a one-line reason.
    check = lambda meta: checkpoint.check_compatible(
        meta["config"], self.config, self.workdir, meta.get("example_shape"),
        self.source.example_shape)
    restored, meta = checkpoint.restore_latest(
        manager, {name: getattr(state, name) for name in items}, check)
    if meta is None:
      return state, None
    scalar = lambda value, like: jax.device_put(np.int32(value), like.sharding)
    state = state.replace(step=scalar(meta["step"], state.step),
                          skipped=scalar(meta.get("skipped", 0), state.skipped),
                          **restored)
    return state, meta


def _meta(config, step, position, example_shape, skipped):
  return {"step": int(step), "data_position": int(position),
          "seed": int(config.seed), "example_shape": list(example_shape),
          "skipped": int(skipped), "config": json.loads(config.to_json())}


NONFINITE = ("stop", "skip")
# What a skipped update may leave non-finite in the metrics (not θ: never).
SKIPPABLE = ("loss", "grad_norm")


def _check_finite(metrics, step, manager, train_config):
  skip = train_config.nonfinite == "skip"
  checked = {k: v for k, v in metrics.items() if not (skip and k in SKIPPABLE)}
  too_many = skip and metrics["skipped"] > train_config.max_skipped
  if too_many or not all(math.isfinite(float(v)) for v in checked.values()):
    manager.wait_until_finished()  # the last good checkpoint, complete
    last = manager.latest_step()
    where = (f"the last good checkpoint is step {last} in {manager.directory}, "
             "kept" if last is not None else "no checkpoint was written yet")
    what = (f"{int(metrics['skipped'])} non-finite updates skipped by step "
            f"{step} (over train.max_skipped)" if too_many else
            f"Non-finite loss, gradient or parameters at step {step}")
    raise FloatingPointError(
        f"{what} ({metrics}); {where}. Lower --config.optim.lr or enable "
        "--config.optim.grad_clip.")


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
  objective_lib.resolve({n: n for n in NONFINITE}, tc.nonfinite,
                        "train.nonfinite")
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
      process_count=jax.process_count())
  per_dispatch = _check_dispatch(config)
  step_fns = {}

  def step_fn(size):  # one program per chunk size (usually just one)
    if size not in step_fns:
      step_fns[size] = jit_train_step(
          exp.state_sharding(), sharding.batch_sharding(exp.mesh),
          sharding.replicated(exp.mesh),
          steps_per_dispatch=size if per_dispatch > 1 else 1,
          model=exp.model, tx=exp.tx,
          objective=objective_lib.make_objective(config,
                                                 exp.source.example_shape),
          lr_schedule=optim.learning_rate_schedule(config.optim),
          ema_decay=tc.ema_decay, teacher_model=teacher_model,
          label_dropout=(config.cfg.label_dropout if config.method == "edm"
                         else 0.0),
          skip_nonfinite=tc.nonfinite == "skip")
    return step_fns[size]

  def load(position, size):
    """Global batches of data positions position … position + size − 1."""
    batches = [iterator.batch_at(position + i) for i in range(size)]
    if per_dispatch == 1:
      return size, sharding.to_global(batches[0], exp.mesh)
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *batches)
    return size, sharding.to_global(stacked, exp.mesh, stacked=True)

  is_chief = jax.process_index() == 0
  writer = MetricWriter(workdir, tensorboard=tc.tensorboard, enabled=is_chief)
  dropped = writer.discard_after(step)  # logged after the checkpoint, redone
  if dropped:
    logging.info("Dropped %d metrics.jsonl line(s) after step %d.", dropped,
                 step)
  progress = Progress(step, tc.num_steps)
  # XLA's in-process CPU collectives can starve when several multi-device
  # steps are in flight on few cores (fake devices in tests): wait per step.
  sync_each_step = (jax.default_backend() == "cpu"
                    and exp.mesh.devices.size > 1)
  chunks = _chunks(step, tc.num_steps, position, per_dispatch)

  with preemption.GracefulStop() as stop, \
      Prefetcher(load, chunks, config.data.prefetch) as batches:
    for size, batch in batches:
      state, metrics = step_fn(size)(state, batch, teacher_params)
      if sync_each_step:
        jax.block_until_ready(metrics)
      if per_dispatch > 1:  # stacked [size]: report the chunk's last step
        metrics = jax.tree.map(lambda m: m[-1], metrics)
      step += size
      position += size
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
      if stopping:
        logging.info("Stopped by %s at step %d/%d; checkpoint in %s. Rerun "
                     "the same command to resume.", stop.signal_name, step,
                     tc.num_steps, checkpoint.checkpoint_dir(workdir))
        break
  manager.wait_until_finished()
  writer.close()
  return state


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


def restore_ema(config, workdir, mesh=None):
  """(Experiment, EMA parameters, meta) of the workdir's latest checkpoint,
  restored onto abstract shapes: no training state is initialised or
  compiled just to be overwritten."""
  exp = Experiment(config, workdir, mesh)
  abstract = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      jax.eval_shape(exp._init), exp.state_sharding())  # pylint: disable=protected-access
  state, meta = exp.restore(abstract, items=("ema",))
  if meta is None:
    raise FileNotFoundError(
        f"No checkpoint in {checkpoint.checkpoint_dir(workdir)}; train first "
        "(--mode=train) or point --workdir at a trained run.")
  return exp, state.ema, meta


def sample(config, workdir, mesh=None):
  """--mode=sample: ``sample.num`` samples in ``sample.steps`` steps from the
  EMA parameters of the workdir's latest checkpoint (decoded to images for
  latent data; reconstructions of the data for an autoencoder)."""
  exp, ema, meta = restore_ema(config, workdir, mesh)
  sc = config.sample
  samples = exp.generate(ema, sc.num, sc.steps, jax.random.key(sc.seed))
  name = (f"reconstructions_{meta['step']}" if config.method == "ae" else
          f"samples_{meta['step']}_{sc.steps}step"
          f"{generate.guidance_suffix(sc)}")
  prefix = os.path.join(workdir, "samples", name)
  generate.save_samples(samples, exp.source.is_image, prefix,
                        exp.reference_points())
  logging.info("Wrote %s.npz and .png (%d samples, %d step(s)).", prefix,
               len(samples), sc.steps)
  return prefix + ".npz"


def evaluate(config, workdir, mesh=None):
  """--mode=eval: FID and KID of ``eval.num`` samples per ``eval.steps`` from
  the EMA parameters of the workdir's latest checkpoint, against the reference
  statistics; written to DIR/eval/metrics_<step>.json."""
  exp, ema, meta = restore_ema(config, workdir, mesh)
  ec = config.eval
  results = {"step": meta["step"], "num_samples": ec.num,
             "reference": exp.reference.path,
             "reference_description": exp.reference.description}
  results.update(exp.evaluate(ema, ec.num, ec.steps, progress=True))
  path = os.path.join(workdir, "eval", f"metrics_{meta['step']}.json")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      json.dump(results, f, indent=1)
  scores = "  ".join(f"{k} {v:.4g}" for k, v in results.items()
                     if k.startswith(("fid", "kid_")) and "std" not in k)
  logging.info("step %d, %d samples: %s; wrote %s", meta["step"], ec.num,
               scores, path)
  return results

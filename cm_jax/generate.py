"""Sampling from a trained consistency model (one step, CM Alg. 1, LCM Alg. 3)
or from a diffusion teacher (EDM's Heun or DDIM), with class labels, context
vectors and classifier-free guidance."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from cm_jax import processes, samplers, schedules, solvers, visualize
from cm_jax.train.step import network
from cm_jax.train.writer import ProgressBar


def sample_times(sample_config, steps, diffusion):
  """The descending intermediate times τ_1 > … > τ_{S−1} for S ``steps``.

  ``sample.ts`` gives them (e.g. iCT's (0.821,) for 2 steps); when it is
  empty, S − 1 interior points of an (S + 1)-point EDM grid are used, or for
  the VP process S − 1 evenly spaced DDPM steps (LCM's 4 steps: 999, 749,
  500, 250).
  """
  if steps < 1:
    raise ValueError(f"sample.steps must be ≥ 1, got {steps}.")
  ts = tuple(sample_config.ts)
  is_vp = isinstance(diffusion, processes.VP)
  if not ts:
    if is_vp:
      grid = np.round(np.linspace(0.0, diffusion.t_max, steps + 1))
    else:
      grid = np.asarray(schedules.karras_sigmas(
          steps + 1, diffusion.sigma_min, diffusion.sigma_max, diffusion.rho))
    ts = tuple(float(t) for t in grid[1:-1][::-1])
  if is_vp and any(t != round(t) or not 0 <= t <= diffusion.t_max for t in ts):
    raise ValueError(f"process=vp samples at DDPM steps in [0, "
                     f"{diffusion.t_max:.0f}], got sample.ts={ts}; set "
                     "--config.sample.ts=() for evenly spaced steps.")
  if len(ts) < steps - 1:
    raise ValueError(f"sample.steps={steps} needs {steps - 1} times in "
                     f"sample.ts, got {ts}; set --config.sample.ts=...")
  return check_times(ts[:steps - 1], diffusion, "sample.ts")


def check_times(ts, diffusion, field):
  """``ts`` as floats if strictly descending within (ε, T]; else a one-line
  error naming the config ``field``."""
  ts = tuple(float(t) for t in ts)
  lo, hi = diffusion.t_min, diffusion.t_max
  if any(not lo < t <= hi for t in ts) or any(
      a <= b for a, b in zip(ts, ts[1:])):
    raise ValueError(f"{field}={ts} must be strictly descending times in "
                     f"(ε, T] = ({lo}, {hi}]; set --config.{field}=...")
  return ts


def class_labels(num_classes, requested, start, num):
  """Labels of samples start … start + num − 1 for a class-conditional model
  (``num_classes`` > 0): ``requested`` (e.g. ``sample.labels``) cycled, or all
  classes 0, 1, … cycled when it is empty; label ``num_classes`` is the null
  class (unconditional samples of a CFG model). None for an unconditional
  model."""
  if not num_classes:
    return None
  requested = tuple(int(y) for y in requested) or tuple(range(num_classes))
  if any(not 0 <= y <= num_classes for y in requested):
    raise ValueError(f"Labels {requested} must lie in [0, {num_classes}] "
                     f"({num_classes}: the null class of CFG); set "
                     "--config.sample.labels=... (empty = every class).")
  return jnp.asarray(np.resize(np.roll(requested, -start), num), jnp.int32)


def sample_contexts(context_dim, path, source, num):
  """The context vectors [M, D] that samples 0, 1, … cycle through, for a
  model with ``context_dim`` > 0 (None otherwise): the array "context" of the
  .npz at ``path`` (``sample.context``), or, when ``path`` is empty, the
  contexts of the data source's first ``num`` examples, so sample i is
  conditioned as data example i (mod N) is."""
  if not context_dim:
    return None
  if path:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"sample.context file {path!r} not found; set "
                              "--config.sample.context=/path/to/context.npz "
                              "(array \"context\" [N, D]) or \"\" for the "
                              "data's contexts.")
    with np.load(path, allow_pickle=False) as f:
      if "context" not in f:
        raise ValueError(f"{path} has no array \"context\" (it has "
                         f"{', '.join(f.files)}); save it as "
                         "np.savez(path, context=array [N, D]).")
      contexts = np.asarray(f["context"], np.float32)
    where = f"sample.context={path!r}"
  else:
    n = min(num, source.num_examples)
    contexts = source.get(np.arange(n)).get("context")
    if contexts is None:
      raise ValueError(f"model.context_dim={context_dim}, but the data have no"
                       " contexts to sample with; set --config.sample.context="
                       "/path/to/context.npz (array \"context\" [N, D]).")
    where = "the data source"
  if contexts.ndim != 2 or contexts.shape[1] != context_dim or not len(contexts):
    raise ValueError(f"Contexts from {where} must be [N, {context_dim}] "
                     f"(model.context_dim), got {list(contexts.shape)}.")
  return contexts


def cycled(contexts, start, num):
  """Rows start … start + num − 1 of ``contexts`` taken cyclically (as
  ``class_labels`` cycles labels); None stays None."""
  if contexts is None:
    return None
  return jnp.asarray(contexts[(start + np.arange(num)) % len(contexts)])


def make_sampler(model, diffusion, batch_shape, ts):
  """jit-compiled (params, key, labels, w=None, context=None) → samples
  [batch_shape]: a consistency model in one step from T (``ts`` empty) or CM
  Alg. 1 through ``ts`` (LCM Alg. 3 for the VP process). ``diffusion`` is a
  noise process (``cm_jax.processes``); ``w`` [B] is the guidance-scale input
  of an LCM; ``context`` [B, D] the per-example context."""
  t_max = diffusion.t_max

  def run(params, key, labels, w=None, context=None):
    net = functools.partial(network(model, params, labels, context=context),
                            w=w)
    f = diffusion.consistency_fn(net)
    if isinstance(diffusion, processes.VP):
      return samplers.process_multistep(f, key, batch_shape, jnp.asarray(ts),
                                        process=diffusion)
    if not ts:
      return samplers.onestep(f, key, batch_shape, t_max=t_max)
    return samplers.multistep(f, key, batch_shape, jnp.asarray(ts), t_max=t_max,
                              eps=diffusion.sigma_min)

  return jax.jit(run)


def make_ode_sampler(model, diffusion, batch_shape, num_steps, solver):
  """jit-compiled (params, key, labels, w=None, context=None) → samples of
  the diffusion teacher: EDM's deterministic sampler over a
  ``num_steps``-point grid (EDM Alg. 1), or DDIM over ``num_steps`` DDPM
  steps for the VP process. With ``w`` [B], classifier-free guidance
  D̃ = (1 + w)·D(·, c) − w·D(·, ∅), c = (labels, context), ∅ = (the null
  label, the zero context)."""
  sigmas = diffusion.grid(num_steps)[::-1]

  def run(params, key, labels, w=None, context=None):
    denoiser = diffusion.denoiser(network(model, params, labels,
                                          context=context))
    if w is not None:
      denoiser = solvers.guided_denoiser(
          denoiser, diffusion.denoiser(network(model, params, None)), w)
    if isinstance(diffusion, processes.VP):
      return samplers.ddim_sample(denoiser, key, batch_shape, sigmas,
                                  process=diffusion)
    return samplers.ode_sample(denoiser, key, batch_shape, sigmas, solver=solver)

  return jax.jit(run)


def _guidance(config, model, batch):
  """The w [batch] of CFG (diffusion teachers) or of an LCM's w input; None
  when there is none to apply."""
  w = float(config.sample.get("guidance", 0.0))
  if getattr(model, "w_embedding", False):
    return jnp.full((batch,), w, jnp.float32)
  if w == 0.0:
    return None
  conditional = (getattr(model, "num_classes", 0)
                 or getattr(model, "context_dim", 0))
  if config.method != "edm" or not conditional:
    raise ValueError(f"sample.guidance={w} needs a conditional diffusion "
                     "teacher (method=edm, model.num_classes > 0 or "
                     "model.context_dim > 0) or an LCM with "
                     "model.w_embedding=True; set --config.sample.guidance=0.")
  return jnp.full((batch,), w, jnp.float32)


def generate(model, params, config, example_shape, num, steps, key,
             progress=False, contexts=None):
  """``num`` samples (float, model space) in batches of ``sample.batch_size``.

  Consistency models use ``steps`` (1 or CM Alg. 1); a diffusion teacher
  (method=edm) uses its ODE sampler with ``sample.ode_steps``. Labels follow
  ``sample.labels``; ``contexts`` [M, D] (``sample_contexts``) are cycled
  over the samples; ``sample.guidance`` is w (CFG for a teacher, the w input
  of an LCM). ``progress`` logs a progress bar (e.g. 50k samples for FID).
  """
  batch = min(config.sample.batch_size, num)
  shape = (batch, *example_shape)
  diffusion = processes.make_process(config)
  if config.method == "edm":
    sampler = make_ode_sampler(model, diffusion, shape, config.sample.ode_steps,
                               config.sample.ode_solver)
  else:
    ts = sample_times(config.sample, steps, diffusion)
    sampler = make_sampler(model, diffusion, shape, ts)
  num_classes = getattr(model, "num_classes", 0)
  w = _guidance(config, model, batch)
  bar = ProgressBar(num, "Sampling", unit="samples") if progress else None
  out = []
  for i in range(-(-num // batch)):
    labels = class_labels(num_classes, config.sample.get("labels", ()),
                          i * batch, batch)
    out.append(np.asarray(sampler(params, jax.random.fold_in(key, i), labels,
                                  w, cycled(contexts, i * batch, batch))))
    if bar:
      bar.update(min((i + 1) * batch, num))
  return np.concatenate(out)[:num]


def guidance_suffix(sample_config):
  """"_w<w>" for sample files drawn at guidance w ≠ 0 (runs at several w do
  not overwrite each other), "" when unguided."""
  w = float(sample_config.get("guidance", 0.0))
  return f"_w{w}" if w else ""


def save_samples(samples, is_image, path_prefix, reference=None):
  """Writes ``path_prefix``.npz (key ``samples``: uint8 NHWC images or float32
  [N, 2] points) and ``path_prefix``.png (a grid or a scatter)."""
  os.makedirs(os.path.dirname(path_prefix), exist_ok=True)
  if is_image:
    stored = visualize.to_uint8(samples)
    scale = max(1, 32 // stored.shape[1])  # small images (8×8 digits) magnified
    visualize.save_image_grid(stored, path_prefix + ".png", scale=scale)
  else:
    stored = np.asarray(samples, np.float32)
    visualize.save_scatter(stored, path_prefix + ".png", reference=reference)
  np.savez(path_prefix + ".npz", samples=stored)
  return path_prefix + ".png"

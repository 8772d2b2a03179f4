"""Sampling from a trained consistency model: one step or CM Alg. 1."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from cm_jax import samplers, schedules, visualize
from cm_jax.train.objective import Diffusion
from cm_jax.train.step import network
from cm_jax.train.writer import ProgressBar


def sample_times(sample_config, steps, diffusion):
  """The descending intermediate times τ_1 > … > τ_{S−1} for S ``steps``.

  ``sample.ts`` gives them (e.g. iCT's (0.821,) for 2 steps); when it is
  empty, S − 1 interior points of an (S + 1)-point EDM grid are used.
  """
  if steps < 1:
    raise ValueError(f"sample.steps must be ≥ 1, got {steps}.")
  ts = tuple(sample_config.ts)
  if not ts:
    grid = schedules.karras_sigmas(steps + 1, diffusion.sigma_min,
                                   diffusion.sigma_max, diffusion.rho)
    ts = tuple(float(t) for t in np.asarray(grid)[1:-1][::-1])
  if len(ts) < steps - 1:
    raise ValueError(f"sample.steps={steps} needs {steps - 1} times in "
                     f"sample.ts, got {ts}; set --config.sample.ts=...")
  return check_times(ts[:steps - 1], diffusion, "sample.ts")


def check_times(ts, diffusion, field):
  """``ts`` as floats if strictly descending within (ε, T]; else a one-line
  error naming the config ``field``."""
  ts = tuple(float(t) for t in ts)
  lo, hi = diffusion.sigma_min, diffusion.sigma_max
  if any(not lo < t <= hi for t in ts) or any(
      a <= b for a, b in zip(ts, ts[1:])):
    raise ValueError(f"{field}={ts} must be strictly descending times in "
                     f"(ε, T] = ({lo}, {hi}]; set --config.{field}=...")
  return ts


def class_labels(num_classes, requested, start, num):
  """Labels of samples start … start + num − 1 for a class-conditional model
  (``num_classes`` > 0): ``requested`` (e.g. ``sample.labels``) cycled, or all
  classes 0, 1, … cycled when it is empty. None for an unconditional model."""
  if not num_classes:
    return None
  requested = tuple(int(y) for y in requested) or tuple(range(num_classes))
  if any(not 0 <= y < num_classes for y in requested):
    raise ValueError(f"Labels {requested} must lie in [0, {num_classes}); set "
                     "--config.sample.labels=... (empty = every class).")
  return jnp.asarray(np.resize(np.roll(requested, -start), num), jnp.int32)


def make_sampler(model, diffusion, batch_shape, ts):
  """jit-compiled (params, key, labels) → samples [batch_shape]: a consistency
  model in one step from T = σ_max (``ts`` empty) or CM Alg. 1 through ``ts``.
  ``diffusion`` is a ``train.objective.Diffusion``."""
  t_max = diffusion.sigma_max

  def run(params, key, labels):
    f = diffusion.consistency_fn(network(model, params, labels))
    if not ts:
      return samplers.onestep(f, key, batch_shape, t_max=t_max)
    return samplers.multistep(f, key, batch_shape, jnp.asarray(ts), t_max=t_max,
                              eps=diffusion.sigma_min)

  return jax.jit(run)


def make_ode_sampler(model, diffusion, batch_shape, num_steps, solver):
  """jit-compiled (params, key, labels) → samples of the EDM teacher: its
  deterministic sampler over a ``num_steps``-point grid (EDM Alg. 1)."""
  sigmas = schedules.karras_sigmas(num_steps, diffusion.sigma_min,
                                   diffusion.sigma_max, diffusion.rho)[::-1]

  def run(params, key, labels):
    denoiser = diffusion.denoiser(network(model, params, labels))
    return samplers.ode_sample(denoiser, key, batch_shape, sigmas, solver=solver)

  return jax.jit(run)


def generate(model, params, config, example_shape, num, steps, key,
             progress=False):
  """``num`` samples (float, model space) in batches of ``sample.batch_size``.

  Consistency models use ``steps`` (1 or CM Alg. 1); an EDM teacher
  (method=edm) uses its ODE sampler with ``sample.ode_steps``. ``progress``
  logs a progress bar (long runs, e.g. 50k samples for FID).
  """
  batch = min(config.sample.batch_size, num)
  shape = (batch, *example_shape)
  diffusion = Diffusion(**config.diffusion)
  if config.method == "edm":
    sampler = make_ode_sampler(model, diffusion, shape, config.sample.ode_steps,
                               config.sample.ode_solver)
  else:
    ts = sample_times(config.sample, steps, diffusion)
    sampler = make_sampler(model, diffusion, shape, ts)
  num_classes = getattr(model, "num_classes", 0)
  bar = ProgressBar(num, "Sampling", unit="samples") if progress else None
  out = []
  for i in range(-(-num // batch)):
    labels = class_labels(num_classes, config.sample.get("labels", ()),
                          i * batch, batch)
    out.append(np.asarray(sampler(params, jax.random.fold_in(key, i), labels)))
    if bar:
      bar.update(min((i + 1) * batch, num))
  return np.concatenate(out)[:num]


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

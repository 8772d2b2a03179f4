"""Sampling from a trained consistency model (one step, CM Alg. 1, LCM Alg. 3),
a flow map (MeanFlow's jumps) or a diffusion teacher (EDM's Heun, DDIM,
flow matching's Euler), with class labels, context vectors and
classifier-free guidance.

``SAMPLERS`` is the one table of samplers, selected by name
(``sample.sampler``; "" = the default for the objective's kind of sampler and
the process, the process's ``samplers``). ``consistency_function`` is the one
builder of f(x, t) from trained parameters, shared by sampling, editing and
the τ search; ``flow_map_function`` builds a flow map's jump φ(z, r, t).
"""

import dataclasses
import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from cm_jax import (keys, nn, processes, registry, samplers, schedules,
                    solvers, visualize)
from cm_jax.parametrization import expand_to
from cm_jax.progress import ProgressBar


def sample_times(sample_config, steps, diffusion):
  """The descending intermediate times τ_1 > … > τ_{S−1} for S ``steps``.

  ``sample.ts`` gives them (e.g. iCT's (0.821,) for 2 steps, sCM's (1.1,) in
  TrigFlow time); when it is empty, S − 1 interior points of the process's
  (S + 1)-point grid are used: EDM's (VE; TrigFlow maps it to t), or for the
  VP process S − 1 evenly spaced DDPM steps (LCM's 4 steps: 999, 749, 500,
  250).
  """
  if steps < 1:
    raise ValueError(f"sample.steps must be ≥ 1, got {steps}.")
  ts = tuple(sample_config.ts)
  if not ts:  # the process's (S + 1)-point grid: EDM's, or VP's even steps
    grid = np.asarray(diffusion.grid(steps + 1))
    ts = tuple(float(t) for t in grid[1:-1][::-1])
  if diffusion.discrete_time and any(
      t != round(t) or not 0 <= t <= diffusion.t_max for t in ts):
    raise ValueError(f"This process samples at integer steps in [0, "
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


def consistency_function(model, process, params, labels=None, w=None,
                         context=None):
  """f(x, t) of a trained consistency model: the process's parametrisation
  (VE: CM eq. 5; VP: LCM eq. 9) of the raw network at ``params``, on
  ``labels`` [B] and ``context`` [B, D] (None: the null condition), with
  LCM's guidance scale ``w`` [B] as input (None for models without it).
  Sampling, editing and the τ search all build f here."""
  net = functools.partial(
      nn.network(model, params, nn.Condition(labels=labels, context=context)),
      w=w)
  return process.consistency_fn(net)


def guided_denoiser(model, process, params, labels=None, w=None,
                    context=None):
  """D(x, t) of a diffusion teacher; with ``w`` [B], classifier-free guidance
  D̃ = (1 + w)·D(·, c) − w·D(·, ∅), c = (labels, context), ∅ = (the null
  label, the zero context)."""
  denoiser = process.denoiser(nn.network(
      model, params, nn.Condition(labels=labels, context=context)))
  if w is None:
    return denoiser
  return solvers.guided_denoiser(
      denoiser, process.denoiser(nn.network(model, params)), w)


def flow_map_function(model, process, params, labels=None, w=None,
                      context=None):
  """φ(z, r, t) = z − (t − r)·u(z, r, t) of a trained flow map (the
  linear process's ``flow_map``), conditioned as ``consistency_function``;
  for a network with iMF's guidance inputs ``w`` is their [B, 3] (ω, t_min,
  t_max)."""
  guidance_inputs = getattr(model, "guidance_inputs", False)
  conditional = nn.network(model, params,
                           nn.Condition(labels=labels, context=context))
  if w is not None and not guidance_inputs and not getattr(
      model, "w_embedding", False):
    return process.flow_map(guided_flow_map_net(
        conditional, nn.network(model, params), w))
  net = functools.partial(
      conditional, **({"guidance": w} if guidance_inputs else {"w": w}))
  return process.flow_map(net)


def guided_flow_map_net(cond, uncond, scale):
  """Classifier-free guidance of a class-conditional flow map at scale ω
  (kvfrans/shortcut-models ``helper_inference.py``): the raw network
  u(·|∅) + ω·(u(·|c) − u(·|∅)); ω = 1 is the conditional u. u is the
  network's output on the linear process, so this guides u itself.
  ``scale`` a scalar or per-example [B]."""

  def net(x, c_noise, **inputs):
    u_c, u_u = cond(x, c_noise, **inputs), uncond(x, c_noise, **inputs)
    return u_u + expand_to(scale, u_c) * (u_c - u_u)

  return net


@dataclasses.dataclass(frozen=True)
class Sampler:
  """One entry of ``SAMPLERS``: ``run(g, key, shape, times, process,
  config)`` with g the consistency function (``uses`` = "consistency"), a
  flow map's jump φ(z, r, t) ("flow_map") or the denoiser ("denoiser");
  ``times`` descending (the intermediate τs of a consistency or flow-map
  sampler, the σ, DDPM-step or t grid of an ODE sampler)."""

  uses: str
  run: Callable


SAMPLERS = {
    # CM Alg. 1 with N = 1: x = f(T·z, T).
    "onestep": Sampler("consistency", lambda f, key, shape, ts, p, c:
                       samplers.onestep(f, key, shape, t_max=p.t_max)),
    # CM Alg. 1 through the τs.
    "multistep": Sampler("consistency", lambda f, key, shape, ts, p, c:
                         samplers.multistep(f, key, shape, ts, t_max=p.t_max,
                                            eps=p.t_min)),
    # LCM Alg. 3: CM Alg. 1 for any process (VP: z_τ = α(τ)·x + σ(τ)·z).
    "lcm_multistep": Sampler("consistency", lambda f, key, shape, ts, p, c:
                             samplers.process_multistep(f, key, shape, ts,
                                                        process=p)),
    # EDM Alg. 1 (deterministic), sample.ode_solver steps (Heun: 2N − 1 NFE).
    "ode": Sampler("denoiser", lambda d, key, shape, ts, p, c:
                   samplers.ode_sample(d, key, shape, ts,
                                       solver=c.ode_solver)),
    # DDIM (η = 0) along DDPM steps.
    "ddim": Sampler("denoiser", lambda d, key, shape, ts, p, c:
                    samplers.ddim_sample(d, key, shape, ts, process=p)),
    # MeanFlow eq. 12: jumps z_r = z_t − (t − r)·u(z_t, r, t) from t = 1.
    "flow_map": Sampler("flow_map", lambda phi, key, shape, ts, p, c:
                        samplers.flow_map_sample(phi, key, shape, ts,
                                                 process=p)),
    # Flow matching: Euler steps of dz/dt = v over sample.ode_steps times.
    "flow_euler": Sampler("denoiser", lambda d, key, shape, ts, p, c:
                          samplers.flow_euler_sample(d, key, shape, ts,
                                                     process=p)),
}

# How each kind of sampler gets its g from trained parameters.
BUILDERS = {"consistency": consistency_function,
            "flow_map": flow_map_function, "denoiser": guided_denoiser}

def sampler_name(sample_config, process, kind, steps):
  """``sample.sampler``, or the ``process``'s default for the objective's
  ``kind`` of sampler and ``steps`` (its ``samplers``: one step, several)."""
  if sample_config.sampler:
    return sample_config.sampler
  if kind not in process.samplers:
    raise ValueError(f"This process has no {kind} sampler (it has "
                     f"{', '.join(process.samplers)}); a {kind} model runs "
                     "on another process (flow maps: --config.process="
                     "linear).")
  one, several = process.samplers[kind]
  return one if steps == 1 else several


def sampler_times(name, config, steps, process):
  """The ``times`` a sampler runs through: τ_1 > … (consistency samplers)
  or the descending grid of ``sample.ode_steps`` points (ODE samplers)."""
  if SAMPLERS[name].uses == "denoiser":
    return process.grid(config.sample.ode_steps)[::-1]
  ts = sample_times(config.sample, steps, process)
  if name == "onestep" and ts:
    raise ValueError(f"sample.sampler=onestep takes one step, not "
                     f"sample.steps={steps}; set --config.sample.steps=1.")
  return jnp.asarray(ts, jnp.float32)


def make_sampler(model, process, batch_shape, name, config):
  """jit-compiled (params, keys [B], times, labels, w=None, context=None)
  → samples [batch_shape] by the sampler ``name`` of ``SAMPLERS``; ``keys``
  holds one key per sample (``cm_jax.keys.per_example``)."""
  sampler = registry.lookup(SAMPLERS, name, "sample.sampler")
  build = BUILDERS[sampler.uses]

  def run(params, keys_, times, labels, w=None, context=None):
    g = build(model, process, params, labels, w, context)
    return sampler.run(g, keys_, batch_shape, times, process, config.sample)

  return jax.jit(run)


def _guidance(config, model, kind, batch):
  """The w [batch] of CFG (diffusion teachers) or of an LCM's w input, or
  iMF's guidance inputs [batch, 3] (ω = sample.guidance, 0 meaning 1, and
  sample.guidance_interval), or a class-conditional flow map's CFG scale ω
  [batch] (``guided_flow_map_net``); None when there is none to apply."""
  w = float(config.sample.guidance)
  if getattr(model, "guidance_inputs", False):
    omega = w or 1.0
    lo, hi = (float(t) for t in config.sample.guidance_interval)
    if omega < 1.0 or not 0.0 <= lo <= hi <= 1.0:
      raise ValueError(f"iMF samples at ω = sample.guidance={w} ≥ 1 (0: "
                       "unguided) over sample.guidance_interval=("
                       f"{lo}, {hi}) within [0, 1]; set them so.")
    return jnp.tile(jnp.array([[omega, lo, hi]], jnp.float32), (batch, 1))
  if getattr(model, "w_embedding", False):
    return jnp.full((batch,), w, jnp.float32)
  if w == 0.0:
    return None
  conditional = (getattr(model, "num_classes", 0)
                 or getattr(model, "context_dim", 0))
  if kind not in ("diffusion", "flow_map") or not conditional:
    raise ValueError(f"sample.guidance={w} needs a conditional diffusion "
                     "teacher or flow map (model.num_classes > 0 or "
                     "model.context_dim > 0) or an LCM with "
                     "model.w_embedding=True; set --config.sample.guidance=0.")
  return jnp.full((batch,), w, jnp.float32)


class Generator:
  """Samples of one model in batches of ``batch``, by one
  sampler of ``SAMPLERS``, compiled once: ``gen(params, num, key, times)``.

  Sample i's noise comes from fold_in(key, i) alone, so the samples do not
  depend on the batch size or the device count. Labels follow
  ``sample.labels``; ``contexts`` [M, D] (``sample_contexts``) are cycled
  over the samples; ``sample.guidance`` is w (CFG for a teacher, the w
  input of an LCM).
  """

  def __init__(self, model, config, example_shape, name, *, batch,
               kind="consistency", contexts=None):
    self.model, self.config, self.contexts = model, config, contexts
    self.batch = batch
    self.process = processes.make_process(config)
    self.name = name
    self._sampler = make_sampler(model, self.process,
                                 (self.batch, *example_shape), name, config)
    self._w = _guidance(config, model, kind, self.batch)

  def __call__(self, params, num, key, times, progress=False):
    """``num`` samples (float, model space) through ``times``."""
    batch, num_classes = self.batch, getattr(self.model, "num_classes", 0)
    bar = ProgressBar(num, "Sampling", unit="samples") if progress else None
    out = []
    for start in range(0, num, batch):
      labels = class_labels(num_classes, self.config.sample.labels, start,
                            batch)
      out.append(np.asarray(self._sampler(
          params, keys.per_example(key, start, batch), times, labels, self._w,
          cycled(self.contexts, start, batch))))
      if bar:
        bar.update(min(start + batch, num))
    return np.concatenate(out)[:num]


def generate(model, params, config, example_shape, num, steps, key, *,
             kind="consistency", progress=False, contexts=None):
  """``num`` samples (float, model space) of a ``Generator``.

  ``kind`` is the objective's sampler kind (``Needs.sampler``): a
  consistency model samples in ``steps`` (1, or CM Alg. 1), a diffusion
  teacher with its ODE sampler over ``sample.ode_steps``; ``sample.sampler``
  overrides the default (``SAMPLERS``).
  """
  name = sampler_name(config.sample, processes.make_process(config), kind,
                      steps)
  gen = Generator(model, config, example_shape, name, kind=kind,
                  batch=min(config.sample.batch_size, num), contexts=contexts)
  times = sampler_times(name, config, steps, gen.process)
  return gen(params, num, key, times, progress=progress)


def guidance_suffix(sample_config):
  """"_w<w>" for sample files drawn at guidance w ≠ 0 (runs at several w do
  not overwrite each other), "" when unguided."""
  w = float(sample_config.guidance)
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

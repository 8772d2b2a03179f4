"""--mode=edit: zero-shot editing (CM Alg. 4) and noise interpolation (CM
Fig. 6) with a trained consistency model, from the command line.

``edit.task`` picks one of ``TASKS``. The images come from the data source
(examples ``edit.start`` …) or from ``edit.input`` (an .npz of uint8 NHWC
images, e.g. a ``--mode=sample`` output, or one image file); the task degrades
them into its input (a hole, grey levels, a low-resolution copy, a coarse
painting, noise), edits that, and writes

- DIR/edits/<task>.png: rows input | result | reference, as the papers' figures;
- DIR/edits/<task>.npz: ``input``, ``result``, ``reference`` (uint8 NHWC; the
  super-resolution input is the low-resolution image) and, for inpainting,
  ``mask`` (uint8, 1 = generated). ``interpolate`` has no input or
  reference: ``result`` [rows, α, H, W, C] and ``alphas``.

The model's process (VE, or sCM's TrigFlow) does Alg. 4's noising
(``cm_jax.editing``); ``edit.ts`` are in its own time, while
``edit.stroke_t`` and ``edit.sigma`` are EDM (VE) σ's, mapped to it by
``process.from_ve_sigma`` (TrigFlow: t = arctan(σ/σ_d)).

Editors run on the stored uint8 input, so the saved results keep Alg. 4's
guarantees up to the last rounding: inpainting reproduces the kept pixels bit
for bit; colourisation keeps the luminance and super-resolution the
average-pooled image within half a grey level. A result outside [−1, 1] is
pulled back along the generated components only (``shrink_into_range``), so
clipping does not break those guarantees either.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from PIL import Image

from cm_jax import (editing, generate, methods, processes, registry, samplers,
                    schedules, visualize)
from cm_jax.data.base import uint8_to_float
from cm_jax.experiment import load_trained

MASKS = ("center", "left", "right", "strokes")
POSTERIZE_LEVELS = 4  # grey/colour levels per channel of a stroke painting


# ---------------------------------------------------------------- inputs ----


def read_images(path, example_shape):
  """uint8 [N, H, W, C] images from an .npz/.npy (a uint8 4-D array: ``x``,
  ``images``, ``samples``, ``result`` or the only such array) or from one
  image file (converted to C channels and resized to H×W)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"edit.input {path!r} not found; pass an .npz of "
                            "uint8 NHWC images or an image file.")
  h, w, c = example_shape
  if path.endswith((".npz", ".npy")):
    images = _read_array(path, ("x", "images", "samples", "result", "x_train"),
                         "edit.input")
    if images.dtype != np.uint8 or images.ndim != 4:
      raise ValueError(f"edit.input {path}: expected uint8 [N, H, W, C], got "
                       f"{images.dtype} {list(images.shape)}.")
    if images.shape[1:] != (h, w, c):
      raise ValueError(f"edit.input {path}: images are {images.shape[1:]}, the "
                       f"model takes {(h, w, c)}; resize them first.")
    return images
  image = Image.open(path).convert("L" if c == 1 else "RGB")
  image = image.resize((w, h), Image.BILINEAR)
  return np.asarray(image, np.uint8).reshape(1, h, w, c)


def _read_array(path, keys, field):
  if path.endswith(".npy"):
    return np.load(path, allow_pickle=False)
  with np.load(path, allow_pickle=False) as arrays:
    for key in keys:
      if key in arrays:
        return arrays[key]
    if len(arrays.files) == 1:
      return arrays[arrays.files[0]]
    raise ValueError(f"{field} {path} holds {', '.join(arrays.files)}; name "
                     f"the array one of {', '.join(keys)}.")


def load_references(edit_config, source):
  """(uint8 images [N, H, W, C], labels [N] or None, from_file)."""
  ec = edit_config
  if ec.input:
    return read_images(ec.input, source.example_shape)[:ec.num], None, True
  if not 0 <= ec.start < source.num_examples:
    raise ValueError(f"edit.start={ec.start} is outside the data's "
                     f"{source.num_examples} examples.")
  indices = np.arange(ec.start, min(ec.start + ec.num, source.num_examples))
  batch = source.get(indices)
  return visualize.to_uint8(batch["x"]), batch.get("y"), False


# ----------------------------------------------------------------- masks ----


def make_mask(spec, shape, seed=0):
  """A 0/1 float32 mask of ``shape`` [N, H, W, C] (1 = generate): ``center``
  (the middle half of each side), ``left`` / ``right`` (that half),
  ``strokes`` (random thick lines, one set per image) or a file (.npy, .npz
  key ``mask``, or an image; nonzero / bright = generate)."""
  n, h, w, c = shape
  rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
  boxes = {
      "center": (rows >= h // 4) & (rows < h - h // 4) & (cols >= w // 4)
                & (cols < w - w // 4),
      "left": (cols < w // 2) & (rows >= 0),
      "right": (cols >= w // 2) & (rows >= 0),
  }
  if spec in boxes:
    mask = np.broadcast_to(boxes[spec][None, :, :, None], shape)
  elif spec == "strokes":
    rng = np.random.default_rng(seed)
    mask = np.stack([_strokes(rng, h, w) for _ in range(n)])[..., None]
    mask = np.broadcast_to(mask, shape)
  elif os.path.isfile(spec):
    mask = _read_mask(spec, shape)
  else:
    raise ValueError(f"Unknown edit.mask={spec!r}; valid: {', '.join(MASKS)} "
                     "or the path of a mask file (.npy, .npz, image).")
  return np.asarray(mask, np.float32)


def _strokes(rng, h, w, num=3):
  """``num`` random line segments, about h/6 thick, as a boolean [H, W]."""
  canvas = np.zeros((h, w), bool)
  radius = max(1, h // 12)
  for _ in range(num):
    (r0, c0), (r1, c1) = rng.uniform(0, [h, w], (2, 2))
    for s in np.linspace(0, 1, 4 * max(h, w)):
      r, c = int(r0 + s * (r1 - r0)), int(c0 + s * (c1 - c0))
      canvas[max(0, r - radius):r + radius, max(0, c - radius):c + radius] = True
  return canvas


def _read_mask(path, shape):
  n, h, w, c = shape
  if path.endswith((".npy", ".npz")):
    mask = _read_array(path, ("mask",), "edit.mask") != 0
  else:
    image = Image.open(path).convert("L").resize((w, h), Image.NEAREST)
    mask = np.asarray(image) > 127
  if mask.ndim == 2:
    mask = mask[..., None]
  if mask.ndim == 3:
    mask = mask[None]
  try:
    return np.broadcast_to(mask, shape)
  except ValueError:
    raise ValueError(f"edit.mask {path}: shape {list(mask.shape)} does not fit "
                     f"the images {list(shape)}; use [H, W], [H, W, C] or "
                     "[N, H, W, C].") from None


# ---------------------------------------------------------------- ranges ----


def shrink_into_range(x, anchor, axis):
  """anchor + s·(x − anchor), with the largest s ∈ [0, 1] per group (the
  values reduced over ``axis``) that keeps every value in [−1, 1].

  Pulling towards the anchor moves only the generated components when the
  anchor carries the known ones (a pixel's grey of equal luminance, a patch's
  mean), so clipping to the image range keeps what Alg. 4 kept.
  """
  anchor = np.clip(np.broadcast_to(anchor, x.shape), -1.0, 1.0)
  d = x - anchor
  with np.errstate(divide="ignore", invalid="ignore"):
    room = np.where(d > 0, (1.0 - anchor) / d,
                    np.where(d < 0, (-1.0 - anchor) / d, np.inf))
  s = np.clip(np.min(room, axis=axis, keepdims=True), 0.0, 1.0)
  shrunk = np.clip(anchor + s * d, -1.0, 1.0)
  return np.where(s < 1.0, shrunk, x).astype(x.dtype)  # in range: x as is


def _keep_luminance_in_range(x):
  grey = np.asarray(editing.luminance(x))[..., None] / editing.LUMA.sum()
  return shrink_into_range(x, grey, axis=-1)


def _keep_patch_means_in_range(x, factor):
  n, h, w, c = x.shape
  patches = x.reshape(n, h // factor, factor, w // factor, factor, c)
  means = patches.mean(axis=(2, 4), keepdims=True)
  return shrink_into_range(patches, means, axis=(2, 4)).reshape(x.shape)


# ----------------------------------------------------------------- tasks ----
# Each task: (run, key, reference uint8, edit config, ts, process, from_file)
# → {"input", "result", …} (uint8); run(editor, key, *arrays) evaluates
# editor(f, key, *arrays) jitted, f the consistency function; ``process``
# noises (CM Alg. 4 lines 3, 7).


def _inpaint(run, key, reference, ec, ts, process, from_file):
  del from_file
  mask = make_mask(ec.mask, reference.shape, ec.seed)
  y = visualize.to_uint8(uint8_to_float(reference) * (1.0 - mask))  # grey hole
  x = run(lambda f, k, y, m: editing.inpaint(f, k, y, m, ts, process=process),
          key, uint8_to_float(y), mask)
  return {"input": y, "result": visualize.to_uint8(np.clip(x, -1, 1)),
          "mask": mask.astype(np.uint8)}


def _colorize(run, key, reference, ec, ts, process, from_file):
  del ec, from_file
  if reference.shape[-1] != 3:
    raise ValueError("edit.task=colorize needs RGB images; this data has "
                     f"{reference.shape[-1]} channel(s).")
  grey = editing.luminance(uint8_to_float(reference))[..., None]
  y = visualize.to_uint8(np.repeat(grey, 3, axis=-1))
  x = run(lambda f, k, y: editing.colorize(f, k, y, ts, process=process), key,
          uint8_to_float(y))
  return {"input": y, "result": visualize.to_uint8(_keep_luminance_in_range(x))}


def _superres(run, key, reference, ec, ts, process, from_file):
  del from_file
  factor = ec.factor
  if reference.shape[1] % factor or reference.shape[2] % factor:
    raise ValueError(f"edit.factor={factor} must divide the image size "
                     f"{reference.shape[1:3]}.")
  y_low = visualize.to_uint8(
      editing.average_pool(uint8_to_float(reference), factor))
  x = run(lambda f, k, y: editing.super_resolve(f, k, y, factor, ts,
                                                 process=process), key,
          uint8_to_float(y_low))
  return {"input": y_low,
          "result": visualize.to_uint8(_keep_patch_means_in_range(x, factor))}


def stroke_painting(images, factor):
  """A coarse 'painting' of uint8 images: factor×factor blocks of their mean,
  posterised to ``POSTERIZE_LEVELS`` levels per channel."""
  low = np.asarray(editing.average_pool(uint8_to_float(images), factor))
  steps = POSTERIZE_LEVELS - 1
  low = np.round((low + 1.0) / 2.0 * steps) / steps * 2.0 - 1.0
  return visualize.to_uint8(low.repeat(factor, axis=1).repeat(factor, axis=2))


def _stroke(run, key, reference, ec, ts, process, from_file):
  # A user's file is the painting itself; data images are painted coarsely.
  y = reference if from_file else stroke_painting(reference, ec.factor)
  x = run(lambda f, k, y: editing.stroke_edit(f, k, y, ts, process=process),
          key, uint8_to_float(y))
  return {"input": y, "result": visualize.to_uint8(np.clip(x, -1, 1))}


def _denoise(run, key, reference, ec, ts, process, from_file):
  del ts
  # A user's file is the noisy image (of std edit.sigma, a VE σ: y = x + σ·n);
  # data images get that noise. The editor maps σ to the process's time.
  noisy = uint8_to_float(reference)
  if not from_file:
    noise_key, key = jax.random.split(key)
    noisy = noisy + ec.sigma * np.asarray(
        jax.random.normal(noise_key, noisy.shape))
  x = run(lambda f, k, y: editing.denoise(f, k, y, ec.sigma, process=process),
          key, noisy)
  return {"input": visualize.to_uint8(noisy),  # clipped for display
          "result": visualize.to_uint8(np.clip(x, -1, 1))}


TASKS = {"inpaint": _inpaint, "colorize": _colorize, "superres": _superres,
         "stroke": _stroke, "denoise": _denoise, "interpolate": None}


def edit_times(edit_config, process, task):
  """Alg. 4's t_1 > … > t_N in the process's own time: ``edit.ts`` as given,
  or σ_1 = σ_max (stroke: ``edit.stroke_t``, a VE σ) then the interior of an
  EDM grid of ``edit.steps`` + 1 σs from σ_1 down to ε, each mapped by
  ``process.from_ve_sigma`` (VE: t = σ; TrigFlow: t = arctan(σ/σ_d), so the
  default is ``process.grid(edit.steps + 1)``'s top and interior)."""
  ec = edit_config
  if ec.ts:
    return generate.check_times(ec.ts, process, "edit.ts")
  if ec.steps < 1:
    raise ValueError(f"edit.steps must be ≥ 1, got {ec.steps}.")
  sigma_1 = ec.stroke_t if task == "stroke" else process.sigma_max
  lo, hi = process.sigma_min, process.sigma_max
  if not lo < sigma_1 <= hi:
    raise ValueError(f"edit.stroke_t={sigma_1} (a VE σ) must lie in (σ_min, "
                     f"σ_max] = ({lo}, {hi}]; set --config.edit.stroke_t=...")
  sigmas = schedules.karras_sigmas(ec.steps + 1, lo, sigma_1, process.rho)
  ts = process.from_ve_sigma(sigmas)
  return tuple(float(t) for t in np.asarray(ts)[1:][::-1])


def make_runner(model, params, process, labels, w=None):
  """run(editor, key, *arrays) = editor(f, key, *arrays), jitted, with f the
  consistency function of ``params`` (``generate.consistency_function``:
  class-conditional on ``labels``, with LCM's input ``w``)."""
  def run(editor, key, *arrays):
    def apply(params, key, labels, w, *arrays):
      f = generate.consistency_function(model, process, params, labels, w)
      return editor(f, key, *arrays)
    return np.asarray(jax.jit(apply)(params, key, labels, w, *arrays))
  return run


def interpolation_grid(model, params, process, key, num, alphas,
                       example_shape, labels=None, w=None):
  """CM Fig. 6: ``num`` rows, each one-step samples f(s·slerp(z0, z1, α),
  T) at ``alphas`` from two standard-normal noises, s the process's prior
  std (VE: T; TrigFlow: σ_d) → [num, A, H, W, C] (model space); ``w`` is
  LCM's guidance-scale input (a scalar) or None."""
  alphas = jnp.asarray(alphas, jnp.float32)
  row_w = None if w is None else jnp.full(alphas.shape, w, jnp.float32)

  @jax.jit
  def row(params, z, label):
    row_labels = None if label is None else jnp.full(alphas.shape, label)
    f = generate.consistency_function(model, process, params, row_labels,
                                      row_w)
    return samplers.interpolate(f, z[0], z[1], alphas, t_max=process.t_max,
                                prior_std=process.prior_std)

  z = jax.random.normal(key, (num, 2, *example_shape))
  return np.stack([np.asarray(row(params, z[i], None if labels is None
                                  else labels[i])) for i in range(num)])


def _labels(model, config, data_labels, num):
  """``sample.labels`` if set, else the data's labels, else every class."""
  num_classes = getattr(model, "num_classes", 0)
  if num_classes and data_labels is not None and not config.sample.labels:
    return jnp.asarray(data_labels, jnp.int32)
  return generate.class_labels(num_classes, config.sample.labels, 0, num)


def save_edit(outputs, reference, prefix):
  """Writes prefix.npz (uint8 arrays) and prefix.png (input | result |
  reference rows)."""
  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  np.savez(prefix + ".npz", reference=reference, **outputs)
  h = reference.shape[1]
  shown = outputs["input"]
  if shown.shape[1] != h:  # super-resolution input: low resolution, enlarged
    up = h // shown.shape[1]
    shown = shown.repeat(up, axis=1).repeat(up, axis=2)
  visualize.save_panels([("input", shown), ("result", outputs["result"]),
                         ("reference", reference)], prefix + ".png",
                        scale=max(1, 64 // h))


def check_editable(config, what, any_process=False):
  """``what`` (CM Alg. 4 editing, the 2-step τ search) needs a consistency
  model of pixels, on an ``editable`` process unless ``any_process``; a
  one-line refusal otherwise."""
  if methods.needs_of(config.method).sampler != "consistency":
    consistency = ", ".join(methods.with_sampler("consistency"))
    raise ValueError(f"{what} needs a consistency model (method={consistency}"
                     f"), not method={config.method}.")
  if not processes.make_process(config).editable and not any_process:
    editable = " or ".join(n for n, cls in processes.CLASSES.items()
                           if cls.editable)
    raise ValueError(f"{what} is written for the VE process x_t = x + t·z "
                     "(CM Alg. 1, 4) and sCM's TrigFlow x_t = cos t·x + "
                     f"sin t·z; process={config.process} runs are not "
                     "supported: train a model on "
                     f"--config.process={editable}.")
  if config.data.source == "latents":
    raise ValueError(f"{what} works on pixels; a model of "
                     "data.source=latents is not supported.")


def _guidance_input(model, config, num):
  """LCM's w input [num] (``sample.guidance``) for a model with
  w_embedding, else None."""
  if not getattr(model, "w_embedding", False):
    return None
  return jnp.full((num,), float(config.sample.guidance), jnp.float32)


def edit(config, workdir, mesh=None):
  """--mode=edit: ``edit.task`` with the EMA parameters of the workdir's
  latest checkpoint. Returns the path prefix of the written .npz/.png."""
  ec = config.edit
  task_fn = registry.lookup(TASKS, ec.task, "edit.task")
  check_editable(config, "--mode=edit (CM Alg. 4)")
  exp, ema, meta = load_trained(config, workdir, mesh)
  if not exp.source.is_image:
    raise ValueError("--mode=edit needs image data; data.source="
                     f"{config.data.source!r} gives 2-D points.")
  key = jax.random.key(ec.seed)
  prefix = os.path.join(workdir, "edits", ec.task)
  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  if task_fn is None:  # interpolate
    _interpolate(exp, ema, key, prefix)
  else:
    reference, data_labels, from_file = load_references(ec, exp.source)
    labels = _labels(exp.model, config, data_labels, len(reference))
    run = make_runner(exp.model, ema, exp.process, labels,
                      _guidance_input(exp.model, config, len(reference)))
    ts = edit_times(ec, exp.process, ec.task)
    save_edit(task_fn(run, key, reference, ec, ts, exp.process, from_file),
              reference, prefix)
  logging.info("Wrote %s.png and .npz (%s, checkpoint step %d).", prefix,
               ec.task, meta["step"])
  return prefix


def _interpolate(exp, params, key, prefix):
  """CM Fig. 6 rows written to prefix.npz (``result``, ``alphas``) and .png."""
  ec, config = exp.config.edit, exp.config
  alphas = np.linspace(0.0, 1.0, ec.num_alphas)
  w = float(config.sample.guidance) if getattr(
      exp.model, "w_embedding", False) else None
  grid = interpolation_grid(
      exp.model, params, exp.process, key, ec.num, alphas,
      exp.source.example_shape, _labels(exp.model, config, None, ec.num), w)
  result = visualize.to_uint8(grid)
  np.savez(prefix + ".npz", result=result, alphas=alphas.astype(np.float32))
  visualize.save_image_grid(result.reshape(-1, *result.shape[2:]),
                            prefix + ".png", ncol=ec.num_alphas,
                            scale=max(1, 64 // result.shape[2]))

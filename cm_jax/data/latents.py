"""`data.source = latents`: images encoded once by an autoencoder, cached, and
served as unit-variance latents (LDM §4.3, LCM).

  python launch.py --config=configs/ae_digits.py --workdir=runs/ae_digits
  python launch.py --config=configs/edm_digits.py:latent --workdir=runs/edm_latent

The autoencoder is a cm_jax run of method=ae, named by `data.ae_workdir` (its
latest EMA weights; the images are the data it was trained on, its stored
`config.data`), or any other VAE through `data.autoencoder = "pkg.module:fn"`,
where `fn(data_config)` returns `(autoencoder, image_data_config)`: an object
with the `cm_jax.nn.autoencoder.Autoencoder` interface and the data config
(a dict, as `config.data`) of the images to encode.

The first run encodes every image to its posterior mean z = E(x) and writes
an .npz (`data.latent_cache`, by default `<ae_workdir>/latents/latents_<step>_
<hash>.npz`, the hash naming the image data); later runs read it. Latents are
stored multiplied by s = 1/std(z) over the whole set, so they have unit
variance as the σ_data-based preconditioning expects (SD's 0.18215 is such
an s); s is stored beside them and decoding divides by it: x̂ = D(z′/s).
"""

import dataclasses
import functools
import hashlib
import importlib
import json
import os
from typing import Any

import jax
import numpy as np
from absl import logging

from cm_jax import cache, checkpoint, sharding
from cm_jax.data.base import ArraySource, check_context
from cm_jax.nn.autoencoder import Autoencoder

ENCODE_BATCH = 256  # images per jitted encoder or decoder call


class FlaxAutoencoder:
  """A Flax module with ``encode`` and ``decode`` methods (cm_jax's
  `KLAutoencoder`) at fixed parameters, as an `Autoencoder`."""

  def __init__(self, model, params):
    self.model = model
    self.params = params
    apply = lambda method: jax.jit(functools.partial(
        model.apply, method=method))
    self._encode, self._decode = apply("encode"), apply("decode")

  def encode(self, x):
    return self._encode({"params": self.params}, x)

  def decode(self, z):
    return self._decode({"params": self.params}, z)

  def latent_shape(self, image_shape):
    return self.model.latent_shape(tuple(image_shape))


def batched(fn, x, batch_size=ENCODE_BATCH):
  """``fn`` over ``x`` in batches of ``batch_size`` (the last one padded, so
  each jitted function compiles once); a numpy float32 array."""
  out = []
  for start in range(0, len(x), batch_size):
    chunk = np.asarray(x[start:start + batch_size], np.float32)
    pad = batch_size - len(chunk) if len(x) > batch_size else 0
    padded = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
    out.append(np.asarray(fn(padded), np.float32)[:len(chunk)])
  return np.concatenate(out)


def reconstruct(model, params, source, num, batch_size=ENCODE_BATCH):
  """D(E(x)) of the first ``num`` examples of ``source`` (method=ae's
  "samples": grids, --mode=sample and reconstruction FID)."""
  ae = FlaxAutoencoder(model, params)
  x = source.get(np.arange(min(num, source.num_examples)))["x"]
  return batched(lambda b: ae.decode(ae.encode(b)), x, batch_size)


def load_autoencoder(workdir, mesh=None):
  """(FlaxAutoencoder, meta) of the latest checkpoint of a method=ae run."""
  if not workdir:
    raise ValueError("data.source=latents needs an autoencoder: set "
                     "--config.data.ae_workdir=DIR (a run of configs/ae_*.py)"
                     " or --config.data.autoencoder=pkg.module:fn.")
  manager, meta = checkpoint.read_run(workdir, "data.ae_workdir", ("ae",),
                                      "the autoencoder (configs/ae_*.py)")
  # One local device: encoding once and decoding samples are small jobs, and
  # each host encodes alone.
  mesh = sharding.make_mesh(jax.local_devices()[:1]) if mesh is None else mesh
  model, params = checkpoint.restore_network(manager, meta, mesh,
                                             meta["example_shape"])
  return FlaxAutoencoder(model, params), meta


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class LatentSource(ArraySource):
  """Scaled latents in memory; a `Source` whose examples decode to images.

  Attributes (beside ArraySource's x, y, num_classes, context):
    x: latents s·E(x) float32 [N, h, w, c], unit variance.
    scale: s, the factor the latents were multiplied by.
    autoencoder: the `Autoencoder` that made them (and decodes samples).
    image_shape: the images' shape (H, W, C).
    image_data: the data config (dict) of the encoded images; FID compares
      decoded samples with them.
    path: the cache file.
  """

  scale: float
  autoencoder: Any
  image_shape: tuple[int, ...]
  image_data: dict
  path: str

  def __post_init__(self):  # float latents, not uint8 images
    check_context(self.context, len(self.x), "context")

  @property
  def is_image(self) -> bool:
    return True  # samples decode to images (grids, uint8 files, FID)

  def encode(self, images) -> np.ndarray:
    """Images [B, H, W, C] in [−1, 1] → scaled latents s·E(x)."""
    return self.scale * batched(self.autoencoder.encode, images)

  def decode(self, latents) -> np.ndarray:
    """Scaled latents → images D(z′/s), float32 (≈ [−1, 1]) [B, H, W, C]."""
    return batched(self.autoencoder.decode,
                   np.asarray(latents, np.float32) / self.scale)


def encode_to_cache(autoencoder: Autoencoder, image_source, path,
                    description=""):
  """Encodes every image of ``image_source`` and writes ``path`` (.npz):
  ``latents`` (s·E(x), float32), ``scale`` (s = 1/std of E(x) over all
  elements), ``labels`` and ``context`` (if the images have them),
  ``image_shape``. Atomic: a killed run
  leaves no partial file."""
  n = image_source.num_examples
  chunks, labels, contexts = [], [], []
  for start in range(0, n, 4 * ENCODE_BATCH):
    batch = image_source.get(np.arange(start, min(start + 4 * ENCODE_BATCH,
                                                  n)))
    chunks.append(batched(autoencoder.encode, batch["x"]))
    if "y" in batch:
      labels.append(batch["y"])
    if "context" in batch:
      contexts.append(batch["context"])
  z = np.concatenate(chunks)
  expected = tuple(autoencoder.latent_shape(image_source.example_shape))
  if z.shape[1:] != expected:
    raise ValueError(f"The autoencoder's latents have shape {z.shape[1:]}, "
                     f"but its latent_shape says {expected}.")
  std = float(np.std(z, dtype=np.float64))
  if not np.isfinite(std) or std <= 0:
    raise ValueError(f"Latents of std {std} cannot be scaled to unit "
                     "variance; check the autoencoder.")
  scale = 1.0 / std
  arrays = dict(latents=(z * scale).astype(np.float32), scale=np.float64(scale),
                image_shape=np.asarray(image_source.example_shape),
                num_classes=np.int64(image_source.num_classes),
                description=description)
  if labels:
    arrays["labels"] = np.concatenate(labels).astype(np.int32)
  if contexts:
    arrays["context"] = np.concatenate(contexts).astype(np.float32)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}.npz"
  np.savez(tmp, **arrays)
  os.replace(tmp, path)
  logging.info("Encoded %d images to latents %s (scale s = %.5g); wrote %s.",
               n, z.shape[1:], scale, path)


def _digest(identity):
  text = json.dumps(identity, sort_keys=True, default=str)
  return hashlib.sha1(text.encode()).hexdigest()[:12]


def _plugin(data_config):
  """The (autoencoder, image data config, identity) of data.autoencoder."""
  name = data_config["autoencoder"]
  module, _, fn = name.partition(":")
  try:
    factory = getattr(importlib.import_module(module), fn)
  except (ImportError, AttributeError, ValueError) as e:
    raise ValueError(f"data.autoencoder={name!r} must be 'pkg.module:fn', an "
                     f"importable function ({type(e).__name__}: {e}).") from e
  autoencoder, image_data = factory(data_config)
  return autoencoder, dict(image_data), {"autoencoder": name}


def _resolve(data_config, mesh=None):
  """(autoencoder, image data config, cache path) of ``data_config``."""
  if data_config["autoencoder"]:
    autoencoder, image_data, identity = _plugin(data_config)
    folder, prefix = cache.cache_dir(), "latents"
  else:
    workdir = data_config["ae_workdir"]
    autoencoder, meta = load_autoencoder(workdir, mesh)
    image_data = dict(meta["config"]["data"])
    identity = {"ae_step": meta["step"]}
    folder = os.path.join(os.path.abspath(workdir), "latents")
    prefix = f"latents_{meta['step']}"
  if image_data.get("source") == "latents":
    raise ValueError("The autoencoder's images must be pixels, not latents.")
  path = data_config["latent_cache"] or os.path.join(
      folder, f"{prefix}_{_digest({**identity, 'images': image_data})}.npz")
  return autoencoder, image_data, path


def latents_source(data_config, get_source, mesh=None) -> LatentSource:
  """The latent source of ``data_config`` (fields ``ae_workdir`` or
  ``autoencoder``, and ``latent_cache``), encoding the images on first use;
  ``get_source`` (``cm_jax.data.get_source``) reads the images."""
  autoencoder, image_data, path = _resolve(data_config, mesh)
  if not os.path.exists(path):
    image_source = get_source(image_data)
    if not image_source.is_image:
      raise ValueError(f"data.source=latents encodes images; the "
                       f"autoencoder's data ({image_data.get('source')}) are "
                       "not images.")
    encode_to_cache(autoencoder, image_source, path,
                    description=json.dumps(image_data, default=str))
  else:
    logging.info("Latents from %s.", path)
  with np.load(path) as f:
    labels = f["labels"] if "labels" in f else None
    context = f["context"] if "context" in f else None
    return LatentSource(
        x=f["latents"], y=labels, num_classes=int(f["num_classes"]),
        context=context,
        scale=float(f["scale"]), autoencoder=autoencoder,
        image_shape=tuple(int(d) for d in f["image_shape"]),
        image_data=image_data, path=path)

"""FID/KID of generated samples against cached reference statistics.

The reference is a data source (``config.data`` unless ``eval.ref_split``
names another split of it): tfds CIFAR-10 train for the papers' protocol,
the shipped npz subset here. Its statistics are computed once and cached in
``cache.cache_dir()`` under a name that encodes where they came from; a
log line names the file and how it was made.
"""

import dataclasses
import hashlib
import json
import os

import numpy as np
from absl import logging

from cm_jax import cache
from cm_jax.data import get_source
from cm_jax.evaluation import fid, inception
from cm_jax.progress import ProgressBar

# Reference features kept for KID (random rows; KID compares subsets of 1,000).
KID_REFERENCE_FEATURES = 10_000


@dataclasses.dataclass(frozen=True)
class Reference:
  mu: np.ndarray
  sigma: np.ndarray
  features: np.ndarray  # at most KID_REFERENCE_FEATURES rows, for KID
  path: str
  description: str


def reference_data_config(config, data=None):
  """The reference's data config: ``data`` (e.g. the images a latent source
  encoded) or ``config.data``, with ``eval.ref_split`` applied."""
  data = data if data is not None else config.data
  data = data.to_dict() if hasattr(data, "to_dict") else dict(data)
  if config.eval.ref_split:
    data["split"] = config.eval.ref_split
  return data


def _describe(data, num):
  """E.g. "50000 examples of tfds cifar10 split train"."""
  source = data["source"]
  field = {"npz": "path", "images": "path", "tfds": "name",
           "toy2d": "name"}.get(source)
  where = data[field] if field else None  # fields their sources read
  split = f"split {data['split']}" if source in ("npz", "tfds") else None
  return " ".join(str(part) for part in (f"{num} examples of",
                                         source, where, split) if part)


def _cache_path(data, ref_num):
  identity = {k: data.get(k) for k in sorted(data)
              if k not in ("random_flip", "download", "prefetch")}
  identity.update(ref_num=ref_num, network="fid-inception-v3-pool3")
  digest = hashlib.sha1(json.dumps(identity, sort_keys=True,
                                   default=str).encode()).hexdigest()[:12]
  return os.path.join(cache.cache_dir(),
                      f"fid_ref_{data['source']}_{digest}.npz")


def _source_uint8(source, indices):
  """Examples of ``source`` in FID's input format: uint8 images (from the
  [−1, 1] floats the source yields, exactly) or 2-D points."""
  x = source.get(indices)["x"]
  if not source.is_image:
    return x
  return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def reference_stats(config, extractor=None, chunk=5000, data=None):
  """The cached (or newly computed) ``Reference`` of ``config.eval``, from
  ``data`` (a data config; default ``config.data``)."""
  ec = config.eval
  if ec.ref_stats:
    if not os.path.isfile(ec.ref_stats):
      raise FileNotFoundError(
          f"eval.ref_stats={ec.ref_stats!r} does not exist; leave it empty to "
          "compute statistics from the data, or point it at a cm_jax "
          "fid_ref_*.npz.")
    path = ec.ref_stats
  else:
    data = reference_data_config(config, data)
    path = _cache_path(data, ec.ref_num)
  if not os.path.exists(path):
    source = get_source(data)
    num = source.num_examples if ec.ref_num <= 0 else min(
        ec.ref_num, source.num_examples)
    description = _describe(data, num)
    logging.info("Computing FID reference statistics of %s.", description)
    bar = ProgressBar(num, "Reference data")
    feats = []
    for start in range(0, num, chunk):
      batch = _source_uint8(source, np.arange(start, min(start + chunk, num)))
      feats.append(fid.features(batch, extractor))
      bar.update(start + len(batch))
    feats = np.concatenate(feats)
    mu, sigma = fid.stats_from_features(feats)
    keep = np.random.default_rng(0).permutation(len(feats))[
        :KID_REFERENCE_FEATURES]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez(tmp, mu=mu, sigma=sigma, features=feats[np.sort(keep)],
             description=description)
    os.replace(tmp, path)  # atomic: a killed run leaves no half file
    logging.info("Wrote FID reference statistics %s (%s).", path, description)
  with np.load(path) as f:
    reference = Reference(f["mu"], f["sigma"], f["features"], path,
                          str(f["description"]))
  logging.info("FID reference: %s (%s).", reference.path,
               reference.description)
  return reference


def sample_metrics(samples, reference, config, extractor=None):
  """{"fid": …, "kid": …, "kid_std": …} of ``samples`` (uint8 images or
  2-D points) against ``reference``."""
  feats = fid.features(samples, extractor)
  fid_value = fid.fid_from_stats(fid.stats_from_features(feats),
                                 (reference.mu, reference.sigma))
  kid_mean, kid_std = fid.kid(feats, reference.features,
                              config.eval.kid_subsets,
                              config.eval.kid_subset_size)
  return {"fid": fid_value, "kid": kid_mean, "kid_std": kid_std}

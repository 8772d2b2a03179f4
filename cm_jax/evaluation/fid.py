"""FID and KID from FID-Inception pool3 features (Heusel et al. 2017;
Bińkowski et al. 2018), with the pytorch-fid protocol.

Protocol (pytorch-fid's): uint8 → [0, 1] → bilinear resize to 299×299
(``align_corners=False``, no antialiasing, as ``F.interpolate``) → [−1, 1] →
pool3. Gray images are repeated to 3 channels. Statistics are float64.

- ``feature_stats(images)`` → (μ, Σ) for uint8 NHWC images of any size;
- ``fid_from_stats(a, b)`` = ‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½);
- ``fid(images_a, images_b)``;
- ``kid(features_a, features_b)``: the unbiased MMD² with the cubic
  polynomial kernel k(x, y) = (xᵀy / d + 1)³, averaged over random subsets.

For 2-D point data (toy2d) the "features" are the points themselves, so the
same Fréchet distance compares sample and data Gaussians without Inception.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from cm_jax import sharding
from cm_jax.evaluation import inception
from cm_jax.progress import ProgressBar

INCEPTION_SIZE = 299
FEATURE_DIM = 2048


# ----------------------------------------------------------------------------
# Pre-processing.


def resize_matrix(in_size, out_size):
  """[out_size, in_size] weights of 1-D bilinear resizing, ``align_corners
  =False``: output pixel o samples the input at s = (o + ½)·in/out − ½,
  clamped below at 0, between ⌊s⌋ and ⌊s⌋ + 1 (clamped at the last pixel)."""
  o = np.arange(out_size, dtype=np.float64)
  s = np.maximum((o + 0.5) * (in_size / out_size) - 0.5, 0.0)
  i0 = np.minimum(np.floor(s).astype(int), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  lam = s - i0
  w = np.zeros((out_size, in_size))
  np.add.at(w, (np.arange(out_size), i0), 1.0 - lam)
  np.add.at(w, (np.arange(out_size), i1), lam)
  return w.astype(np.float32)


def preprocess(images):
  """uint8 [N, H, W, C] (C = 1 or 3) → float32 [N, 299, 299, 3] in [−1, 1]."""
  x = jnp.asarray(images).astype(jnp.float32) / 255.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  rows = resize_matrix(x.shape[1], INCEPTION_SIZE)
  cols = resize_matrix(x.shape[2], INCEPTION_SIZE)
  x = jnp.einsum("oh,nhwc,pw->nopc", rows, x, cols,
                 precision=jax.lax.Precision.HIGHEST)
  return 2.0 * x - 1.0


# ----------------------------------------------------------------------------
# Feature extraction.


class FeatureExtractor:
  """uint8 images → pool3 features [N, 2048], in batches sharded over
  ``mesh``'s ``data`` axis (each process feeds its slice of every batch)."""

  def __init__(self, batch_size=200, mesh=None, weights=None):
    self.mesh = sharding.make_mesh() if mesh is None else mesh
    n = self.mesh.devices.size
    self.batch_size = -(-batch_size // n) * n  # a multiple of the devices
    apply_fn, params = inception.load_inception(weights)
    self.params = jax.device_put(params, sharding.replicated(self.mesh))
    # Two programs: resizing (one per input size, cheap) and the network
    # (compiled once, as every input is [batch, 299, 299, 3]).
    self._preprocess = jax.jit(preprocess)
    self._inception = jax.jit(
        apply_fn, out_shardings=sharding.batch_sharding(self.mesh))

  def __call__(self, images, progress=True):
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
      raise ValueError(f"FID features take uint8 [N, H, W, C] images, got "
                       f"{images.dtype} {list(images.shape)}.")
    num, b = len(images), self.batch_size
    bar = ProgressBar(num, "Inception features") if progress else None
    pieces = []
    for start in range(0, num, b):
      batch = images[start:start + b]
      real = len(batch)
      if real < b:  # pad the last batch; padded rows are dropped below
        batch = np.concatenate([batch, np.zeros((b - real, *batch.shape[1:]),
                                                np.uint8)])
      per_host = b // jax.process_count()
      local = batch[jax.process_index() * per_host:][:per_host]
      x = self._preprocess(sharding.to_global(local, self.mesh))
      out = self._inception(self.params, x)
      pieces.append(_fetch(out)[:real])
      if bar:
        bar.update(start + real)
    return (np.concatenate(pieces) if pieces
            else np.zeros((0, FEATURE_DIM), np.float32))


def _fetch(array):
  if jax.process_count() == 1:
    return np.asarray(array)
  return np.asarray(multihost_utils.process_allgather(array, tiled=True))


_EXTRACTORS = {}


def get_extractor(batch_size=200, mesh=None, weights=None):
  """A ``FeatureExtractor``, built (and compiled) once per batch size,
  devices and weights."""
  mesh = sharding.make_mesh() if mesh is None else mesh
  key = (batch_size, tuple(d.id for d in mesh.devices.flat), weights or None)
  if key not in _EXTRACTORS:
    _EXTRACTORS[key] = FeatureExtractor(batch_size, mesh, weights or None)
  return _EXTRACTORS[key]


def features(samples, extractor=None):
  """Features for FID: Inception pool3 for uint8 images; the points
  themselves (float64) for 2-D data."""
  samples = np.asarray(samples)
  if samples.ndim == 2:
    return samples.astype(np.float64)
  return (extractor or get_extractor())(samples)


# ----------------------------------------------------------------------------
# Statistics and distances.


def stats_from_features(feats):
  """(μ, Σ) in float64; Σ with the unbiased 1/(n − 1) normalisation."""
  feats = np.asarray(feats, np.float64)
  if len(feats) < 2:
    raise ValueError(f"FID statistics need at least 2 samples, got "
                     f"{len(feats)}.")
  return feats.mean(axis=0), np.cov(feats, rowvar=False)


def feature_stats(images, extractor=None):
  """(μ, Σ) of the pool3 features of uint8 NHWC ``images`` (any size)."""
  return stats_from_features(features(images, extractor))


def _sqrt_psd(matrix):
  eigenvalues, vectors = np.linalg.eigh(matrix)
  return (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T


def fid_from_stats(stats_a, stats_b):
  """Fréchet distance between N(μ_a, Σ_a) and N(μ_b, Σ_b).

  tr (Σ_a Σ_b)^½ = tr (Σ_a^½ Σ_b Σ_a^½)^½, and the right-hand matrix is
  symmetric PSD, so both roots come from ``eigh`` (no complex ``sqrtm``).
  """
  mu_a, sigma_a = (np.asarray(v, np.float64) for v in stats_a)
  mu_b, sigma_b = (np.asarray(v, np.float64) for v in stats_b)
  root_a = _sqrt_psd(sigma_a)
  middle = np.linalg.eigvalsh(root_a @ sigma_b @ root_a)
  trace_sqrt = np.sqrt(np.clip(middle, 0, None)).sum()
  fid_value = (np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a)
               + np.trace(sigma_b) - 2.0 * trace_sqrt)
  return float(max(fid_value, 0.0))


def fid(images_a, images_b, extractor=None):
  """FID between two sets of uint8 NHWC images (or two 2-D point sets)."""
  return fid_from_stats(feature_stats(images_a, extractor),
                        feature_stats(images_b, extractor))


def mmd2_unbiased(feats_a, feats_b):
  """Unbiased MMD² with k(x, y) = (xᵀy / d + 1)³ (KID, Bińkowski et al.
  eq. 4): off-diagonal means of k within each set minus twice the mean
  across."""
  a = np.asarray(feats_a, np.float64)
  b = np.asarray(feats_b, np.float64)
  d = a.shape[1]
  k_aa = (a @ a.T / d + 1.0) ** 3
  k_bb = (b @ b.T / d + 1.0) ** 3
  k_ab = (a @ b.T / d + 1.0) ** 3
  m, n = len(a), len(b)
  within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
  within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
  return float(within_a + within_b - 2.0 * k_ab.mean())


def kid(feats_a, feats_b, num_subsets=100, subset_size=1000, seed=0):
  """KID: (mean, std) of ``mmd2_unbiased`` over ``num_subsets`` random
  subsets of ``subset_size`` (capped at the smaller set) from each set."""
  size = min(subset_size, len(feats_a), len(feats_b))
  if size < 2:
    raise ValueError(f"KID needs at least 2 features per set, got {size}.")
  rng = np.random.default_rng(seed)
  values = [mmd2_unbiased(
      feats_a[rng.choice(len(feats_a), size, replace=False)],
      feats_b[rng.choice(len(feats_b), size, replace=False)])
            for _ in range(num_subsets)]
  return float(np.mean(values)), float(np.std(values))

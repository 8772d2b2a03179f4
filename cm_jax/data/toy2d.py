"""2-D toy data sets, each a fixed in-memory sample drawn from one seed.

All lie roughly in [-1, 1]², except the mixture, whose scale follows
`radius` and `std`. Standardised, the source
serves the points scaled by s = `sigma_data` / std(points) (std over all
coordinates), so that the networks see data of std σ_data, the scale EDM's
and CM's preconditioning assume; `decode` maps samples back to data units
(sample files, scatter plots and near-mode fractions stay in them), and the
factor is logged. Only a scale: the sets are centred near the origin.
`standardize` None (the default) standardises only data whose std is more
than twice or less than half σ_data: on such data iCT's samples blurred
(0.03 near a mode at 5.7×) or its network died and every sample fell on the
mean (at 2.8×), and standardised the same runs reached 0.61 (docs/toy2d.md); nearer σ_data the points are served as they are, so the shipped
2-D recipes keep the data they were tuned on. True always standardises;
False never does, with a warning at start when the data are that far off.

Fields of `config.data` (declared in configs/base.py): `name` (gmm |
checkerboard | swissroll | moons), `num_examples`, `seed`, `standardize`,
`sigma_data`; for gmm also `num_modes`, `radius`, `std`, `context_dim` and
`context_noise`. The gmm is labelled: class k is mode k, so with
`model.num_classes = num_modes` it is the class-conditional toy of LCD
(configs/edm_toy2d.py:cond).

With `context_dim` = D > 0 the gmm also gives each example a context vector
(batch["context"], float32 [D]): mode k's fixed random unit vector u_k
(orthonormal for num_modes ≤ D) plus N(0, `context_noise`²·I) per example.
A model conditioned only on it (`model.context_dim = D`,
`model.num_classes = 0`) must learn the class from the vector, as from a text
embedding (configs/edm_toy2d.py:context).
"""

import dataclasses
import functools
from typing import Any, Callable

import numpy as np
from absl import logging

from cm_jax import registry
from cm_jax.data.base import ArraySource

Sampler = Callable[[np.random.Generator, int], np.ndarray]


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Toy2dSource(ArraySource):
  """2-D points in memory, served as `x` = s·(points in data units).

  Attributes (beside ArraySource's): scale: s (1 = unscaled).
  """

  scale: float = 1.0

  def encode(self, points) -> np.ndarray:
    """Points in data units → the scaled points the networks see."""
    return (np.asarray(points, np.float32) * self.scale).astype(np.float32)

  def decode(self, points) -> np.ndarray:
    """Generated (scaled) points → data units: `Experiment.generate` applies
    it to every sample."""
    return (np.asarray(points, np.float32) / self.scale).astype(np.float32)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class GaussianMixtureSource(Toy2dSource):
  """A gmm sample: `modes` [K, 2] are the exact means and `std` the spread,
  both in data units (as `decode`d samples are); `y` the mode index."""

  modes: np.ndarray
  std: float

  def classify(self, points: np.ndarray) -> np.ndarray:
    """The Bayes classifier of the equal-weight isotropic mixture: the index
    of the nearest mode (class-conditional runs use mode = class)."""
    return self._distances(points).argmin(axis=1)

  def near_mode(self, points: np.ndarray, within: float = 3.0):
    """The precision of 2-D samples in data units: (the fraction within
    ``within`` std of their nearest mode, those samples' counts per mode)."""
    dist = self._distances(points)
    near = dist.min(axis=1) < within * self.std
    counts = np.bincount(dist.argmin(axis=1)[near], minlength=len(self.modes))
    return float(near.mean()), counts

  def _distances(self, points):
    """‖point − mode‖ for every point and mode → [N, K]."""
    return np.linalg.norm(points[:, None] - self.modes[None], axis=-1)


def gmm_modes(num_modes: int, radius: float) -> np.ndarray:
  """Means [K, 2] evenly spaced on a circle: mode k at angle 2πk/K."""
  angles = 2 * np.pi * np.arange(num_modes) / num_modes
  return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def sample_gmm(rng: np.random.Generator, n: int, modes: np.ndarray,
               std: float) -> tuple[np.ndarray, np.ndarray]:
  """Equal-weight isotropic Gaussians: points [n, 2] and their modes [n]."""
  labels = rng.integers(len(modes), size=n)
  points = modes[labels] + std * rng.standard_normal((n, 2))
  return points.astype(np.float32), labels.astype(np.int32)


def checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
  """Uniform on the 8 cells (col + row even) of a 4×4 board over [-1, 1]²."""
  col = rng.integers(4, size=n)
  row = 2 * rng.integers(2, size=n) + col % 2
  cell = np.stack([col, row], axis=1)
  return (-1 + 0.5 * (cell + rng.random((n, 2)))).astype(np.float32)


def swissroll(rng: np.random.Generator, n: int,
              noise: float = 0.02) -> np.ndarray:
  """(t cos t, t sin t)/4.5π with t ∈ [1.5π, 4.5π]: radius at most 1."""
  t = 1.5 * np.pi * (1 + 2 * rng.random(n))
  points = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (4.5 * np.pi)
  return (points + noise * rng.standard_normal((n, 2))).astype(np.float32)


def moons(rng: np.random.Generator, n: int, noise: float = 0.05) -> np.ndarray:
  """Two interleaved half circles, centred and scaled to x ∈ [-1, 1]."""
  theta = np.pi * rng.random(n)
  lower = rng.integers(2, size=n).astype(bool)
  x = np.where(lower, 1 - np.cos(theta), np.cos(theta))
  y = np.where(lower, 0.5 - np.sin(theta), np.sin(theta))
  points = (np.stack([x, y], axis=1) - [0.5, 0.25]) / 1.5
  return (points + noise * rng.standard_normal((n, 2))).astype(np.float32)


def class_contexts(rng: np.random.Generator, labels: np.ndarray,
                   num_classes: int, dim: int, noise: float) -> np.ndarray:
  """Context vectors [n, dim]: one random unit vector u_k per class k (drawn
  first, so they depend only on ``rng``'s seed; orthonormal when
  num_classes ≤ dim, so no two classes' codes are close), plus
  N(0, noise²·I) per example."""
  codes = rng.standard_normal((num_classes, dim))
  if num_classes <= dim:
    codes = np.linalg.qr(codes.T)[0].T  # random orthonormal rows
  codes /= np.linalg.norm(codes, axis=1, keepdims=True)
  context = codes[labels] + noise * rng.standard_normal((len(labels), dim))
  return context.astype(np.float32)


def _gmm_source(config: Any, rng: np.random.Generator,
                n: int) -> GaussianMixtureSource:
  num_modes, std = config.num_modes, config.std
  modes = gmm_modes(num_modes, config.radius).astype(np.float32)
  x, y = sample_gmm(rng, n, modes, std)
  context = None
  if config.context_dim:  # its own stream: the points are those without
    context = class_contexts(np.random.default_rng([config.seed, 1]), y,
                             num_modes, config.context_dim,
                             config.context_noise)
  return GaussianMixtureSource(
      x=x, y=y, num_classes=num_modes, modes=modes, std=std, context=context)


def _unlabelled_source(sampler: Sampler, config: Any,
                       rng: np.random.Generator, n: int) -> Toy2dSource:
  del config  # These sets have no parameters.
  return Toy2dSource(x=sampler(rng, n))


_TOY2D = {
    "gmm": _gmm_source,
    "checkerboard": functools.partial(_unlabelled_source, checkerboard),
    "swissroll": functools.partial(_unlabelled_source, swissroll),
    "moons": functools.partial(_unlabelled_source, moons),
}


# Data whose std is off σ_data by more than this factor are standardised
# by default (data.standardize None), or get a warning at start with
# standardize=False. The default gmm (std 0.71 against 0.5: 1.42×) and the
# class-conditional toy (std 0.997: 1.99×) are served as they are.
SCALE_LIMIT = 2.0


def standardized(source: Toy2dSource, sigma_data: float,
                 name: str = "toy2d") -> Toy2dSource:
  """``source`` with its points scaled to overall std ``sigma_data``
  (s = σ_data / std over all coordinates), the factor logged."""
  std = float(np.std(source.x, dtype=np.float64))
  if not np.isfinite(std) or std <= 0:
    raise ValueError(f"{name} points of std {std} cannot be standardised; "
                     "set --config.data.standardize=False.")
  scale = sigma_data / std
  logging.info("Data %s: std %.4g; standardised to σ_data = %.4g (points "
               "×%.4g; samples are scaled back by 1/%.4g).", name, std,
               sigma_data, scale, scale)
  return dataclasses.replace(source, x=(source.x * scale).astype(np.float32),
                             scale=scale)


def toy2d_source(config: Any) -> Toy2dSource:
  """The fixed sample of the set named by `config.name`, standardised to
  `config.sigma_data` when `config.standardize` is True, or None and the
  std is more than ``SCALE_LIMIT``× off it."""
  name = config.name
  make = registry.lookup(_TOY2D, name, "data.name")
  if config.context_dim and name != "gmm":
    raise ValueError(f"data.context_dim gives the gmm's classes context "
                     f"vectors; {name!r} has no classes. Set "
                     "--config.data.context_dim=0 or --config.data.name=gmm.")
  rng = np.random.default_rng(config.seed)
  source = make(config, rng, config.num_examples)
  std = float(np.std(source.x, dtype=np.float64))
  far = not 1 / SCALE_LIMIT < std / config.sigma_data < SCALE_LIMIT
  standardize = far if config.standardize is None else config.standardize
  if standardize:
    if config.standardize is None:
      logging.info("Data toy2d %s: std %.3g is more than %g× off σ_data = "
                   "%.3g; standardising it (data.standardize=False "
                   "keeps it).", name, std, SCALE_LIMIT, config.sigma_data)
    return standardized(source, config.sigma_data, f"toy2d {name}")
  if far:
    logging.warning(
        "Data toy2d %s: std %.3g is far from σ_data = %.3g, the scale the "
        "preconditioning assumes; set --config.data.standardize=True (or "
        "--config.diffusion.sigma_data=%.3g).", name, std, config.sigma_data,
        std)
  return source

"""2-D toy data sets, each a fixed in-memory sample drawn from one seed.

All lie roughly in [-1, 1]², a scale close to σ_data = 0.5, except the
mixture, whose scale follows `radius` and `std`.

Fields of `config.data` (declared in configs/base.py): `name` (gmm |
checkerboard | swissroll | moons), `num_examples`, `seed`; for gmm also
`num_modes`, `radius`, `std`, `context_dim` and `context_noise`. The
gmm is labelled: class k is mode k, so with `model.num_classes = num_modes`
it is the class-conditional toy of LCD (configs/edm_toy2d.py:cond).

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

from cm_jax import registry
from cm_jax.data.base import ArraySource

Sampler = Callable[[np.random.Generator, int], np.ndarray]


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class GaussianMixtureSource(ArraySource):
  """A gmm sample: `modes` [K, 2] are the exact means, `y` the mode index."""

  modes: np.ndarray
  std: float

  def classify(self, points: np.ndarray) -> np.ndarray:
    """The Bayes classifier of the equal-weight isotropic mixture: the index
    of the nearest mode (class-conditional runs use mode = class)."""
    dist = np.linalg.norm(points[:, None] - self.modes[None], axis=-1)
    return dist.argmin(axis=1)


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
                       rng: np.random.Generator, n: int) -> ArraySource:
  del config  # These sets have no parameters.
  return ArraySource(x=sampler(rng, n))


_TOY2D = {
    "gmm": _gmm_source,
    "checkerboard": functools.partial(_unlabelled_source, checkerboard),
    "swissroll": functools.partial(_unlabelled_source, swissroll),
    "moons": functools.partial(_unlabelled_source, moons),
}


def toy2d_source(config: Any) -> ArraySource:
  """The fixed sample of the set named by `config.name`."""
  name = config.name
  make = registry.lookup(_TOY2D, name, "data.name")
  if config.context_dim and name != "gmm":
    raise ValueError(f"data.context_dim gives the gmm's classes context "
                     f"vectors; {name!r} has no classes. Set "
                     "--config.data.context_dim=0 or --config.data.name=gmm.")
  rng = np.random.default_rng(config.seed)
  return make(config, rng, config.num_examples)

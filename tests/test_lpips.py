"""LPIPS: a metric's invariants, with random weights (the real ones are a
user-supplied file), and the file format round trip."""

import os
import tempfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax.nn import lpips


def _random_params(size=32):
  x = jnp.zeros((1, size, size, 3))
  params = lpips.LPIPS(resize_to=None).init(jax.random.key(0), x, x)["params"]
  # Heads are non-negative in LPIPS; draw them so.
  return {k: (jnp.abs(jax.random.normal(jax.random.key(i), v.shape))
              if k.startswith("lin") else v)
          for i, (k, v) in enumerate(params.items())}


def _images(seed, shape=(3, 32, 32, 3)):
  return jax.random.uniform(jax.random.key(seed), shape, minval=-1, maxval=1)


@pytest.fixture(scope="module")
def metric():
  params = _random_params()
  model = lpips.LPIPS(resize_to=None)
  return jax.jit(lambda x, y: model.apply({"params": params}, x, y))


def test_zero_for_identical_symmetric_positive(metric):
  x, y = _images(0), _images(1)
  d_xy, d_yx, d_xx = metric(x, y), metric(y, x), metric(x, x)
  chex.assert_shape(d_xy, (3,))
  np.testing.assert_allclose(d_xx, 0.0, atol=1e-7)
  np.testing.assert_allclose(d_xy, d_yx, rtol=1e-5)
  assert np.all(d_xy > 0)
  # Closer images are closer: a small perturbation < an unrelated image.
  near = metric(x, x + 0.01 * _images(2))
  assert np.all(near < d_xy)


def test_resizes_small_images_to_224():
  model = lpips.LPIPS()
  x = jnp.zeros((1, 32, 32, 3))
  shapes = jax.eval_shape(
      lambda: model.init_with_output(jax.random.key(0), x, x,
                                     capture_intermediates=True))
  conv = shapes[1]["intermediates"]["conv1_1"]["__call__"][0]
  assert conv.shape == (2, 224, 224, 64)


def test_weights_file_round_trip_and_errors():
  params = _random_params()
  flat = {}
  for name, value in params.items():
    if name.startswith("lin"):
      flat[f"{name}/kernel"] = np.asarray(value)
    else:
      for leaf, array in value.items():
        flat[f"{name}/{leaf}"] = np.asarray(array)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "lpips.npz")
    np.savez(path, **flat)
    metric = lpips.load_lpips(path, resize_to=None)
    x, y = _images(3), _images(4)
    want = lpips.LPIPS(resize_to=None).apply({"params": params}, x, y)
    np.testing.assert_allclose(metric(x, y), want, rtol=1e-6)
    bad = os.path.join(tmp, "bad.npz")
    np.savez(bad, **{k: v for k, v in flat.items() if k != "lin4/kernel"})
    with pytest.raises(ValueError, match="convert_lpips_weights"):
      lpips.load_lpips(bad)
  with pytest.raises(FileNotFoundError, match="config.loss.lpips_weights"):
    lpips.load_lpips("")

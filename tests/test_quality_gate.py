"""The quality gate's calibration rule and its thresholds file.

The gate itself (real training runs) is `make test-quality`; here only the
arithmetic that turns the seeds' figures into thresholds, against the rule
written out, and the shipped file's consistency with that rule.
"""

import importlib.util
import json
import os

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gate():
  spec = importlib.util.spec_from_file_location(
      "quality_gate", os.path.join(REPO, "scripts", "quality_gate.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_threshold_is_three_std_below_the_mean():
  values = [0.662, 0.804, 0.658, 0.741, 0.691]
  # mean 0.7112, sample std (n − 1) 0.06156: 0.7112 − 3·0.06156 = 0.5265.
  mean = sum(values) / 5
  std = (sum((v - mean) ** 2 for v in values) / 4) ** 0.5
  out = _gate().threshold(values)
  assert out["outliers"] == []
  np.testing.assert_allclose(out["threshold"], mean - 3 * std, atol=1e-4)
  np.testing.assert_allclose(out["threshold"], 0.5265, atol=1e-4)


def test_the_margin_bounds_a_tight_spread():
  # std 0.005: 3·std = 0.015 < MARGIN = 0.03, so mean − 0.03.
  out = _gate().threshold([0.97, 0.975, 0.98])
  np.testing.assert_allclose(out["threshold"], 0.975 - 0.03, atol=1e-4)


def test_a_collapsed_seed_is_an_outlier_and_does_not_ungate_the_check():
  # The 5-mode iCT check's one-step figures: seed 4 collapsed. Median 0.67,
  # MAD 0.058 → robust std 0.086; 0.012 lies 7.7 of them below, beyond 5.
  values = [0.67, 0.7455, 0.728, 0.626, 0.012]
  out = _gate().threshold(values)
  assert out["outliers"] == [0.012]
  kept = np.array(values[:4])
  np.testing.assert_allclose(out["threshold"],
                             kept.mean() - 3 * kept.std(ddof=1), atol=1e-4)
  # With the seed in, mean − 3·std would be below 0.
  assert np.mean(values) - 3 * np.std(values, ddof=1) < 0
  # A low seed within the bound stays in (0.71 is 0.097 below the median
  # 0.807; the bound is 5 · max(robust std, 0.03) = 0.15).
  assert _gate().threshold([0.831, 0.8025, 0.71, 0.807, 0.8115])[
      "outliers"] == []


def test_too_few_seeds_left_is_an_error():
  with pytest.raises(SystemExit, match="fewer than three"):
    _gate().threshold([0.7, 0.7, 0.0])  # MAD 0: 0.0 lies beyond 5 · 0.03


def test_the_shipped_thresholds_follow_the_rule_and_cover_every_check():
  gate = _gate()
  with open(gate.THRESHOLDS) as f:
    shipped = json.load(f)
  assert len(shipped["calibrated"]["seeds"]) >= 3
  assert shipped["calibrated"]["rule"] == gate.RULE
  for key, entry in shipped["thresholds"].items():
    assert entry == gate.threshold(entry["values"]), key
  checks = {key.split(".")[0] for key in shipped["thresholds"]}
  assert checks == set(gate.CHECKS), checks

"""The 2-step τ search: ternary search, the Fréchet distance, and the search
on Gaussian data where the best τ is known in closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax import samplers, schedules
from cm_jax.modes import search as ts_search
from cm_jax.evaluation import fid

T, EPS = 80.0, 0.002


def test_ternary_search_finds_the_minimum_of_unimodal_sequences():
  rng = np.random.default_rng(0)
  for n in (1, 2, 3, 4, 7, 40, 100):
    for _ in range(20):
      low = rng.integers(n)
      # Strictly decreasing to `low`, strictly increasing after it.
      steps = rng.uniform(0.1, 2.0, n)
      seq = np.abs(np.cumsum(steps) - np.cumsum(steps)[low])
      calls = []
      best, values = ts_search.ternary_search(
          lambda i: calls.append(i) or seq[i], 0, n - 1)
      assert best == low
      assert len(calls) == len(set(calls)) == len(values)  # each index once
      assert all(values[i] == seq[i] for i in values)
      if n >= 40:
        assert len(calls) <= 2 * np.log(n) / np.log(1.5) + 4  # not all n
  with pytest.raises(ValueError, match="Empty"):
    ts_search.ternary_search(float, 3, 2)


def test_gaussian_stats_of_flattened_rows():
  # (The Fréchet distance itself is tested in tests/test_fid.py.)
  x = np.random.default_rng(1).normal(size=(500, 5))
  mu, sigma = ts_search.gaussian_stats(x)
  np.testing.assert_allclose(mu, x.mean(0))
  np.testing.assert_allclose(sigma, np.cov(x.T))


def test_search_finds_the_closed_form_best_time_on_gaussian_data():
  """Data N(0, s²I); f = β(t)·f*(x, t), f* the exact consistency function,
  miscalibrated by β(T) = a at T and b elsewhere. The 2-step samples are then
  N(0, v(τ)I) with v(τ) = b²(s² + ε²)/(s² + τ²)·(v₁ + τ² − ε²), v₁ = a²
  (s² + ε²)T²/(s² + T²), so their Fréchet distance to the data, d(√v − s)²,
  is known for every τ; with b < 1 < ab it is zero near τ = 1.33 s."""
  s, a, b, dim = 0.5, 1.6, 0.8, 2

  def f(x, t):
    beta = jnp.where(t >= T, a, b)[:, None]
    return beta * x * jnp.sqrt(s ** 2 + EPS ** 2) / jnp.sqrt(s ** 2 + t[:, None] ** 2)

  shape = (20000, dim)
  sample = jax.jit(lambda ts: samplers.multistep(f, jax.random.key(0), shape, ts,
                                                 t_max=T, eps=EPS))
  reference = np.zeros((1, dim)), s ** 2 * np.eye(dim)
  metric = lambda x: fid.fid_from_stats(ts_search.gaussian_stats(x),
                                                reference)
  grid = np.asarray(schedules.karras_sigmas(40), np.float64)[::-1]
  result = ts_search.search_two_step(lambda t: sample(jnp.array([t])), metric,
                                     grid, one_step=lambda: sample(jnp.zeros(0)))

  v1 = a ** 2 * (s ** 2 + EPS ** 2) * T ** 2 / (s ** 2 + T ** 2)
  v = b ** 2 * (s ** 2 + EPS ** 2) / (s ** 2 + grid ** 2) * (v1 + grid ** 2 - EPS ** 2)
  exact = dim * (np.sqrt(v) - s) ** 2
  searched = exact[1:-1]
  assert np.argmin(searched) not in (0, len(searched) - 1)  # an interior optimum
  # Near-optimal in truth: within sampling error of the exact minimum.
  assert exact[result.best_index] - searched.min() < 2e-3
  assert result.best_t == grid[result.best_index]
  assert 0.5 < result.best_t < 0.9  # around τ* = 1.33 s
  for i, t, value in result.rows:  # every evaluation ≈ its closed form
    assert t == grid[i]
    assert value == pytest.approx(exact[i], abs=3e-3)
  assert len(result.rows) < len(grid) // 2
  # 1 step: N(0, v₁I).
  assert result.one_step == pytest.approx(dim * (np.sqrt(v1) - s) ** 2, rel=0.05)
  table = result.table("Fréchet")
  assert table.count("← best") == 1 and f"| {result.best_index} |" in table

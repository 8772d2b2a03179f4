"""Schedules against the papers' formulas, written out independently here."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized
from scipy.special import erf

from cm_jax import schedules


def ct_n_formula(k, K, s0, s1):
  return math.ceil(math.sqrt(k / K * ((s1 + 1) ** 2 - s0 ** 2) + s0 ** 2) - 1) + 1


def ict_n_formula(k, K, s0, s1):
  k_prime = math.floor(K / (math.log2(math.floor(s1 / s0)) + 1))
  return min(s0 * 2 ** math.floor(k / k_prime), s1) + 1


class ScheduleTest(parameterized.TestCase):

  def test_karras_sigmas_edm_eq5(self):
    n = 18
    got = np.asarray(schedules.karras_sigmas(n))
    i = np.arange(n)
    want = (0.002 ** (1 / 7) + i / (n - 1) * (80 ** (1 / 7) - 0.002 ** (1 / 7))) ** 7
    np.testing.assert_allclose(got, want, rtol=1e-5)
    self.assertEqual(got[0], np.float32(0.002))
    self.assertEqual(got[-1], np.float32(80.0))
    self.assertTrue(np.all(np.diff(got) > 0))

  def test_padded_grid_equals_unpadded_then_sigma_max(self):
    padded = schedules.karras_sigmas(jnp.int32(11), size=20)
    np.testing.assert_array_equal(padded[:11], schedules.karras_sigmas(11))
    np.testing.assert_array_equal(padded[11:], np.full(9, np.float32(80.0)))

  @parameterized.parameters(
      (0, 800_000), (1, 800_000), (12_345, 800_000), (400_000, 800_000),
      (799_999, 800_000), (800_000, 800_000), (3, 10), (7, 10))
  def test_ct_num_scales_cm_paper(self, k, K):
    got = int(schedules.ct_num_scales(k, K, s0=2, s1=150))
    self.assertEqual(got, ct_n_formula(k, K, 2, 150))

  def test_ct_endpoints_and_target_ema(self):
    self.assertEqual(int(schedules.ct_num_scales(0, 800_000)), 2)
    self.assertEqual(int(schedules.ct_num_scales(800_000, 800_000)), 151)
    # μ(k) = exp(s0 log μ0 / N(k)): μ(0) = μ0 = 0.9 in the paper's convention.
    np.testing.assert_allclose(schedules.ct_target_ema(2, s0=2, mu0=0.9), 0.9,
                               rtol=1e-6)
    np.testing.assert_allclose(schedules.ct_target_ema(151, s0=2, mu0=0.9),
                               math.exp(2 * math.log(0.9) / 151), rtol=1e-6)

  def test_ict_table1_cifar10(self):
    # iCT Table 1 with s0 = 10, s1 = 1280, K = 400k implies K' = 50k and
    # N = 11, 21, 41, ..., 1281.
    K = 400_000
    ks = [0, 49_999, 50_000, 100_000, 175_000, 300_000, 349_999, 350_000, 399_999,
          400_000]
    want = [11, 11, 21, 41, 81, 641, 641, 1281, 1281, 1281]
    got = [int(schedules.ict_num_scales(k, K)) for k in ks]
    self.assertEqual(got, want)
    self.assertEqual(want, [ict_n_formula(k, K, 10, 1280) for k in ks])

  @parameterized.parameters((1000, 2, 150), (37, 3, 17), (999_999, 10, 1280))
  def test_ict_num_scales_matches_formula_everywhere(self, K, s0, s1):
    ks = np.linspace(0, K, 50).astype(int)
    got = np.asarray(jax.jit(lambda k: schedules.ict_num_scales(k, K, s0, s1))(ks))
    np.testing.assert_array_equal(got, [ict_n_formula(k, K, s0, s1) for k in ks])

  def test_lognormal_index_probs_erf_formula(self):
    sigmas = np.asarray(schedules.karras_sigmas(11), np.float64)
    cdf = erf((np.log(sigmas) + 1.1) / (np.sqrt(2) * 2.0))
    want = np.diff(cdf) / np.sum(np.diff(cdf))
    got = schedules.lognormal_index_probs(jnp.asarray(sigmas, jnp.float32))
    chex.assert_shape(got, (10,))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.sum(got), 1.0, rtol=1e-6)

  def test_lognormal_probs_zero_on_padding(self):
    padded = schedules.karras_sigmas(jnp.int32(11), size=30)
    probs = schedules.lognormal_index_probs(padded)
    np.testing.assert_allclose(probs[:10], schedules.lognormal_index_probs(
        schedules.karras_sigmas(11)), rtol=1e-5)
    np.testing.assert_array_equal(probs[10:], 0.0)

  def test_weightings(self):
    s_i, s_n = jnp.array([0.1, 1.0]), jnp.array([0.3, 1.5])
    np.testing.assert_allclose(schedules.ict_weight(s_i, s_n), [5.0, 2.0], rtol=1e-6)
    np.testing.assert_array_equal(schedules.uniform_weight(s_i, s_n), [1.0, 1.0])
    np.testing.assert_allclose(schedules.karras_weight(s_i, s_n),
                               (s_i ** 2 + 0.25) / (s_i * 0.5) ** 2, rtol=1e-6)
    # snrpk (ECT's ImageNet): 1/t² + 1/σ_d² at the upper point t = σ_{i+1}.
    np.testing.assert_allclose(schedules.snrpk_weight(s_i, s_n),
                               [1 / 0.09 + 4, 1 / 2.25 + 4], rtol=1e-6)
    # Bound to a run's σ_d (loss.weighting with diffusion.sigma_data = 1).
    for fn, want in ((schedules.karras_weight, [1 / 0.01 + 1, 1 + 1]),
                     (schedules.snrpk_weight, [1 / 0.09 + 1, 1 / 2.25 + 1]),
                     (schedules.ict_weight, [5.0, 2.0])):
      np.testing.assert_allclose(schedules.weighting(fn, 1.0)(s_i, s_n),
                                 want, rtol=1e-6)

"""Solvers and samplers against the Gaussian closed forms (tests/analytic.py)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

import analytic
from cm_jax import samplers, solvers
from cm_jax.schedules import karras_sigmas

MU, S = 0.7, 0.4


def _ode_error(num_steps, solver):
  """Max error of ode_sample with D* against the exact PF-ODE map T → 0."""
  key = jax.random.key(0)
  shape = (256, 3)
  sigmas = karras_sigmas(num_steps)[::-1]
  x0 = samplers.ode_sample(analytic.gaussian_denoiser(MU, S), key, shape, sigmas,
                           solver=solver)
  x_T = 80.0 * jax.random.normal(key, shape)
  exact = analytic.gaussian_flow(x_T, 80.0, 0.0, MU, S)
  return float(jnp.max(jnp.abs(x0 - exact)))


class SolverTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_single_steps_converge_with_order(self):
    denoiser = analytic.gaussian_denoiser(MU, S)
    x = jnp.linspace(-3, 3, 8)[:, None] * jnp.ones((8, 2))
    t = jnp.full((8,), 1.0)

    def err(solver, h):
      got = self.variant(lambda x, t, t_next: solver(denoiser, x, t, t_next))(
          x, t, t - h)
      return float(jnp.max(jnp.abs(got - analytic.gaussian_flow(x, 1.0, 1.0 - h,
                                                                 MU, S))))

    # Local error O(h²) for Euler, O(h³) for Heun: halving h divides it by 4, 8.
    e_ratio = err(solvers.euler_step, 0.02) / err(solvers.euler_step, 0.01)
    h_ratio = err(solvers.heun_step, 0.02) / err(solvers.heun_step, 0.01)
    self.assertBetween(e_ratio, 3.5, 4.5)
    self.assertBetween(h_ratio, 7.0, 9.0)

  def test_heun_falls_back_to_euler_at_zero(self):
    denoiser = analytic.gaussian_denoiser(MU, S)
    x = jnp.array([[0.3, -2.0]])
    np.testing.assert_allclose(
        solvers.heun_step(denoiser, x, jnp.array([0.5]), jnp.array([0.0])),
        solvers.euler_step(denoiser, x, jnp.array([0.5]), jnp.array([0.0])))
    # An Euler step to 0 lands on the denoiser's output.
    np.testing.assert_allclose(
        solvers.euler_step(denoiser, x, jnp.array([0.5]), jnp.array([0.0])),
        denoiser(x, jnp.array([0.5])), rtol=1e-6)

  def test_unknown_solver_lists_choices(self):
    with self.assertRaisesRegex(ValueError, "euler.*heun"):
      solvers.get_solver("rk4")


class OdeSampleTest(chex.TestCase):

  def test_matches_exact_flow_and_orders(self):
    heun = [_ode_error(n, "heun") for n in (20, 40, 80)]
    euler = [_ode_error(n, "euler") for n in (20, 40, 80)]
    self.assertLess(heun[-1], 0.005)  # the data's std is 0.4
    self.assertLess(heun[-1], euler[-1] / 10)
    # Global error: Heun second order, Euler first (ratios per doubling of N).
    self.assertGreater(heun[0] / heun[1], 3.0)
    self.assertGreater(heun[1] / heun[2], 3.0)
    self.assertBetween(euler[1] / euler[2], 1.6, 2.6)

  def test_nfe_heun_35_for_18_steps(self):
    calls = []

    def counting_denoiser(x, sigma):
      calls.append(1)  # counted at trace time: once per evaluation site
      return analytic.gaussian_denoiser(MU, S)(x, sigma)

    # Unrolled count: scan traces its body once, so count per step by hand.
    sigmas = karras_sigmas(18)[::-1]
    samplers.ode_sample(counting_denoiser, jax.random.key(0), (2, 2), sigmas)
    # One Heun body (2 evaluations) traced once + the final Euler (1).
    self.assertEqual(len(calls), 3)
    self.assertEqual(2 * (len(sigmas) - 1) + 1, 35)


class ConsistencySamplerTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_onestep_with_exact_f_gives_the_data_distribution(self):
    f = analytic.gaussian_consistency_fn(MU, S)
    n = 200_000
    x = self.variant(lambda k: samplers.onestep(f, k, (n, 1)))(jax.random.key(3))
    chex.assert_shape(x, (n, 1))
    # x_T ~ N(0, T²) (the prior, not p_T = N(μ, s² + T²)), so exactly
    # mean = μ(1 − r) and std = T·r with r = √(s² + ε²)/√(s² + T²); both are
    # within 1% of the data's μ and √(s² + ε²).
    r = np.sqrt(S ** 2 + 0.002 ** 2) / np.sqrt(S ** 2 + 80.0 ** 2)
    se = 80 * r / np.sqrt(n)
    self.assertAlmostEqual(float(x.mean()), MU * (1 - r), delta=4 * se)
    self.assertAlmostEqual(float(x.std()), 80 * r, delta=0.01 * 80 * r)
    self.assertAlmostEqual(float(x.std()), np.sqrt(S ** 2 + 0.002 ** 2), delta=0.01)

  def test_multistep_with_exact_f(self):
    f = analytic.gaussian_consistency_fn(MU, S)
    n = 200_000
    x = jax.jit(lambda k, ts: samplers.multistep(f, k, (n, 1), ts))(
        jax.random.key(4), jnp.array([2.0, 0.5]))
    # After a refinement at τ, x_τ = x + √(τ² − ε²)z has mean ≈ μ, so the
    # output mean is μ up to the O(r) prior mismatch of the first step.
    self.assertAlmostEqual(float(x.mean()), MU, delta=0.01)
    self.assertAlmostEqual(float(x.std()), np.sqrt(S ** 2 + 0.002 ** 2), delta=0.01)

  def test_multistep_no_retrace_when_ts_change(self):
    f = analytic.gaussian_consistency_fn(MU, S)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(key, ts):
      return samplers.multistep(f, key, (8, 2), ts)

    run(jax.random.key(0), jnp.array([2.0, 0.8]))
    run(jax.random.key(1), jnp.array([5.0, 0.1]))

  def test_multistep_algorithm1_by_hand(self):
    # A consistency fn that records nothing but is non-trivial: f = D*.
    f = analytic.gaussian_denoiser(MU, S)
    key = jax.random.key(5)
    ts = jnp.array([3.0, 1.0])
    got = samplers.multistep(f, key, (4, 2), ts)
    first_key, loop_key = jax.random.split(key)
    x = f(80.0 * jax.random.normal(first_key, (4, 2)), jnp.full((4,), 80.0))
    for tau, k in zip(ts, jax.random.split(loop_key, 2)):
      x = f(x + jnp.sqrt(tau ** 2 - 0.002 ** 2) * jax.random.normal(k, (4, 2)),
            jnp.full((4,), tau))
    np.testing.assert_allclose(got, x, rtol=1e-6)

  def test_interpolate_endpoints_and_norm(self):
    f = lambda x, t: x / t[:, None, None, None]  # recovers the noise z = x_T / T
    z0, z1 = jax.random.normal(jax.random.key(6), (2, 4, 4, 3))
    out = samplers.interpolate(f, z0, z1, jnp.linspace(0, 1, 5))
    chex.assert_shape(out, (5, 4, 4, 3))
    np.testing.assert_allclose(out[0], z0, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out[-1], z1, rtol=1e-4, atol=1e-5)
    # slerp keeps the norm when ‖z0‖ = ‖z1‖.
    z1n = z1 * jnp.linalg.norm(z0) / jnp.linalg.norm(z1)
    mid = samplers.slerp(z0, z1n, 0.5)
    np.testing.assert_allclose(jnp.linalg.norm(mid), jnp.linalg.norm(z0), rtol=1e-5)

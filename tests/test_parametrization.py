"""The boundary condition and EDM preconditioning."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from cm_jax import parametrization
from cm_jax.schedules import karras_sigmas


def _random_net(x_in, c_noise):
  # Any finite function stands in for F_θ.
  return jnp.sin(3.0 * x_in) + c_noise[:, None, None, None]


class ParametrizationTest(chex.TestCase):

  def test_scalings_formulas(self):
    t = jnp.array([0.002, 0.5, 80.0])
    c_skip, c_out = parametrization.boundary_scalings(t)
    np.testing.assert_allclose(c_skip, 0.25 / ((t - 0.002) ** 2 + 0.25), rtol=1e-6)
    np.testing.assert_allclose(c_out, 0.5 * (t - 0.002) / np.sqrt(0.25 + t ** 2),
                               rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_boundary_condition_is_exact(self):
    f = parametrization.consistency_fn(_random_net)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3)) * 10
    eps = karras_sigmas(5)[0]  # the grid's own first point
    out = self.variant(f)(x, jnp.full((4,), eps))
    np.testing.assert_array_equal(out, x)
    out_scalar = self.variant(f)(x, 0.002)
    np.testing.assert_array_equal(out_scalar, x)

  def test_consistency_fn_away_from_boundary(self):
    f = parametrization.consistency_fn(_random_net)
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 1))
    t = jnp.array([1.0, 10.0])
    c_skip, c_out = parametrization.boundary_scalings(t)
    c_in = 1 / jnp.sqrt(t ** 2 + 0.25)
    want = (c_skip[:, None, None, None] * x + c_out[:, None, None, None] *
            _random_net(c_in[:, None, None, None] * x, 0.25 * jnp.log(t)))
    np.testing.assert_allclose(f(x, t), want, rtol=1e-6)

  def test_edm_denoiser_formula(self):
    d = parametrization.edm_denoiser(_random_net)
    x = jax.random.normal(jax.random.key(2), (3, 4, 4, 1))
    sigma = jnp.array([0.01, 1.0, 50.0])
    s = sigma[:, None, None, None]
    want = (0.25 / (s ** 2 + 0.25) * x + s * 0.5 / jnp.sqrt(s ** 2 + 0.25) *
            _random_net(x / jnp.sqrt(s ** 2 + 0.25), 0.25 * jnp.log(sigma)))
    np.testing.assert_allclose(d(x, sigma), want, rtol=1e-5)

  def test_works_on_vectors(self):
    f = parametrization.consistency_fn(lambda x, c: x * c[:, None])
    x = jnp.ones((5, 2))
    chex.assert_shape(f(x, jnp.linspace(0.002, 80, 5)), (5, 2))

"""CM Alg. 4: each editor reproduces its known content."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

import analytic
from cm_jax import editing

TS = jnp.array([40.0, 5.0, 0.8])


def _mixture_f():
  """A non-trivial f: the closed-form denoiser of a 3-component mixture."""
  means = jax.random.uniform(jax.random.key(42), (3, 8, 8, 3), minval=-1, maxval=1)
  return analytic.mixture_denoiser(means, 0.3)


def _images(seed=0, shape=(4, 8, 8, 3)):
  return jax.random.uniform(jax.random.key(seed), shape, minval=-1, maxval=1)


class EditingTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_inpaint_keeps_every_unmasked_pixel(self):
    y = _images()
    mask = jnp.zeros_like(y).at[:, 2:6, 2:6, :].set(1.0)
    out = self.variant(lambda k: editing.inpaint(_mixture_f(), k, y, mask, TS))(
        jax.random.key(0))
    keep = np.asarray(mask) == 0
    np.testing.assert_array_equal(np.asarray(out)[keep], np.asarray(y)[keep])
    # …and generates inside the hole.
    self.assertGreater(float(jnp.abs(out - y)[:, 2:6, 2:6].mean()), 1e-3)

  @chex.variants(with_jit=True, without_jit=True)
  def test_colorize_keeps_luminance(self):
    y = _images(1)
    out = self.variant(lambda k: editing.colorize(_mixture_f(), k, y, TS))(
        jax.random.key(1))
    chex.assert_shape(out, y.shape)
    np.testing.assert_allclose(editing.luminance(out), editing.luminance(y),
                               atol=2e-6)
    # Only the luminance of y is used: changing its chroma changes nothing.
    gray = editing.luminance(y)[..., None] * jnp.ones(3)
    out_gray = editing.colorize(_mixture_f(), jax.random.key(1), gray, TS)
    # Equal up to float32 rounding of the luma projection, amplified by the
    # mixture posterior.
    np.testing.assert_allclose(out_gray, out, atol=1e-3)

  def test_colour_transform_is_orthogonal_with_luma_first(self):
    q = editing._orthonormal_basis(editing.LUMA)
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(q[0] * np.linalg.norm(editing.LUMA), editing.LUMA,
                               rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_super_resolution_pools_back_to_input(self):
    y_low = _images(2, (4, 4, 4, 3))
    out = self.variant(
        lambda k: editing.super_resolve(_mixture_f(), k, y_low, 2, TS))(
            jax.random.key(2))
    chex.assert_shape(out, (4, 8, 8, 3))
    np.testing.assert_allclose(editing.average_pool(out, 2), y_low, atol=2e-6)
    self.assertGreater(float(jnp.std(out - jnp.repeat(jnp.repeat(y_low, 2, 1), 2, 2))),
                       1e-3)

  def test_patch_transform_round_trip(self):
    x = _images(3)
    p = editing._to_patches(x, 2)
    np.testing.assert_array_equal(editing._from_patches(p, 2), x)

  def test_stroke_edit_and_denoise(self):
    y = _images(4)
    f = _mixture_f()
    out = editing.stroke_edit(f, jax.random.key(3), y, TS)
    chex.assert_shape(out, y.shape)
    self.assertTrue(np.all(np.isfinite(out)))
    # Denoising is f at the noise level: with f = D* of a Gaussian it is exact.
    f_star = analytic.gaussian_consistency_fn(0.0, 1.0)
    noisy = y + 0.5 * jax.random.normal(jax.random.key(5), y.shape)
    np.testing.assert_allclose(editing.denoise(f_star, None, noisy, 0.5),
                               f_star(noisy, jnp.full((4,), 0.5)))

  def test_general_alg4_with_full_mask_equals_multistep_from_zero_guide(self):
    # Ω = 1 everywhere keeps nothing: Alg. 4 becomes Alg. 1 from x ~ N(0, t_1²).
    from cm_jax import samplers
    f = _mixture_f()
    y = _images(6)
    identity = lambda x: x
    out = editing.edit(f, jax.random.key(7), y, TS, A=identity, A_inv=identity,
                       omega=jnp.ones_like(y))
    ref = samplers.multistep(f, jax.random.key(7), y.shape, TS[1:], t_max=TS[0])
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)

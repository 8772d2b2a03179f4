"""Closed-form ground truth for the math tests.

Data x0 ~ N(μ, s²I) diffused as x_t = x0 + t·z:
- D*(x; σ) = μ + (x − μ)·s²/(s² + σ²);
- the PF-ODE maps x_σ to μ + (x_σ − μ)·√(s² + σ'²)/√(s² + σ²);
- f*(x, t) = μ + (x − μ)·√(s² + ε²)/√(s² + t²).
A mixture of Gaussians has a closed-form D as well.
"""

import jax
import jax.numpy as jnp

from cm_jax.parametrization import expand_to

EPS = 0.002


def gaussian_denoiser(mu, s):
  def denoiser(x, sigma):
    sigma = expand_to(jnp.broadcast_to(sigma, x.shape[:1]), x)
    return mu + (x - mu) * s ** 2 / (s ** 2 + sigma ** 2)
  return denoiser


def gaussian_flow(x, sigma, sigma_next, mu, s):
  """Exact PF-ODE map from noise level σ to σ'."""
  return mu + (x - mu) * jnp.sqrt(s ** 2 + sigma_next ** 2) / jnp.sqrt(
      s ** 2 + sigma ** 2)


def gaussian_consistency_fn(mu, s, eps=EPS):
  def f(x, t):
    t = expand_to(jnp.broadcast_to(t, x.shape[:1]), x)
    return mu + (x - mu) * jnp.sqrt(s ** 2 + eps ** 2) / jnp.sqrt(s ** 2 + t ** 2)
  return f


def mixture_denoiser(means, s):
  """D(x; σ) for an equal-weight mixture of N(m_k, s²I): posterior-weighted
  component denoisers. means: [K, *example_shape]."""
  means = jnp.asarray(means)

  def denoiser(x, sigma):
    sigma = jnp.broadcast_to(sigma, x.shape[:1])
    var = s ** 2 + sigma ** 2  # [B]
    flat_x = x.reshape(x.shape[0], -1)
    flat_m = means.reshape(means.shape[0], -1)
    sq = jnp.sum((flat_x[:, None, :] - flat_m[None]) ** 2, axis=-1)  # [B, K]
    w = jax.nn.softmax(-0.5 * sq / var[:, None], axis=-1)
    comp = flat_m[None] + (flat_x[:, None, :] - flat_m[None]) * (
        s ** 2 / var)[:, None, None]
    return jnp.einsum("bk,bkd->bd", w, comp).reshape(x.shape)

  return denoiser

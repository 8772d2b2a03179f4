"""Network preconditioning: the consistency boundary condition and EDM's D.

A raw network ``net_apply(x_in, c_noise) -> F`` (see ``cm_jax.nn``) becomes
- a ``ConsistencyFn`` ``f(x, t)`` with f(x, ε) = x exactly (CM eq. 5), or
- a ``Denoiser`` ``D(x, σ)`` (EDM Table 1, "Ours" column).
Both feed the network EDM's c_in·x and c_noise = ¼·ln σ.
"""

import jax.numpy as jnp

from cm_jax.schedules import SIGMA_DATA, SIGMA_MIN


def expand_to(t, x):
  """Broadcasts a per-example [B] (or scalar) array against x [B, ...]."""
  t = jnp.asarray(t, x.dtype)
  if t.ndim == 0:
    t = jnp.broadcast_to(t, x.shape[:1])
  return t.reshape(t.shape + (1,) * (x.ndim - t.ndim))


def boundary_scalings(t, sigma_data=SIGMA_DATA, eps=SIGMA_MIN):
  """CM eq. 5 / App. C: c_skip = σd²/((t−ε)² + σd²), c_out = σd·(t−ε)/√(σd² + t²).

  At t = ε, t − ε is exactly 0 in floating point, so c_skip = 1 and c_out = 0
  exactly and f(x, ε) = x bit-for-bit.
  """
  shifted = t - eps
  c_skip = sigma_data ** 2 / (shifted ** 2 + sigma_data ** 2)
  c_out = sigma_data * shifted / jnp.sqrt(sigma_data ** 2 + t ** 2)
  return c_skip, c_out


def edm_scalings(sigma, sigma_data=SIGMA_DATA):
  """EDM Table 1: (c_skip, c_out, c_in, c_noise)."""
  c_skip = sigma_data ** 2 / (sigma ** 2 + sigma_data ** 2)
  c_out = sigma * sigma_data / jnp.sqrt(sigma ** 2 + sigma_data ** 2)
  c_in = 1.0 / jnp.sqrt(sigma ** 2 + sigma_data ** 2)
  c_noise = 0.25 * jnp.log(sigma)
  return c_skip, c_out, c_in, c_noise


def consistency_fn(net_apply, sigma_data=SIGMA_DATA, eps=SIGMA_MIN):
  """f_θ(x, t) = c_skip(t)·x + c_out(t)·F_θ(c_in(t)·x, c_noise(t)) (CM eq. 5)."""

  def f(x, t):
    t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:1])
    _, _, c_in, c_noise = edm_scalings(t, sigma_data)
    c_skip, c_out = boundary_scalings(t, sigma_data, eps)
    out = net_apply(expand_to(c_in, x) * x, c_noise)
    return expand_to(c_skip, x) * x + expand_to(c_out, x) * out

  return f


def edm_denoiser(net_apply, sigma_data=SIGMA_DATA):
  """D_θ(x; σ) = c_skip(σ)·x + c_out(σ)·F_θ(c_in(σ)·x, c_noise(σ)) (EDM eq. 7)."""

  def denoiser(x, sigma):
    sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sigma_data)
    out = net_apply(expand_to(c_in, x) * x, c_noise)
    return expand_to(c_skip, x) * x + expand_to(c_out, x) * out

  return denoiser

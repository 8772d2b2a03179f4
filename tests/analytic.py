"""Closed-form ground truth for the math tests.

Data x0 ~ N(μ, s²I) diffused as x_t = x0 + t·z:
- D*(x; σ) = μ + (x − μ)·s²/(s² + σ²);
- the PF-ODE maps x_σ to μ + (x_σ − μ)·√(s² + σ'²)/√(s² + σ²);
- f*(x, t) = μ + (x − μ)·√(s² + ε²)/√(s² + t²).
A mixture of Gaussians has a closed-form D as well.

The same data on the linear process z_t = (1 − t)·x0 + t·ε, ε ~ N(0, I),
t ∈ [0, 1] (per dimension):
- z_t ~ N(m(t), σ(t)²), m(t) = (1 − t)·μ, σ(t)² = (1 − t)²·s² + t²;
- the PF-ODE flow is affine, Φ_{t→r}(z) = m(r) + (σ(r)/σ(t))·(z − m(t)),
  so the velocity is v(z, t) = m'(t) + (σ'(t)/σ(t))·(z − m(t)), m' = −μ,
  σ'(t) = (t − (1 − t)·s²)/σ(t);
- E[x0 | z_t = z] = μ + ((1 − t)·s²/σ(t)²)·(z − m(t));
- the average velocity (MeanFlow's u, a flow map's jump) is
  u*(z, r, t) = (z − Φ_{t→r}(z))/(t − r), and u*(z, t, t) = v(z, t).
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


def linear_std(t, s):
  """σ(t) of z_t on the linear process."""
  return jnp.sqrt((1.0 - t) ** 2 * s ** 2 + t ** 2)


def linear_flow(z, t, r, mu, s):
  """Φ_{t→r}(z), the exact PF-ODE map of the linear process, t, r [B]."""
  t, r = expand_to(t, z), expand_to(r, z)
  return (1.0 - r) * mu + linear_std(r, s) / linear_std(t, s) * (
      z - (1.0 - t) * mu)


def linear_velocity(z, t, mu, s):
  """v(z, t) = dΦ/dt along the flow, written out."""
  t = expand_to(t, z)
  sd = linear_std(t, s)
  return -mu + (t - (1.0 - t) * s ** 2) / sd ** 2 * (z - (1.0 - t) * mu)


def linear_posterior_mean(z, t, mu, s):
  """E[x0 | z_t = z]."""
  t = expand_to(t, z)
  return mu + (1.0 - t) * s ** 2 / linear_std(t, s) ** 2 * (
      z - (1.0 - t) * mu)


def average_velocity(mu, s):
  """u*(z, r, t): (z − Φ_{t→r}(z))/(t − r), and v(z, t) where r = t."""

  def u(z, r, t):
    t = jnp.broadcast_to(t, z.shape[:1])
    r = jnp.broadcast_to(r, z.shape[:1])
    same = expand_to(jnp.abs(t - r) < 1e-6, z)
    gap = jnp.where(same, 1.0, expand_to(t - r, z))
    jump = (z - linear_flow(z, t, r, mu, s)) / gap
    return jnp.where(same, linear_velocity(z, t, mu, s), jump)

  return u


def as_two_time_net(u, time_scale=1.0):
  """A raw network net(z, c_noise, c_step) whose reading by the linear
  process (c_noise = s·t, c_step = s·(t − r)) is ``u``(z, r, t)."""

  def net(z, c_noise, c_step=None, **unused):
    t = c_noise / time_scale
    r = t - (0.0 if c_step is None else c_step / time_scale)
    return u(z, r, t)

  return net

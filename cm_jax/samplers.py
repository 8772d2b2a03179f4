"""Samplers: consistency one-step and multistep (CM Alg. 1; LCM Alg. 3 for any
noise process), EDM's ODE sampler, DDIM, flow maps' jumps (MeanFlow eq. 12),
flow matching's Euler steps, and noise interpolation. Each is a
pure function of a callable and a key: one key for the batch, or a key per
example ([B], ``cm_jax.keys``), so that each sample depends on its own key.
"""

import jax
import jax.numpy as jnp

from cm_jax import keys
from cm_jax.schedules import SIGMA_MAX, SIGMA_MIN
from cm_jax.solvers import ddim_step, euler_step, get_solver


def _const_t(t, batch_size):
  return jnp.full((batch_size,), t, jnp.float32)


def onestep(f, key, shape, *, t_max=SIGMA_MAX):
  """x = f(x_T, T) with x_T ~ N(0, T²I): one network evaluation."""
  x_T = t_max * keys.normal(key, shape)
  return f(x_T, _const_t(t_max, shape[0]))


def multistep(f, key, shape, ts, *, t_max=SIGMA_MAX, eps=SIGMA_MIN):
  """CM Alg. 1: x ← f(x_T, T); for τ_n in ``ts``: x ← f(x + √(τ_n² − ε²)·z, τ_n).

  Args:
    ts: descending intermediate times τ_1 > … > τ_{N−1} (an array; its values
      may change without recompiling).

  Returns:
    [shape] samples after 1 + len(ts) evaluations.
  """
  first_key, loop_key = keys.split(key)
  x = onestep(f, first_key, shape, t_max=t_max)

  def refine(x, step):
    tau, step_key = step
    x_tau = x + jnp.sqrt(tau ** 2 - eps ** 2) * keys.normal(step_key, shape)
    return f(x_tau, _const_t(tau, shape[0])), None

  ts = jnp.asarray(ts, jnp.float32)
  x, _ = jax.lax.scan(refine, x, (ts, keys.split(loop_key, len(ts))))
  return x


def process_multistep(f, key, shape, ts, *, process):
  """LCM Alg. 3 (CM Alg. 1 for any process): x ← f(x_T, T) with x_T from the
  process's prior; for τ_n in ``ts``: x ← f(renoise(x, τ_n), τ_n).

  For the VP process renoise is α(τ)·x + σ(τ)·z; for VE it is CM Alg. 1's
  x + √(τ² − ε²)·z, and this function equals ``multistep`` draw for draw.
  With ``ts`` empty it is one step.
  """
  first_key, loop_key = keys.split(key)
  batch = shape[0]
  x = f(process.prior(first_key, shape), _const_t(process.t_max, batch))

  def refine(x, step):
    tau, step_key = step
    x_tau = process.renoise(x, _const_t(tau, batch),
                            keys.normal(step_key, shape))
    return f(x_tau, _const_t(tau, batch)), None

  ts = jnp.asarray(ts, jnp.float32)
  x, _ = jax.lax.scan(refine, x, (ts, keys.split(loop_key, len(ts))))
  return x


def ddim_sample(denoiser, key, shape, ts, *, process):
  """Deterministic DDIM sampling (η = 0) along ``ts`` (descending, from the
  process's T), ending with x̂0 = D(x, ts[-1]): len(ts) evaluations of D."""
  ts = jnp.asarray(ts, jnp.float32)
  batch = shape[0]
  x = process.prior(key, shape)

  def step(x, pair):
    t, t_next = pair
    return ddim_step(denoiser, x, _const_t(t, batch), _const_t(t_next, batch),
                     process=process), None

  x, _ = jax.lax.scan(step, x, (ts[:-1], ts[1:]))
  return denoiser(x, _const_t(ts[-1], batch))


def ode_sample(denoiser, key, shape, sigmas, *, solver="heun"):
  """EDM Alg. 1 (deterministic, S_churn = 0): x_T = σ_max·z, then solver steps
  along ``sigmas`` (descending, starting at σ_max) and a final Euler step to
  σ = 0. With Heun over an 18-point grid this is EDM's 35-NFE sampler.
  """
  solver = get_solver(solver)
  sigmas = jnp.asarray(sigmas, jnp.float32)
  batch = shape[0]
  x = sigmas[0] * keys.normal(key, shape)

  def step(x, pair):
    t, t_next = pair
    return solver(denoiser, x, _const_t(t, batch), _const_t(t_next, batch)), None

  x, _ = jax.lax.scan(step, x, (sigmas[:-1], sigmas[1:]))
  return euler_step(denoiser, x, _const_t(sigmas[-1], batch), _const_t(0.0, batch))


def flow_map_sample(phi, key, shape, ts, *, process):
  """Flow-map sampling (MeanFlow eq. 12): z ~ the prior at T, then jumps
  z ← φ(z, r, t) = z − (t − r)·u(z, r, t) through T > τ_1 > … > t_min;
  ``ts`` are the τs (empty: one jump, T → t_min). 1 + len(ts) evaluations,
  no noise added after the first draw."""
  ts = jnp.asarray(ts, jnp.float32)
  times = jnp.concatenate([jnp.full((1,), process.t_max, jnp.float32), ts,
                           jnp.full((1,), process.t_min, jnp.float32)])
  batch = shape[0]

  def jump(z, pair):
    t, r = pair
    return phi(z, _const_t(r, batch), _const_t(t, batch)), None

  z, _ = jax.lax.scan(jump, process.prior(key, shape), (times[:-1], times[1:]))
  return z


def flow_euler_sample(denoiser, key, shape, ts, *, process):
  """Euler steps of the linear process's PF-ODE dz/dt = v = (z − x̂0)/t
  along ``ts`` (descending, from 1 to 0): z ← z + (t' − t)·v(z, t), from
  z_1 ~ N(0, I); len(ts) − 1 evaluations of x̂0 (flow matching's sampler)."""
  ts = jnp.asarray(ts, jnp.float32)
  batch = shape[0]

  def step(z, pair):
    t, t_next = pair
    v = (z - denoiser(z, _const_t(t, batch))) / t
    return z + (t_next - t) * v, None

  z, _ = jax.lax.scan(step, process.prior(key, shape), (ts[:-1], ts[1:]))
  return z


def slerp(z0, z1, alpha):
  """Spherical interpolation between z0 and z1 at α ∈ [0, 1] (angle over all axes)."""
  cos = jnp.sum(z0 * z1) / (jnp.linalg.norm(z0) * jnp.linalg.norm(z1))
  theta = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
  return (jnp.sin((1.0 - alpha) * theta) * z0
          + jnp.sin(alpha * theta) * z1) / jnp.sin(theta)


def interpolate(f, z0, z1, alphas, *, t_max=SIGMA_MAX, prior_std=None):
  """CM Fig. 6: slerp between two noises, then one step from the prior:
  f(s·slerp(z0, z1, α), T), s = ``prior_std`` (None: T, VE's x_T ~ N(0, T²I);
  TrigFlow: σ_d at T = arctan(σ_max/σ_d)).

  Args:
    z0, z1: standard-normal noises of one example's shape (no batch axis).
    alphas: [A] interpolation weights.

  Returns:
    [A, *z0.shape] samples.
  """
  scale = t_max if prior_std is None else prior_std
  zs = jax.vmap(lambda a: slerp(z0, z1, a))(jnp.asarray(alphas, jnp.float32))
  return f(scale * zs, _const_t(t_max, zs.shape[0]))

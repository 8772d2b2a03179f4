"""One step of the EDM probability-flow ODE dx/dt = (x − D(x; t))/t (EDM eq. 4
with σ(t) = t, s(t) = 1).

Each solver maps (denoiser, x, t, t_next) → x_{t_next}; t and t_next are
scalars or per-example [B] arrays, and t_next may be 0.
"""

import jax.numpy as jnp

from cm_jax.parametrization import expand_to


def _velocity(denoiser, x, t):
  """dx/dt = (x − D(x; t))/t."""
  return (x - denoiser(x, t)) / expand_to(t, x)


def euler_step(denoiser, x, t, t_next):
  """First order: x + (t_next − t)·(x − D(x; t))/t. One evaluation of D."""
  return x + expand_to(t_next - t, x) * _velocity(denoiser, x, t)


def heun_step(denoiser, x, t, t_next):
  """EDM Alg. 1 lines 5–8: Heun's second-order step, Euler where t_next = 0.

  Two evaluations of D (one where t_next = 0, as EDM counts NFE: an N-step
  Heun sampler ending at 0 uses 2N − 1).
  """
  t_next = jnp.broadcast_to(jnp.asarray(t_next, x.dtype), x.shape[:1])
  dt = expand_to(t_next - t, x)
  d = _velocity(denoiser, x, t)
  x_euler = x + dt * d
  # The correction needs D at t_next > 0; where t_next = 0 evaluate at a safe
  # dummy time and discard the result.
  is_last = t_next == 0
  d_next = _velocity(denoiser, x_euler, jnp.where(is_last, 1.0, t_next))
  x_heun = x + dt * 0.5 * (d + d_next)
  return jnp.where(expand_to(is_last, x), x_euler, x_heun)


SOLVERS = {"euler": euler_step, "heun": heun_step}


def get_solver(solver):
  """Resolves a solver name (or passes a callable through)."""
  if callable(solver):
    return solver
  if solver not in SOLVERS:
    raise ValueError(f"Unknown solver {solver!r}; valid: {sorted(SOLVERS)}.")
  return SOLVERS[solver]

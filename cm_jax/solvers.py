"""One step of the EDM probability-flow ODE dx/dt = (x − D(x; t))/t (EDM eq. 4
with σ(t) = t, s(t) = 1), DDIM for any process, and classifier-free guidance.

Each solver maps (denoiser, x, t, t_next) → x_{t_next}; t and t_next are
scalars or per-example [B] arrays, and t_next may be 0. ``ddim_step`` also
takes the noise process (``cm_jax.processes``; EDM's VE by default).
"""

import jax.numpy as jnp

from cm_jax import processes, registry
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


def ddim_step(denoiser, x, t, t_next, *, process=None):
  """DDIM (Song et al. 2021, η = 0), the LCM solver Ψ (LCM eq. 8):

    x̂0 = D(x, t),  ε̂ = (x − α(t)·x̂0)/σ(t),  x_{t_next} = α(t_next)·x̂0 + σ(t_next)·ε̂.

  It is Euler's method in the scaled variables (x/α, σ/α), which integrates
  the linear part of the PF-ODE exactly: exact whenever D is constant along
  the trajectory. For the VE process (the default) it *is* ``euler_step``.
  """
  process = processes.VE() if process is None else process
  x0 = denoiser(x, t)
  eps = (x - expand_to(process.alpha(t), x) * x0) / expand_to(process.sigma(t), x)
  return (expand_to(process.alpha(t_next), x) * x0
          + expand_to(process.sigma(t_next), x) * eps)


def guided_denoiser(cond, uncond, w):
  """Classifier-free guidance (LCM eq. 10 with D in place of ε):
  D̃(x, t) = (1 + w)·D(x, t, c) − w·D(x, t, ∅); w = 0 is the plain
  conditional denoiser. D is affine in ε at fixed (x, t), so this equals
  guiding ε̂. ``w`` is a scalar or per-example [B]."""

  def denoiser(x, t):
    w_ = expand_to(w, x)
    return (1.0 + w_) * cond(x, t) - w_ * uncond(x, t)

  return denoiser


SOLVERS = {"euler": euler_step, "heun": heun_step, "ddim": ddim_step}


def get_solver(solver):
  """Resolves a solver name (or passes a callable through)."""
  if callable(solver):
    return solver
  return registry.lookup(SOLVERS, solver, "teacher.solver")

"""Zero-shot editing with a consistency model (CM Alg. 4), on any noise process.

Every task is an invertible linear map A with a binary mask Ω in A-space
(1 = generate, 0 = keep Ay). Each iteration projects the sample back onto the
known content: x ← A⁻¹[(Ay) ⊙ (1 − Ω) + (Ax) ⊙ Ω]. With an orthogonal A the
kept components are reproduced up to float32 rounding, and with A = I (inpainting)
exactly.

CM writes Alg. 4 for the VE process x_t = x0 + t·z. Here its two noisings
are the ``process``'s own (``cm_jax.processes``): line 3 noises the projected
y to t_1 with ``process.noise`` and line 7 re-noises x̂ to t_n with
``process.renoise``, the process's multistep-sampling step. For VE these are
CM's y + t_1·z and x + √(t_n² − ε²)·z, draw for draw; for sCM's TrigFlow
both are cos t·x + sin t·σ_d·z (sCM's multistep sampling). The projections
(lines 5, 9) do not depend on the process.

All editors take images NHWC in [−1, 1], ``ts``, the descending times
t_1 > … > t_N in the process's own time (VE: σ; TrigFlow: t ∈ (0, π/2)), and
the ``process`` (default EDM's VE).
"""

import jax
import jax.numpy as jnp
import numpy as np

from cm_jax.processes import VE

# ITU-R BT.601 luma, as in the CM paper's colorisation.
LUMA = np.array([0.2989, 0.5870, 0.1140])


def _orthonormal_basis(first):
  """Orthogonal matrix Q (rows are the basis) whose first row is first/‖first‖."""
  first = np.asarray(first, np.float64)
  seed = np.eye(len(first))
  seed[:, 0] = first
  q, _ = np.linalg.qr(seed)
  q = q * np.sign(q[:, :1].T @ first)  # make the first column point along `first`
  return jnp.asarray(q.T, jnp.float32)


def _const_t(t, x):
  return jnp.full(x.shape[:1], t)


def _refine(f, key, x, ts, project, process):
  """Alg. 4 lines 6–10: x ← project(f(renoise(x, t_n), t_n)) for n ≥ 2
  (VE: renoise(x, t) = x + √(t² − ε²)·z)."""

  def step(x, item):
    t, step_key = item
    x = process.renoise(x, t, jax.random.normal(step_key, x.shape))  # line 7
    return project(f(x, _const_t(t, x))), None  # lines 8–9

  x, _ = jax.lax.scan(step, x, (ts[1:], jax.random.split(key, len(ts) - 1)))
  return x


def edit(f, key, y, ts, *, A, A_inv, omega, process=VE()):
  """CM Alg. 4 for an invertible linear ``A`` (with inverse ``A_inv``) and a
  binary mask ``omega`` broadcastable to A(y) (1 = generate, 0 = keep),
  noising by ``process`` (VE: line 3 is y + t_1·z)."""
  ts = jnp.asarray(ts, jnp.float32)
  Ay = A(y)

  def project(x):  # lines 5 and 9
    return A_inv(Ay * (1.0 - omega) + A(x) * omega)

  first_key, loop_key = jax.random.split(key)
  y = A_inv(Ay * (1.0 - omega))  # line 2
  x = process.noise(y, jax.random.normal(first_key, y.shape), ts[0])  # line 3
  x = project(f(x, _const_t(ts[0], x)))  # lines 4–5
  return _refine(f, loop_key, x, ts, project, process)


def inpaint(f, key, y, mask, ts, *, process=VE()):
  """A = I, Ω = ``mask`` (y's shape, 1 = generate, 0 = keep).

  The output equals y exactly where mask = 0.
  """
  mask = jnp.asarray(mask, y.dtype)
  identity = lambda x: x
  # y·(1 − 0) + x·0 is y bit-for-bit for any finite x.
  return edit(f, key, y, ts, A=identity, A_inv=identity, omega=mask,
              process=process)


def colorize(f, key, y, ts, *, process=VE()):
  """A = an orthogonal colour transform whose first channel is the luminance
  direction Y = 0.2989·R + 0.5870·G + 0.1140·B; Ω keeps that channel.

  ``y`` is RGB; only its luminance is used. The output's Y equals y's.
  """
  q = _orthonormal_basis(LUMA)
  A = lambda x: x @ q.T
  A_inv = lambda x: x @ q
  omega = jnp.array([0.0, 1.0, 1.0])
  return edit(f, key, y, ts, A=A, A_inv=A_inv, omega=omega, process=process)


def luminance(images):
  """Y = 0.2989·R + 0.5870·G + 0.1140·B of NHWC RGB images → [N, H, W]."""
  return images @ jnp.asarray(LUMA, images.dtype)


def _to_patches(x, factor):
  b, h, w, c = x.shape
  x = x.reshape(b, h // factor, factor, w // factor, factor, c)
  return x.transpose(0, 1, 3, 5, 2, 4).reshape(b, h // factor, w // factor, c,
                                               factor * factor)


def _from_patches(p, factor):
  b, hp, wp, c, _ = p.shape
  p = p.reshape(b, hp, wp, c, factor, factor).transpose(0, 1, 4, 2, 5, 3)
  return p.reshape(b, hp * factor, wp * factor, c)


def average_pool(x, factor):
  """Mean over non-overlapping factor×factor patches, NHWC."""
  return jnp.mean(_to_patches(x, factor), axis=-1)


def super_resolve(f, key, y_low, factor, ts, *, process=VE()):
  """A = an orthogonal transform of each factor×factor patch whose first
  component is the patch average (times ``factor``); Ω keeps that component.

  ``y_low`` is [B, H/factor, W/factor, C]. Average-pooling the output by
  ``factor`` gives y_low.
  """
  q = _orthonormal_basis(np.ones(factor * factor))
  A = lambda x: _to_patches(x, factor) @ q.T
  A_inv = lambda p: _from_patches(p @ q, factor)
  omega = jnp.ones(factor * factor).at[0].set(0.0)
  y = jnp.repeat(jnp.repeat(y_low, factor, axis=1), factor, axis=2)
  return edit(f, key, y, ts, A=A, A_inv=A_inv, omega=omega, process=process)


def stroke_edit(f, key, y_stroke, ts, *, process=VE()):
  """Stroke-guided generation (CM Fig. 6, SDEdit-style): A = I and Ω = 1, but
  started from the guide: x = noise(y_stroke, t_1) (VE: N(y_stroke, t_1²I)),
  then Alg. 1 refinement."""
  ts = jnp.asarray(ts, jnp.float32)
  first_key, loop_key = jax.random.split(key)
  x = process.noise(y_stroke, jax.random.normal(first_key, y_stroke.shape),
                    ts[0])
  x = f(x, _const_t(ts[0], x))
  return _refine(f, loop_key, x, ts, lambda x: x, process)


def denoise(f, key, y_noisy, sigma, *, process=VE()):
  """CM §6: an image with Gaussian noise of std σ, y = x + σ·n, lies on the
  PF-ODE at EDM's σ, so one step denoises it: at the process's time t of
  that σ (``process.from_ve_sigma``), x_t = α(t)·y and the result is
  f(α(t)·y, t) (VE: f(y, σ); TrigFlow: t = arctan(σ/σ_d), f(cos t·y, t)).
  ``key`` is unused (kept for a uniform editor signature)."""
  del key
  t = process.from_ve_sigma(sigma)
  x_t = process.alpha(t).astype(y_noisy.dtype) * y_noisy
  return f(x_t, jnp.full(y_noisy.shape[:1], t, y_noisy.dtype))


EDITORS = {
    "inpaint": inpaint,
    "colorize": colorize,
    "superres": super_resolve,
    "stroke": stroke_edit,
    "denoise": denoise,
}

"""Zero-shot editing with a consistency model (CM Alg. 4).

Every task is an invertible linear map A with a binary mask Ω in A-space
(1 = generate, 0 = keep Ay). Each iteration projects the sample back onto the
known content: x ← A⁻¹[(Ay) ⊙ (1 − Ω) + (Ax) ⊙ Ω]. With an orthogonal A the
kept components are reproduced up to float32 rounding, and with A = I (inpainting)
exactly.

All editors take images NHWC in [−1, 1] and ``ts``, the descending times
t_1 > … > t_N.
"""

import jax
import jax.numpy as jnp
import numpy as np

from cm_jax.schedules import SIGMA_MIN

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


def _refine(f, key, x, ts, project, eps):
  """Alg. 4 lines 6–10: x ← project(f(x + √(t_n² − ε²)·z, t_n)) for n ≥ 2."""

  def step(x, item):
    t, step_key = item
    x = x + jnp.sqrt(t ** 2 - eps ** 2) * jax.random.normal(step_key, x.shape)
    return project(f(x, jnp.full(x.shape[:1], t))), None

  x, _ = jax.lax.scan(step, x, (ts[1:], jax.random.split(key, len(ts) - 1)))
  return x


def edit(f, key, y, ts, *, A, A_inv, omega, eps=SIGMA_MIN):
  """CM Alg. 4 for an invertible linear ``A`` (with inverse ``A_inv``) and a
  binary mask ``omega`` broadcastable to A(y) (1 = generate, 0 = keep)."""
  ts = jnp.asarray(ts, jnp.float32)
  Ay = A(y)

  def project(x):  # lines 5 and 9
    return A_inv(Ay * (1.0 - omega) + A(x) * omega)

  first_key, loop_key = jax.random.split(key)
  y = A_inv(Ay * (1.0 - omega))  # line 2
  x = y + ts[0] * jax.random.normal(first_key, y.shape)  # line 3
  x = project(f(x, jnp.full(x.shape[:1], ts[0])))  # lines 4–5
  return _refine(f, loop_key, x, ts, project, eps)


def inpaint(f, key, y, mask, ts, *, eps=SIGMA_MIN):
  """A = I, Ω = ``mask`` (y's shape, 1 = generate, 0 = keep).

  The output equals y exactly where mask = 0.
  """
  mask = jnp.asarray(mask, y.dtype)
  identity = lambda x: x
  # y·(1 − 0) + x·0 is y bit-for-bit for any finite x.
  return edit(f, key, y, ts, A=identity, A_inv=identity, omega=mask, eps=eps)


def colorize(f, key, y, ts, *, eps=SIGMA_MIN):
  """A = an orthogonal colour transform whose first channel is the luminance
  direction Y = 0.2989·R + 0.5870·G + 0.1140·B; Ω keeps that channel.

  ``y`` is RGB; only its luminance is used. The output's Y equals y's.
  """
  q = _orthonormal_basis(LUMA)
  A = lambda x: x @ q.T
  A_inv = lambda x: x @ q
  omega = jnp.array([0.0, 1.0, 1.0])
  return edit(f, key, y, ts, A=A, A_inv=A_inv, omega=omega, eps=eps)


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


def super_resolve(f, key, y_low, factor, ts, *, eps=SIGMA_MIN):
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
  return edit(f, key, y, ts, A=A, A_inv=A_inv, omega=omega, eps=eps)


def stroke_edit(f, key, y_stroke, ts, *, eps=SIGMA_MIN):
  """Stroke-guided generation (CM Fig. 6, SDEdit-style): A = I and Ω = 1, but
  started from the guide: x ~ N(y_stroke, t_1²I), then Alg. 1 refinement."""
  ts = jnp.asarray(ts, jnp.float32)
  first_key, loop_key = jax.random.split(key)
  x = y_stroke + ts[0] * jax.random.normal(first_key, y_stroke.shape)
  x = f(x, jnp.full(x.shape[:1], ts[0]))
  return _refine(f, loop_key, x, ts, lambda x: x, eps)


def denoise(f, key, y_noisy, sigma):
  """CM §6: an image with Gaussian noise of std σ lies on the PF-ODE at time σ,
  so f(y_noisy, σ) denoises it in one step. ``key`` is unused (kept for a
  uniform editor signature)."""
  del key
  return f(y_noisy, jnp.full(y_noisy.shape[:1], sigma, y_noisy.dtype))


EDITORS = {
    "inpaint": inpaint,
    "colorize": colorize,
    "superres": super_resolve,
    "stroke": stroke_edit,
    "denoise": denoise,
}

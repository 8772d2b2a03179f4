"""ECT (Geng et al. 2024): the mapping r(t), the stages, the boundary target,
and the pair loss against its continuous-time limit."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cm_jax import losses, processes
from cm_jax.nn import get_model, network


def test_mapping_and_stage_are_the_official_formulas():
  """r = t·(1 − q^−(s+1)·(1 + k/(1 + e^{bt}))) (sigmoid(−bt) written out)
  and s = ⌊k / K_stage⌋, for several q, k, b, s and t."""
  t = np.geomspace(1e-3, 100.0, 23)
  for q, k, b in [(2.0, 8.0, 1.0), (4.0, 8.0, 1.0), (2.0, 3.0, 0.5)]:
    for s in range(6):
      want = t * (1 - q ** -(s + 1) * (1 + k / (1 + np.exp(b * t))))
      got = losses.ect_mapping(jnp.asarray(t, jnp.float32), s, q=q, k=k, b=b)
      np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
  steps = np.array([0, 1, 999, 1000, 1001, 7999, 8000, 25_000])
  np.testing.assert_array_equal(losses.ect_stage(steps, 1000),
                                [0, 0, 0, 1, 1, 7, 8, 25])
  # Δt/t halves per stage (q = 2) where sigmoid(−t) ≈ 0 (large t).
  big = jnp.float32(50.0)
  gaps = [float(big - losses.ect_mapping(big, s)) for s in range(4)]
  np.testing.assert_allclose(np.array(gaps[1:]) / gaps[:-1], 0.5, rtol=1e-4)


def _tiny_consistency_fn():
  """f_θ of a small MLP with random (not near-zero) weights, VE process."""
  model = get_model(ml_collections.ConfigDict(dict(
      name="mlp", hidden=32, depth=2, embedding="positional")))
  x = jnp.zeros((4, 2))
  shapes = jax.eval_shape(model.init, jax.random.key(0), x, x[:, 0])
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: jnp.asarray(
      0.3 * rng.standard_normal(s.shape), s.dtype), shapes["params"])
  return processes.VE().consistency_fn(network(model, params))


def test_pair_loss_approaches_the_continuous_time_limit():
  """loss(t, r)/(t − r) → λ(t)·‖d/dt f(x0 + t·z, t)‖ as r → t; the gap
  shrinks in proportion to Δt (a first-order difference)."""
  f = _tiny_consistency_fn()
  kx, kz = jax.random.split(jax.random.key(1))
  x0 = 0.5 * jax.random.normal(kx, (4, 2))
  z = jax.random.normal(kz, (4, 2))
  t = jnp.full((4,), 0.7)
  _, dfdt = jax.jit(lambda t: jax.jvp(lambda t: f(x0 + t[:, None] * z, t),
                                      (t,), (jnp.ones(4),)))(t)
  limit = losses.ect_weight(t) * jnp.linalg.norm(dfdt, axis=-1)
  pair_loss = jax.jit(lambda r: losses.ect_pair_loss(f, f, x0, z, t, r))
  errors = []
  for dt in (1e-1, 1e-2, 1e-3):
    per_pair = pair_loss(t - dt)
    errors.append(float(jnp.max(jnp.abs(per_pair / dt - limit) / limit)))
  assert errors[0] > 5 * errors[1] > 25 * errors[2], errors
  assert errors[2] < 2e-3, errors


def test_boundary_target_and_lognormal_t():
  """P_std = 0 fixes t = e^{P_mean}; at stage 0 and small t, r(t) < 0, so the
  target is the boundary value x0 + ε·z itself: the loss is
  λ(t)·‖f(x0 + t·z, t) − (x0 + ε·z)‖, with (t_key, z_key) = split(key)."""
  f = _tiny_consistency_fn()
  x0 = 0.5 * jax.random.normal(jax.random.key(2), (4, 2))
  key = jax.random.key(3)
  t = float(np.exp(-2.0))
  assert losses.ect_mapping(t, 0) < 0
  loss = jax.jit(lambda stage: losses.easy_consistency_training_loss(
      f, f, x0, key, stage=stage, p_mean=-2.0, p_std=0.0))
  got = loss(0)
  z = jax.random.normal(jax.random.split(key)[1], x0.shape)
  tt = jnp.full((4,), t, jnp.float32)
  want = (1 / t ** 2 + 1 / 0.25) * jnp.linalg.norm(
      jax.jit(f)(x0 + t * z, tt) - (x0 + 0.002 * z), axis=-1)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # At a late stage r is near t and the loss is small against it.
  late = loss(12)
  assert float(late.max()) < 1e-2 * float(got.min())


def test_l2_norm_has_a_zero_gradient_at_zero():
  x = jnp.ones((2, 3))
  g = jax.grad(lambda x: losses.l2_norm(x, jnp.ones((2, 3))).sum())(x)
  assert np.all(np.isfinite(g)) and not np.any(g)
  np.testing.assert_allclose(losses.l2_norm(x, 0 * x), np.sqrt(3.0))

"""cm_jax.nn.group_norm against flax.linen.GroupNorm (+ SiLU): both
derivative rules (the default custom_jvp, and the fused custom_vjp of
``fused_backward()``) must give the same values and gradients."""

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np
import pytest

from cm_jax.nn.group_norm import GroupNorm, fused_backward


def _reference(x, scale, bias, groups, silu):
  y = nn.GroupNorm(num_groups=groups, epsilon=1e-6).apply(
      {"params": {"scale": scale, "bias": bias}}, x.astype(jnp.float32))
  return nn.silu(y) if silu else y


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize("shape,groups", [((3, 8, 8, 32), 8), ((2, 4, 6, 64), 32),
                                          ((2, 5, 5, 12), 3)])
def test_matches_flax_values_and_gradients(shape, groups, silu, fused):
  keys = jax.random.split(jax.random.key(0), 4)
  x = 3 * jax.random.normal(keys[0], shape) + 1.5  # a non-zero mean per group
  c = shape[-1]
  scale = 1 + 0.5 * jax.random.normal(keys[1], (c,))
  bias = 0.5 * jax.random.normal(keys[2], (c,))
  probe = jax.random.normal(keys[3], shape)  # L = <probe, y>
  ours = lambda x, s, b: GroupNorm(groups, 1e-6, silu).apply(
      {"params": {"scale": s, "bias": b}}, x)
  ref = lambda x, s, b: _reference(x, s, b, groups, silu)
  np.testing.assert_allclose(ours(x, scale, bias), ref(x, scale, bias),
                             atol=2e-5)
  loss = lambda f: lambda *a: jnp.vdot(probe, f(*a))
  with fused_backward(fused):
    g_ours = jax.grad(loss(ours), (0, 1, 2))(x, scale, bias)
  g_ref = jax.grad(loss(ref), (0, 1, 2))(x, scale, bias)
  for a, b in zip(g_ours, g_ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


def test_parameters_and_bfloat16_output_as_flax():
  x = jax.random.normal(jax.random.key(1), (2, 4, 4, 16))
  ours = GroupNorm(4, dtype=jnp.bfloat16)
  params = ours.init(jax.random.key(0), x)
  flax_params = nn.GroupNorm(num_groups=4).init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, flax_params)
  y = ours.apply(params, x.astype(jnp.bfloat16))
  assert y.dtype == jnp.bfloat16
  np.testing.assert_allclose(y.astype(jnp.float32),
                             _reference(x, *params["params"].values(), 4, False),
                             atol=0.05)
  dx = jax.grad(lambda x: ours.apply(params, x).astype(jnp.float32).sum())(
      x.astype(jnp.bfloat16))
  assert dx.dtype == jnp.bfloat16


def test_rejects_channels_not_divisible_by_groups():
  with pytest.raises(ValueError, match="divisible by 32 groups"):
    GroupNorm(32).init(jax.random.key(0), jnp.zeros((1, 2, 2, 48)))


def test_fused_backward_refuses_forward_mode_and_default_allows_it():
  x = jax.random.normal(jax.random.key(2), (1, 2, 2, 8))
  params = GroupNorm(2).init(jax.random.key(0), x)
  f = lambda x: GroupNorm(2).apply(params, x)
  jax.jvp(f, (x,), (x,))  # the default custom_jvp
  with fused_backward(), pytest.raises(TypeError, match="custom_vjp"):
    jax.jvp(f, (x,), (x,))

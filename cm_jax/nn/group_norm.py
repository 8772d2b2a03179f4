"""Group normalisation (Wu & He 2018), optionally fused with the SiLU after it.

Same numbers and parameters ("scale" γ, "bias" β) as ``flax.linen.GroupNorm``
(statistics in float32, var = E[x²] − E[x]²), written for speed on CPU:

- statistics are reduced over H, W first and then over the channels of a
  group; XLA:CPU reduces the flat [B, H·W, G, C/G] layout that Flax uses
  about 15× slower;
- the normalisation is folded to one multiply-add per element,
  y = a·x + b with a = γ·r and b = β − μ·a per (example, channel), where
  μ and r = 1/√(var + ε) are per (example, group);
- per-group values reach the channels through a small matrix product
  (``_per_channel``), so the big elementwise loops see plain per-channel
  operands;
- ``jax.custom_vjp`` gives the backward in closed form, one reduction and one
  elementwise pass (below), instead of the chain of broadcasts that autodiff
  of the forward produces.

At 32×32×64, batch 32, on one core of this project's CPU, forward +
backward of GroupNorm+SiLU takes 2.8 ms against 10.4 ms for
``flax.linen.GroupNorm`` followed by ``nn.silu``.

Backward. With x̂ = (x − μ)·r, z = γ·x̂ + β, y = act(z) and g = ∂L/∂z,
summing over the N = H·W·C/G elements of a group:
  ∂L/∂β = Σ_{b,h,w} g,   ∂L/∂γ = Σ_{b,h,w} g·x̂,
  ∂L/∂x = γ·r·g − r·m₁ − r·x̂·m₂,  m₁ = (1/N) Σ γ·g,  m₂ = (1/N) Σ γ·g·x̂,
which is again a multiply-add in x and g: A·g + B·x + C with per-(example,
channel) A = γ·r and per-(example, group) B = −r²·m₂, C = −r·m₁ + r²·m₂·μ.
Only S₁ = Σ_{h,w} g and S₂ = Σ_{h,w} g·x per (example, channel) need a pass
over the data: Σ g·x̂ = r·(S₂ − μ·S₁).
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np


class GroupNorm(nn.Module):
  """GroupNorm over the last axis of [B, H, W, C], then SiLU if ``silu``.

  Parameters and outputs match ``nn.GroupNorm(num_groups, epsilon=epsilon)``
  (followed by ``nn.silu``); ``dtype`` is the output dtype.
  """
  num_groups: int
  epsilon: float = 1e-6
  silu: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    if x.ndim != 4 or c % self.num_groups:
      raise ValueError(f"GroupNorm needs [B, H, W, C] with C divisible by "
                       f"{self.num_groups} groups; got shape {x.shape}.")
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    y = group_norm(x, scale, bias, self.num_groups, self.epsilon, self.silu)
    return y.astype(self.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def group_norm(x, scale, bias, num_groups, epsilon, silu):
  """act(γ·(x − μ)/√(var + ε) + β) over groups of channels of NHWC ``x``."""
  return _forward(x, scale, bias, num_groups, epsilon, silu)[0]


def _per_channel(v, channels):
  """[B, G] per-group values → [B, 1, 1, C] per channel.

  A matrix product with the one-hot [G, C] group membership, not a repeat:
  XLA:CPU fuses a repeat's index arithmetic into every element of the big
  elementwise loops that use the result (about 2× slower), while a dot's
  small output is materialised once.
  """
  b, g = v.shape
  member = np.repeat(np.eye(g, dtype=np.float32), channels // g, axis=1)
  # HIGHEST: TPUs (bf16 passes) and GPUs (TF32) would otherwise round v.
  per_channel = jnp.matmul(v, jnp.asarray(member),
                           precision=jax.lax.Precision.HIGHEST)
  return per_channel.reshape(b, 1, 1, channels)


def _affine(x, scale, bias, num_groups, epsilon):
  """(a, b, μ, r): y = a·x + b per (example, channel); μ, r per group."""
  b, h, w, c = x.shape
  xf = x.astype(jnp.float32)
  group_sum = lambda v: jnp.sum(v, axis=(1, 2)).reshape(b, num_groups, -1).sum(-1)
  n = h * w * (c // num_groups)
  mean = group_sum(xf) / n
  var = jnp.maximum(group_sum(xf * xf) / n - mean * mean, 0.0)
  r = jax.lax.rsqrt(var + epsilon)
  a = _per_channel(r, c) * scale
  return a, bias - _per_channel(mean * r, c) * scale, mean, r


def _act(z, silu):
  return z * jax.nn.sigmoid(z) if silu else z


def _forward(x, scale, bias, num_groups, epsilon, silu):
  a, b, mean, r = _affine(x, scale, bias, num_groups, epsilon)
  y = _act(x.astype(jnp.float32) * a + b, silu)
  return y.astype(x.dtype), (x, scale, a, b, mean, r)


def _backward(num_groups, epsilon, silu, residuals, dy):
  del epsilon  # r already holds it
  x, scale, a, b, mean, r = residuals
  bs, h, w, c = x.shape
  xf, g = x.astype(jnp.float32), dy.astype(jnp.float32)
  if silu:  # g = ∂L/∂z = dy · σ(z)·(1 + z·(1 − σ(z)))
    z = xf * a + b
    s = jax.nn.sigmoid(z)
    g = g * (s * (1 + z * (1 - s)))
  s1 = jnp.sum(g, axis=(1, 2))  # [B, C]
  s2 = jnp.sum(g * xf, axis=(1, 2))
  g_xhat = _per_channel(r, c)[:, 0, 0] * (s2 - _per_channel(mean, c)[:, 0, 0] * s1)
  n = h * w * (c // num_groups)
  group_mean = lambda v: v.reshape(bs, num_groups, -1).sum(-1) / n
  m1, m2 = group_mean(scale * s1), group_mean(scale * g_xhat)
  coef_x = _per_channel(-r * r * m2, c)
  const = _per_channel(-r * m1 + r * r * m2 * mean, c)
  dx = a * g + coef_x * xf + const
  return (dx.astype(x.dtype), jnp.sum(g_xhat, 0).astype(scale.dtype),
          jnp.sum(s1, 0).astype(scale.dtype))


group_norm.defvjp(_forward, _backward)

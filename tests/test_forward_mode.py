"""Forward-mode autodiff through every network: jax.jvp and jax.linearize
against central finite differences, and reverse mode through a JVP (what
sCM's tangent asks of F_θ⁻, and what a second-order method asks of θ)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from cm_jax.nn import Condition, get_model
from cm_jax.nn.group_norm import group_norm

# Every block kind: down/up resampling inside residual blocks, attention in
# the encoder, middle and decoder, NCSN++'s progressive (residual) input with
# its FIR downsample, labels, dropout off.
TINY_UNET = dict(name="unet", ch=16, ch_mult=(1, 2), num_res_blocks=1,
                 attn_resolutions=(8,), residual_input=True, num_classes=3)
TINY_MLP = dict(name="mlp", hidden=32, depth=2, embedding="positional")
TINY_AE = dict(name="autoencoder", ch=8, ch_mult=(1, 2), num_res_blocks=1,
               z_channels=2, out_channels=3)


def _flax_group_norm(x, scale, bias, groups, silu):
  y = nn.GroupNorm(num_groups=groups, epsilon=1e-6).apply(
      {"params": {"scale": scale, "bias": bias}}, x)
  return nn.silu(y) if silu else y


def _central_difference(f, primals, tangents, h):
  """(f(p + h·v) − f(p − h·v)) / 2h, an O(h²) estimate of the JVP."""
  shift = lambda s: [p + s * h * v for p, v in zip(primals, tangents)]
  return (f(*shift(1.0)) - f(*shift(-1.0))) / (2 * h)


def _rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("silu", [False, True])
def test_group_norm_jvp_matches_flax_and_finite_differences(silu):
  """The closed-form JVP against autodiff of Flax's GroupNorm (plain jnp) and
  against central differences in float64, in x, γ and β together."""
  with jax.enable_x64(True):
    ks = jax.random.split(jax.random.key(0), 6)
    shape, groups = (2, 4, 6, 16), 4
    x = 2 * jax.random.normal(ks[0], shape, jnp.float64) + 1.0
    scale = 1 + 0.3 * jax.random.normal(ks[1], (16,), jnp.float64)
    bias = 0.3 * jax.random.normal(ks[2], (16,), jnp.float64)
    tangents = (jax.random.normal(ks[3], shape, jnp.float64),
                jax.random.normal(ks[4], (16,), jnp.float64),
                jax.random.normal(ks[5], (16,), jnp.float64))
    ours = lambda x, s, b: group_norm(x, s, b, groups, 1e-6, silu)
    ref = lambda x, s, b: _flax_group_norm(x, s, b, groups, silu)
    jvp = lambda f: jax.jit(lambda p, t: jax.jvp(f, p, t))
    y, dy = jvp(ours)((x, scale, bias), tangents)
    y_ref, dy_ref = jvp(ref)((x, scale, bias), tangents)
    np.testing.assert_allclose(y, y_ref, atol=1e-10)
    np.testing.assert_allclose(dy, dy_ref, atol=1e-9)
    fd = _central_difference(jax.jit(ours), (x, scale, bias), tangents, 1e-5)
    assert _rel_err(dy, fd) < 1e-8


def test_group_norm_reverse_mode_through_its_jvp():
  """grad of a function of the JVP (jvp-then-grad) equals Flax's."""
  with jax.enable_x64(True):
    ks = jax.random.split(jax.random.key(1), 4)
    x = jax.random.normal(ks[0], (2, 4, 4, 8), jnp.float64)
    v = jax.random.normal(ks[1], x.shape, jnp.float64)
    probe = jax.random.normal(ks[2], x.shape, jnp.float64)
    scale = 1 + 0.3 * jax.random.normal(ks[3], (8,), jnp.float64)
    bias = jnp.zeros(8, jnp.float64)

    def loss(norm):
      def fn(x, scale):
        _, dy = jax.jvp(lambda x: norm(x, scale, bias, 2, True), (x,), (v,))
        return jnp.vdot(probe, jnp.sin(dy))
      return fn

    ours = jax.jit(jax.grad(loss(lambda x, s, b, groups, silu: group_norm(
        x, s, b, groups, 1e-6, silu)), (0, 1)))
    ref = jax.jit(jax.grad(loss(_flax_group_norm), (0, 1)))
    for a, b in zip(ours(x, scale), ref(x, scale)):
      np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def _network_case(base, shape):
  """(f(x, c) of a tiny network with random non-zero weights, x, c)."""
  model = get_model(ml_collections.ConfigDict(base))
  kx, kc, kp = jax.random.split(jax.random.key(2), 3)
  x = jax.random.normal(kx, shape)
  c = jax.random.normal(kc, shape[:1])
  labels = (jnp.arange(shape[0]) % 3) if base.get("num_classes") else None
  shapes = jax.eval_shape(model.init, jax.random.key(0), x,
                          Condition(c, labels=labels))
  rng = np.random.default_rng(0)
  params = jax.tree.map(  # every near-zero-initialised layer passes signal
      lambda s: jnp.asarray(0.2 * rng.standard_normal(s.shape), s.dtype),
      shapes["params"])
  if base["name"] == "autoencoder":
    f = lambda x, c: model.apply({"params": params}, x)[0]
  else:
    f = lambda x, c: model.apply({"params": params}, x,
                                 Condition(c, labels=labels))
  return f, x, c


@pytest.mark.parametrize("base,shape", [
    (TINY_UNET, (2, 16, 16, 3)),
    (TINY_MLP, (4, 2)),
    (TINY_AE, (2, 8, 8, 3)),
], ids=["unet", "mlp", "autoencoder"])
def test_network_jvp_and_linearize_match_finite_differences(base, shape):
  """jax.jvp in (x, c_noise) together, and jax.linearize's linear map, agree
  with central differences (float32, h = 2e-3: on the random-weight UNet the
  difference falls from 7% at h = 0.02 to 0.15% at 2e-3, and float32
  rounding keeps it near 0.13% below that)."""
  f, x, c = _network_case(base, shape)
  kv, kw = jax.random.split(jax.random.key(3))
  v = jax.random.normal(kv, x.shape)
  # A small tangent in c_noise: NCSN++'s Fourier features (scale 16) turn
  # through 2π·16 radians per unit of c_noise.
  w = 0.05 * jax.random.normal(kw, c.shape)
  jvp = jax.jit(lambda x, c, v, w: jax.jvp(f, (x, c), (v, w)))
  _, df = jvp(x, c, v, w)
  value = lambda x, c: jvp(x, c, 0 * v, 0 * w)[0]  # f, without a 2nd compile
  fd = _central_difference(value, (x, c), (v, w), 2e-3)
  assert np.linalg.norm(fd) > 0
  assert _rel_err(df, fd) < 5e-3, _rel_err(df, fd)
  linearized = jax.jit(lambda x, c, v, w: jax.linearize(f, x, c)[1](v, w))
  np.testing.assert_allclose(linearized(x, c, v, w), df, rtol=1e-4,
                             atol=1e-4 * np.abs(df).max())


@pytest.mark.parametrize("base,shape", [
    ({**TINY_UNET, "two_time": True, "embedding": "positional"},
     (2, 16, 16, 3)),
    ({**TINY_MLP, "two_time": True}, (4, 2)),
], ids=["unet", "mlp"])
def test_two_time_network_jvp_matches_finite_differences(base, shape):
  """A flow map's network u(x, c_noise, c_step) (model.two_time): the JVP in
  all three inputs at once (MeanFlow's tangent (v, ∂t, ∂r)) against
  central differences, and c_step changes the output."""
  model = get_model(ml_collections.ConfigDict(base))
  ks = jax.random.split(jax.random.key(4), 6)
  x, c, h = (jax.random.normal(ks[0], shape),
             jax.random.uniform(ks[1], shape[:1]),
             jax.random.uniform(ks[2], shape[:1]))
  labels = (jnp.arange(shape[0]) % 3) if base.get("num_classes") else None
  cond = lambda c, h: Condition(c, c_step=h, labels=labels)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x, cond(c, h))
  rng = np.random.default_rng(1)
  params = jax.tree.map(
      lambda s: jnp.asarray(0.2 * rng.standard_normal(s.shape), s.dtype),
      shapes["params"])
  f = lambda x, c, h: model.apply({"params": params}, x, cond(c, h))
  tangents = (jax.random.normal(ks[3], x.shape),
              0.05 * jax.random.normal(ks[4], c.shape),
              0.05 * jax.random.normal(ks[5], h.shape))
  jvp = jax.jit(lambda p, t: jax.jvp(f, p, t))
  out, df = jvp((x, c, h), tangents)
  value = lambda *p: jvp(p, tuple(0 * t for t in tangents))[0]
  fd = _central_difference(value, (x, c, h), tangents, 2e-3)
  assert _rel_err(df, fd) < 5e-3, _rel_err(df, fd)
  assert _rel_err(value(x, c, h + 0.5), out) > 1e-3  # c_step is read
  with pytest.raises(ValueError, match="needs cond.c_step"):
    model.apply({"params": params}, x, Condition(c, labels=labels))

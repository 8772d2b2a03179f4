"""cm_jax.nn: call convention, dropout, conditioning, registry, size, tracing."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from cm_jax.nn import Condition, get_model
from cm_jax.nn.group_norm import fused_backward

TINY_UNET = dict(name="unet", ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,))
TINY_MLP = dict(name="mlp", hidden=32, depth=2)
IMAGE = (2, 16, 16, 3)
POINTS = (2, 2)


def make(base, **overrides):
  return get_model(ml_collections.ConfigDict({**base, **overrides}))


def inputs(shape, seed=0):
  kx, kc = jax.random.split(jax.random.key(seed))
  return jax.random.normal(kx, shape), jax.random.normal(kc, shape[:1])


def init(model, shape, **kw):
  """The real initialisation. An rbg key: threefry init compiles ~4× slower on CPU."""
  x, c = inputs(shape)
  return jax.jit(model.init)(jax.random.key(0, impl="rbg"), x,
                             Condition(c, **kw))["params"]


def random_params(model, shape, scale=0.1, **kw):
  """Gaussian parameters of the model's structure, cheap to make (NumPy).

  Unlike `init`, every near-zero-initialised conv passes signal, so effects of
  labels and dropout on the output are large.
  """
  x, c = inputs(shape)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x,
                          Condition(c, **kw))["params"]
  rng = np.random.default_rng(0)
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype),
                      shapes)


def jit_apply(model):
  def apply(params, x, c, key=None, train=False, **kw):
    rngs = {"dropout": key} if key is not None else {}
    return model.apply({"params": params}, x, Condition(c, **kw), train=train,
                       rngs=rngs)
  return jax.jit(apply, static_argnames="train")


@pytest.mark.parametrize("base,shape", [
    (TINY_UNET, IMAGE),
    (TINY_UNET, (2, 8, 8, 1)),
    (TINY_MLP, POINTS),
])
def test_output_has_input_shape_and_float32(base, shape):
  model = make(base)
  x, c = inputs(shape)
  out = jit_apply(model)(random_params(model, shape), x, c)
  assert out.shape == shape and out.dtype == jnp.float32
  assert np.all(np.isfinite(out))


def test_bfloat16_compute_gives_float32_output():
  model = make(TINY_UNET, dtype="bfloat16")
  params = random_params(model, IMAGE)
  x, c = inputs(IMAGE)
  out = jit_apply(model)(params, x, c)
  assert out.shape == IMAGE and out.dtype == jnp.float32
  assert np.all(np.isfinite(out))


@pytest.mark.parametrize("base", [
    dict(TINY_UNET, dropout=0.1),
    dict(name="autoencoder", ch=16, ch_mult=(1, 2), num_res_blocks=1)])
def test_bfloat16_compute_keeps_the_activations_bfloat16(base):
  """What the backward pass keeps (the vjp's residuals) of every feature map
  is bf16. Per-channel statistics, the attention probabilities (softmax in
  f32) and the autoencoder's latent (μ, log σ², z: 4 channels) stay f32.
  A float64 NumPy scalar in a residual sum once promoted the whole bf16
  residual stream to float32: 2.1 GiB more at paper size, batch 128.
  (GroupNorm's forward-mode-ready custom_jvp, which sCM's step uses, keeps
  float32 copies; the fused backward keeps x alone.)"""
  model = make(base, dtype="bfloat16")
  params = random_params(model, IMAGE)
  x, c = inputs(IMAGE)

  def residuals(params, x, c):
    fwd = lambda p, x: model.apply({"params": p}, x, Condition(c), train=True,
                                   rngs={"dropout": jax.random.key(0)})
    return jax.tree.leaves(jax.vjp(fwd, params, x)[1])

  with fused_backward():  # as the train step of reverse-mode-only methods
    saved = jax.eval_shape(residuals, params, x, c)
  spatial = [r for r in saved if r.ndim == 4 and r.shape[0] == IMAGE[0]
             and r.shape[1] * r.shape[2] > 1 and r.shape[3] >= base["ch"]]
  assert len(spatial) > 20
  float32 = [r.shape for r in spatial if r.dtype == jnp.float32]
  assert not float32, f"float32 activations saved in a bf16 model: {float32}"


@pytest.mark.parametrize("base,shape", [(TINY_UNET, IMAGE), (TINY_MLP, POINTS)])
def test_dropout_only_in_training(base, shape):
  model = make(base, dropout=0.5)
  params = random_params(model, shape)
  x, c = inputs(shape)
  apply = jit_apply(model)
  k1, k2 = jax.random.key(1), jax.random.key(2)
  assert not np.allclose(apply(params, x, c, k1, train=True), apply(params, x, c, k2, train=True))
  np.testing.assert_array_equal(apply(params, x, c, k1), apply(params, x, c, k2))


def test_class_labels_change_output_and_null_label_works():
  model = make(TINY_UNET, num_classes=3)
  params = random_params(model, IMAGE)
  assert params["embed"]["label"]["embedding"].shape[0] == 4  # + null row
  x, c = inputs(IMAGE)
  apply = jit_apply(model)
  out = {y: apply(params, x, c, labels=jnp.full((2,), y, jnp.int32)) for y in range(4)}
  assert not np.allclose(out[0], out[1])
  assert np.all(np.isfinite(out[3]))
  np.testing.assert_array_equal(apply(params, x, c), out[3])  # labels=None: the null class


def test_labels_rejected_without_classes():
  model = make(TINY_MLP)
  x, c = inputs(POINTS)
  with pytest.raises(ValueError, match="num_classes"):
    model.init(jax.random.key(0), x,
               Condition(c, labels=jnp.zeros((2,), jnp.int32)))


@pytest.mark.parametrize("base,shape", [(TINY_UNET, IMAGE), (TINY_MLP, POINTS)])
def test_w_conditioning_is_a_no_op_at_init_but_trains(base, shape):
  model = make(base, w_embedding=True)
  params = init(model, shape, w=jnp.ones(shape[:1]))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  x, c = inputs(shape)
  apply = jit_apply(model)
  np.testing.assert_array_equal(apply(params, x, c, w=jnp.full((2,), 2.0)),
                                apply(params, x, c, w=jnp.full((2,), 14.0)))

  def loss(w_kernel):  # the gradient reaching the zero-initialised projection
    p = {**params, "embed": {**params["embed"], "w_proj": {"kernel": w_kernel}}}
    return jnp.sum(apply(p, x, c, w=jnp.array([2.0, 9.0])) * x)

  grad = jax.jit(jax.grad(loss))(params["embed"]["w_proj"]["kernel"])
  assert np.all(np.isfinite(grad)) and np.any(grad != 0)


@pytest.mark.parametrize("base,shape", [(TINY_UNET, IMAGE), (TINY_MLP, POINTS)])
def test_zero_context_is_the_null_context_and_context_conditions(base, shape):
  model = make(base, context_dim=5, num_classes=3)
  params = random_params(model, shape)
  kernel = params["embed"]["context"]["kernel"]
  assert kernel.shape[0] == 5 and "bias" in params["embed"]["context"]
  x, c = inputs(shape)
  apply = jit_apply(model)
  ctx = jax.random.normal(jax.random.key(3), (2, 5))
  null = apply(params, x, c)  # context=None: the null context
  np.testing.assert_array_equal(apply(params, x, c, context=jnp.zeros((2, 5))),
                                null)
  if base is TINY_UNET:  # the same ConditionEmbedding: one UNet check is enough
    return
  assert not np.allclose(apply(params, x, c, context=ctx), null)
  # Label and context condition together; each changes the output.
  y = jnp.array([0, 1], jnp.int32)
  assert not np.allclose(apply(params, x, c, labels=y, context=ctx),
                         apply(params, x, c, context=ctx))


def test_context_errors_say_how_to_fix():
  x, c = inputs(POINTS)
  with pytest.raises(ValueError, match="context_dim=4"):
    make(TINY_MLP).init(jax.random.key(0), x,
                        Condition(c, context=jnp.zeros((2, 4))))
  with pytest.raises(ValueError, match=r"\[2, 3\], got \[2, 4\]"):
    make(TINY_MLP, context_dim=3).init(
        jax.random.key(0), x, Condition(c, context=jnp.zeros((2, 4))))


def test_get_model_rejects_unknown_names_and_fields():
  with pytest.raises(ValueError, match="valid: autoencoder, dit, imf_dit, mlp, unet"):
    make(TINY_UNET, name="transformer")
  with pytest.raises(ValueError, match=r"model\.width.*valid fields: hidden"):
    make(TINY_MLP, width=3)
  with pytest.raises(ValueError, match="valid: fourier, positional"):
    model = make(TINY_MLP, embedding="learned")
    init(model, POINTS)


def test_paper_config_has_cifar10_size():
  """CM/EDM CIFAR-10 NCSN++: 128 ch, mult (2,2,2), 4 blocks, attention at 16."""
  model = make(dict(name="unet", ch=128, ch_mult=(2, 2, 2), num_res_blocks=4,
                    attn_resolutions=(16,), fourier_scale=16.0))
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                          Condition(jnp.zeros((1,))))
  count = sum(p.size for p in jax.tree.leaves(shapes))
  assert 50e6 <= count <= 65e6, count


def test_apply_traces_once():
  model = make(TINY_UNET)
  params = random_params(model, IMAGE)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def forward(params, x, c):
    return model.apply({"params": params}, x, Condition(c))

  for seed in (0, 1):
    forward(params, *inputs(IMAGE, seed))


@pytest.mark.parametrize("filt", [(1, 1), (1, 3, 3, 1), (1, 2, 1)])
def test_resample_matches_the_depthwise_conv(filt):
  """The slice-based FIR resampling equals EDM's depthwise (transposed) conv,
  values and gradients, up and down, on even and odd sizes."""
  from cm_jax.nn import unet  # pylint: disable=g-import-not-at-top

  @jax.jit
  def outputs_and_grads(xs):
    """{(fn, shape, direction): (y, the vjp of a fixed cotangent)}."""
    result = {}
    for x in xs:
      for direction in ("down", "up"):
        for name, fn in (("fast", unet.resample),
                         ("conv", unet._resample_conv)):
          y, vjp = jax.vjp(lambda x: fn(x, filt, direction), x)
          cotangent = jnp.sin(jnp.arange(y.size).reshape(y.shape))
          result[name, x.shape, direction] = y, vjp(cotangent)[0]
    return result

  xs = [jax.random.normal(jax.random.key(0), s)
        for s in [(2, 8, 8, 3), (1, 7, 5, 2)]]
  result = outputs_and_grads(xs)
  for (name, shape, direction), (y, grad) in result.items():
    if name == "fast":
      y_conv, grad_conv = result["conv", shape, direction]
      assert y.shape == y_conv.shape
      np.testing.assert_allclose(y, y_conv, atol=1e-6)
      np.testing.assert_allclose(grad, grad_conv, atol=1e-5)


def _conv_downsample_2d_reference(x, kernel, bias, filt):
  """The official NCSN++ aux downsample written out again in float64 loops:
  pad by p = len(filt) (split ⌈p/2⌉, ⌊p/2⌋), correlate with the normalised
  filt ⊗ filt at stride 1, a 3×3 VALID conv at stride 2, then the bias."""
  x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
  f = np.outer(filt, filt) / np.sum(filt) ** 2
  p = len(filt)
  xp = np.pad(x, [(0, 0), ((p + 1) // 2, p // 2), ((p + 1) // 2, p // 2),
                  (0, 0)])
  k = len(filt)
  blur = np.zeros((x.shape[0], xp.shape[1] - k + 1, xp.shape[2] - k + 1,
                   x.shape[3]))
  for i in range(blur.shape[1]):
    for j in range(blur.shape[2]):
      blur[:, i, j] = np.einsum("nabc,ab->nc", xp[:, i:i + k, j:j + k], f)
  out = np.zeros((x.shape[0], (blur.shape[1] - 3) // 2 + 1,
                  (blur.shape[2] - 3) // 2 + 1, kernel.shape[3]))
  for i in range(out.shape[1]):
    for j in range(out.shape[2]):
      window = blur[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
      out[:, i, j] = np.einsum("nabc,abcd->nd", window, kernel)
  return out + np.asarray(bias, np.float64)


@pytest.mark.parametrize("filt", [(1, 3, 3, 1), (1, 1)])
def test_aux_downsample_is_the_official_conv_downsample_2d(filt):
  """NCSN++'s progressive-input path (`enc*_aux`) against the official
  computation written out independently, border rows and columns included;
  and the interior still equals the old conv-then-FIR-down, whose borders
  differed (the conv padded with zeros before the blur)."""
  from cm_jax.nn import unet  # pylint: disable=g-import-not-at-top
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  module = unet.DownsampleConv(4, filt)
  params = module.init(jax.random.key(1), x)["params"]
  params["bias"] = jnp.arange(4.0) / 10  # a bias that shows where it goes
  y = module.apply({"params": params}, x)
  want = _conv_downsample_2d_reference(x, params["kernel"], params["bias"],
                                       filt)
  assert y.shape == want.shape == (2, 4, 4, 4)
  np.testing.assert_allclose(y, want, atol=2e-6)
  old = unet.resample(jax.lax.conv_general_dilated(
      x, params["kernel"], (1, 1), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC")) + params["bias"], filt,
                      "down")
  if len(filt) == 2:  # the box filter never reaches the padding: identical
    np.testing.assert_allclose(y, old, atol=2e-6)
  else:
    np.testing.assert_allclose(y[:, 1:-1, 1:-1], old[:, 1:-1, 1:-1],
                               atol=2e-6)
    assert np.abs(y - old).max() > 1e-3


def test_aux_downsample_keeps_the_checkpoint_layout():
  """The residual-input UNet's `enc*_aux` parameters are an nn.Conv's
  (kernel [3, 3, C_in, C_out], bias), initialised with the same draws."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from cm_jax.nn import unet  # pylint: disable=g-import-not-at-top
  x = jnp.ones((1, 8, 8, 3))
  new = unet.DownsampleConv(6).init(jax.random.key(2), x)["params"]
  conv = nn.Conv(6, (3, 3), kernel_init=unet.XAVIER).init(
      jax.random.key(2), x)["params"]
  chex.assert_trees_all_equal(new, conv)

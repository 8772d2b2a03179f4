"""DiT (cm_jax/nn/dit.py): parameter counts written out layer by layer,
adaLN-Zero's zero output at initialisation, the position embedding's
formula, forward mode against finite differences, and, where torch, timm
and a checkout of facebookresearch/DiT are present, the official network's
output (scripts/compare_official_dit.py)."""

import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from cm_jax.nn import Condition, dit, embeddings, get_model
from configs import base

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _count(model, shape, cond):
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape),
                          cond)
  return sum(math.prod(s.shape) for s in jax.tree.leaves(shapes))


def _written_out_count(d, depth, p, c_in, c_out, classes, times=1,
                       freq=256, ratio=4):
  """Each Linear's weight and bias of DiT (Peebles & Xie Fig. 3)."""
  linear = lambda i, o: i * o + o
  block = (linear(d, 3 * d) + linear(d, d) + linear(d, ratio * d)
           + linear(ratio * d, d) + linear(d, 6 * d))
  embed = (linear(p * p * c_in, d)
           + times * (linear(freq, d) + linear(d, d))
           + (classes + 1) * d)
  final = linear(d, 2 * d) + linear(d, p * p * c_out)
  return embed + depth * block + final


@pytest.mark.parametrize("size,patch,want", [
    ("S", 2, None), ("B", 4, None),
    # DiT-XL/2 as the paper trains it (4 → 8 channels, learned σ):
    # facebookresearch/DiT counts 675,129,632 with its frozen 256 × 1152
    # position embedding, which is no parameter here.
    ("XL", 2, 675_129_632 - 256 * 1152)])
def test_parameter_counts(size, patch, want):
  c = base.get_base_config()
  base.set_dit(c, size, patch)
  c.model.num_classes, c.model.out_channels = 1000, 8
  model = get_model(c.model)
  cond = Condition(jnp.zeros((1,)), labels=jnp.zeros((1,), jnp.int32))
  got = _count(model, (1, 32, 32, 4), cond)
  depth, d, _ = dit.SIZES[size]
  assert got == _written_out_count(d, depth, patch, 4, 8, 1000)
  if want:
    assert got == want


def test_two_time_adds_one_time_embedder():
  """MeanFlow's DiT: a second embedder for t − r (Linear 256 → D, D → D)."""
  model = dit.DiT(patch_size=2, hidden_size=64, depth=2, num_heads=4,
                  num_classes=10, two_time=True)
  cond = Condition(jnp.zeros((1,)), c_step=jnp.zeros((1,)),
                   labels=jnp.zeros((1,), jnp.int32))
  assert _count(model, (1, 8, 8, 4), cond) == _written_out_count(
      64, 2, 2, 4, 4, 10, times=2)


def _tiny(two_time=True):
  return dit.DiT(patch_size=2, hidden_size=32, depth=2, num_heads=4,
                 num_classes=3, two_time=two_time)


def _random_params(model, x, cond, seed=0):
  shapes = jax.eval_shape(model.init, jax.random.key(0), x, cond)["params"]
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda s: jnp.asarray(0.2 * rng.standard_normal(s.shape), s.dtype),
      shapes)


def test_adaln_zero_output_is_zero_at_initialisation():
  model = _tiny()
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  cond = Condition(jnp.array([0.3, 0.9]), c_step=jnp.array([0.1, 0.0]),
                   labels=jnp.array([0, 3]))
  params = model.init(jax.random.key(2), x, cond)
  assert float(jnp.abs(model.apply(params, x, cond)).max()) == 0.0


def test_position_embedding_formula():
  """Token (row i, column j) of a g×g map: [sin(j·ω), cos(j·ω), sin(i·ω),
  cos(i·ω)], ω_k = 10000^(−k/(D/4)), written out for D = 8, g = 3."""
  emb = dit.sincos_position_embedding(8, 3)
  omega = np.array([1.0, 0.01])
  for i in range(3):
    for j in range(3):
      want = np.concatenate([np.sin(j * omega), np.cos(j * omega),
                             np.sin(i * omega), np.cos(i * omega)])
      np.testing.assert_allclose(emb[i * 3 + j], want, rtol=1e-6, atol=1e-7)


def test_dit_jvp_matches_finite_differences():
  """jax.jvp in (x, c_noise, c_step) at once, through the attention of
  ``jax.nn.dot_product_attention``, against central differences."""
  model = _tiny()
  ks = jax.random.split(jax.random.key(3), 6)
  x = jax.random.normal(ks[0], (2, 8, 8, 3))
  t = jax.random.uniform(ks[1], (2,))
  h = jax.random.uniform(ks[2], (2,))
  labels = jnp.array([1, 3])
  params = _random_params(model, x, Condition(t, c_step=h, labels=labels))
  f = lambda x, t, h: model.apply({"params": params}, x,
                                  Condition(t, c_step=h, labels=labels))
  tangents = (jax.random.normal(ks[3], x.shape),
              0.1 * jax.random.normal(ks[4], t.shape),
              0.1 * jax.random.normal(ks[5], h.shape))
  jvp = jax.jit(lambda p, v: jax.jvp(f, p, v))
  out, df = jvp((x, t, h), tangents)
  value = lambda *p: jvp(p, tuple(0 * v for v in tangents))[0]
  eps = 2e-3
  fd = (value(*[p + eps * v for p, v in zip((x, t, h), tangents)])
        - value(*[p - eps * v for p, v in zip((x, t, h), tangents)])) / (
            2 * eps)
  err = np.linalg.norm(df - fd) / np.linalg.norm(fd)
  assert err < 5e-3, err
  assert float(jnp.abs(out).max()) > 0
  # The second time is read: changing t − r changes the output.
  assert float(jnp.abs(value(x, t, h + 0.3) - out).max()) > 1e-3


def test_dit_refuses_inputs_it_does_not_take():
  model = _tiny(two_time=False)
  x = jnp.zeros((1, 8, 8, 3))
  with pytest.raises(ValueError, match="takes no context"):
    model.init(jax.random.key(0), x,
               Condition(jnp.zeros((1,)), context=jnp.zeros((1, 4))))
  with pytest.raises(ValueError, match="multiple of model.patch_size"):
    model.init(jax.random.key(0), jnp.zeros((1, 7, 7, 3)),
               Condition(jnp.zeros((1,))))


def test_dit_config_builds_from_set_dit():
  c = base.get_base_config()
  base.set_dit(c, "S", 4)
  model = get_model(ml_collections.ConfigDict(c.model))
  assert (model.depth, model.hidden_size, model.num_heads,
          model.patch_size) == (12, 384, 6, 4)


def _official_checkout():
  path = os.environ.get("CM_JAX_OFFICIAL_DIT", "/tmp/official_dit")
  if not os.path.isfile(os.path.join(path, "models.py")):
    pytest.skip(f"no facebookresearch/DiT checkout at {path} "
                "(set CM_JAX_OFFICIAL_DIT)")
  pytest.importorskip("torch")
  pytest.importorskip("timm")
  return path


def test_matches_the_official_dit():
  path = _official_checkout()
  spec = importlib.util.spec_from_file_location(
      "compare_official_dit",
      os.path.join(REPO, "scripts", "compare_official_dit.py"))
  compare = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(compare)
  models = compare.load_official(path)
  for learn_sigma in (False, True):
    diff, std, _ = compare.compare(
        models, dict(depth=2, hidden_size=64, patch_size=2, num_heads=4),
        learn_sigma)
    assert diff < 1e-4 * max(std, 1.0), (diff, std)


@pytest.mark.parametrize("size,depth,width", [("b2", 12, 768), ("m2", 16, 1024),
                                              ("l2", 24, 1024),
                                              ("xl2", 28, 1152)])
def test_meanflow_imagenet_sizes(size, depth, width):
  """configs/meanflow_imagenet256.py:size=…: MeanFlow's DiT and its row of
  Table 4's guidance."""
  from configs import meanflow_imagenet256  # pylint: disable=g-import-not-at-top
  c = meanflow_imagenet256.get_config(f"size={size}")
  assert (c.model.depth, c.model.hidden_size, c.model.patch_size) == (
      depth, width, 2)
  assert c.model.two_time and c.model.num_classes == 1000
  omega, kappa = c.meanflow.omega, c.meanflow.kappa
  assert omega / (1 - kappa) == pytest.approx(2.0 if size in ("b2", "m2")
                                              else 2.5)
  with pytest.raises(ValueError, match="valid: b2, m2, l2, xl2"):
    meanflow_imagenet256.get_config("size=h2")


def test_v_head_branches_beside_the_last_blocks():
  """iMF's auxiliary head (v_head_depth = 1 of depth 2): return_v gives
  (u, v) with u the plain output; the v branch has its own block and final
  layer, so u and v differ once the weights are random."""
  model = dit.DiT(patch_size=2, hidden_size=32, depth=2, num_heads=4,
                  two_time=True, v_head_depth=1)
  x = jax.random.normal(jax.random.key(5), (2, 8, 8, 3))
  cond = Condition(jnp.array([0.3, 0.9]), c_step=jnp.array([0.1, 0.0]))
  params = _random_params(model, x, cond)
  assert "v_block1" in params and "v_final_linear" in params
  u, v = model.apply({"params": params}, x, cond, return_v=True)
  np.testing.assert_array_equal(u, model.apply({"params": params}, x, cond))
  assert float(jnp.abs(u - v).max()) > 1e-3
  with pytest.raises(ValueError, match="v_head_depth"):
    _tiny().apply(_tiny().init(jax.random.key(0), x, cond.replace(
        labels=None)), x, cond, return_v=True)


def test_guidance_inputs_add_three_time_embedders_of_1_minus_1_over_omega():
  """iMF's guidance inputs: three more time embedders (Linear 256 → D, D →
  D each), reading 1 − 1/ω, t_min and t_max; ω and the interval move the
  output; a DiT with them refuses a call without them."""
  model = dit.DiT(patch_size=2, hidden_size=64, depth=2, num_heads=4,
                  num_classes=10, two_time=True, guidance_inputs=True)
  guidance = jnp.array([[2.0, 0.1, 0.8]])
  cond = Condition(jnp.zeros((1,)), c_step=jnp.zeros((1,)),
                   labels=jnp.zeros((1,), jnp.int32), guidance=guidance)
  assert _count(model, (1, 8, 8, 4), cond) == _written_out_count(
      64, 2, 2, 4, 4, 10, times=5)
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  params = _random_params(model, x, cond)
  out = lambda g: model.apply({"params": params}, x, cond.replace(
      c_noise=jnp.full((2,), 0.5), c_step=jnp.full((2,), 0.2),
      labels=jnp.array([1, 2]), guidance=jnp.tile(jnp.array([g]), (2, 1))))
  assert float(jnp.abs(out([1.0, 0.0, 1.0]) - out([4.0, 0.0, 1.0])).max()) > 1e-3
  assert float(jnp.abs(out([4.0, 0.0, 1.0]) - out([4.0, 0.2, 1.0])).max()) > 1e-3
  # ω enters as 1 − 1/ω (imfDiT's omega_embedder(1 - 1 / w)).
  features = embeddings.guidance_features(jnp.array([[4.0, 0.2, 0.9]]))
  np.testing.assert_allclose([float(features[k][0]) for k in (
      "omega", "t_min", "t_max")], [0.75, 0.2, 0.9], rtol=1e-6)
  with pytest.raises(ValueError, match="guidance_inputs=True"):
    model.apply({"params": params}, x, cond.replace(
        c_noise=jnp.zeros((2,)), c_step=jnp.zeros((2,)), labels=None,
        guidance=None))

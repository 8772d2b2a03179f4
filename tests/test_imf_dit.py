"""iMF's in-context DiT (cm_jax/nn/imf_dit.py): its parameter count written
out layer by layer and equal to the official imfDiT-B/2's, RoPE's and
RMSNorm's formulas, the time input it reads (h = t − r alone), conditions
as prefix tokens, forward mode against finite differences, an iMF step
through it, and, where a checkout of Lyy-iiis/imeanflow is present, the
official network's output (scripts/compare_official_imf_dit.py)."""

import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax import methods
from cm_jax.nn import Condition, get_model, imf_dit, network
from configs import base

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _count(model, shape, cond):
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape),
                          cond)
  return sum(math.prod(s.shape) for s in jax.tree.leaves(shapes))


def _written_out_count(d, depth, heads, head_depth, p, c, classes,
                       freq=256):
  """Each array of imfDiT: patch Linear, four time embedders (h, ω, t_min,
  t_max: Linear freq → D, D → D with biases), the label table, 20 tokens,
  depth + head_depth blocks (q, k, v, out D × D; SwiGLU 3·D·⌊8D/3⌋; four
  norm scales; two gate vectors) and two final layers."""
  hidden = int(d * 8 / 3)
  block = 4 * d * d + 3 * d * hidden + 2 * (d // heads) + 2 * d + 2 * d
  final = d + d * p * p * c + p * p * c
  embed = p * p * c * d + d + 4 * (freq * d + d + d * d + d)
  return (embed + (classes + 1) * d + (8 + 4 + 2 + 2 + 4) * d
          + (depth + head_depth) * block + 2 * final)


def _b2():
  c = base.get_base_config()
  base.set_imf_dit(c, "B")
  c.model.num_classes, c.model.guidance_inputs = 1000, True
  return get_model(c.model)


def _cond(b, classes=1000, guided=True):
  return Condition(jnp.zeros((b,)), c_step=jnp.zeros((b,)),
                   labels=jnp.zeros((b,), jnp.int32) if classes else None,
                   guidance=jnp.ones((b, 3)) if guided else None)


def test_b2_parameter_count_is_the_official_one():
  """145,596,960: the count of the official imfDiT_B_2 (1,000 classes) that
  scripts/compare_official_imf_dit.py measures; without the 8-block v head
  (not needed to sample) the paper's 89M."""
  got = _count(_b2(), (1, 32, 32, 4), _cond(1))
  assert got == _written_out_count(768, 12, 12, 8, 2, 4, 1000)
  assert got == 145_596_960
  block = 4 * 768 ** 2 + 3 * 768 * 2048 + 2 * 64 + 4 * 768
  assert round((got - 8 * block) / 1e6) == 89


def test_unconditional_unguided_has_only_the_time_tokens():
  model = imf_dit.ImfDiT(hidden_size=32, depth=2, num_heads=4,
                         v_head_depth=1)
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, 8, 8, 3)), _cond(1, 0, False))
  tokens = sorted(k for k in shapes["params"] if k.endswith("_tokens"))
  assert tokens == ["time_tokens"]
  assert shapes["params"]["time_tokens"].shape == (4, 32)


def test_rms_norm_formula():
  x = jnp.array([[3.0, -4.0, 0.0, 1.0]])
  scale = jnp.array([1.0, 2.0, 0.5, -1.0])
  want = np.array([3.0, -4.0, 0.0, 1.0]) / np.sqrt(26 / 4 + 1e-6) * np.array(
      [1.0, 2.0, 0.5, -1.0])
  np.testing.assert_allclose(imf_dit.rms_norm(x, scale), [want], rtol=1e-6)


def test_rope_rotates_each_pair_by_its_position_angle():
  """Head width 4 at position 3: pair 0 turns by 3·10000^0 = 3 rad, pair 1
  by 3·10000^(−1/2) = 0.03 rad (RoPE eq. 15, written out)."""
  x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 5, 1, 4)),
                  jnp.float32)
  got = imf_dit.apply_rope(x, imf_dit.rope_angles(5, 4))[0, 3, 0]
  a, b, c, d = np.asarray(x[0, 3, 0])
  want = [a * np.cos(3) - b * np.sin(3), a * np.sin(3) + b * np.cos(3),
          c * np.cos(.03) - d * np.sin(.03), c * np.sin(.03) + d * np.cos(.03)]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(imf_dit.apply_rope(x, imf_dit.rope_angles(5, 4))
                             [0, 0], x[0, 0], atol=0)  # position 0: identity


def test_rope_scores_depend_on_the_offset_alone():
  """⟨R_m q, R_n k⟩ = ⟨R_{m+s} q, R_{n+s} k⟩: attention sees relative
  positions."""
  rng = np.random.default_rng(1)
  q, k = (jnp.asarray(rng.standard_normal((1, 1, 1, 8)), jnp.float32)
          for _ in range(2))
  angles = imf_dit.rope_angles(12, 8)
  at = lambda x, m: imf_dit.apply_rope(jnp.tile(x, (1, 12, 1, 1)),
                                       angles)[0, m, 0]
  score = lambda m, n: float(jnp.dot(at(q, m), at(k, n)))
  assert score(2, 7) == pytest.approx(score(6, 11), rel=1e-5)
  assert score(2, 7) != pytest.approx(score(2, 8), rel=1e-3)


def _tiny(**kw):
  return imf_dit.ImfDiT(**{**dict(patch_size=2, hidden_size=32, depth=3,
                                  num_heads=4, v_head_depth=1, num_classes=3,
                                  guidance_inputs=True), **kw})


def _random_params(model, x, cond, seed=0):
  shapes = jax.eval_shape(model.init, jax.random.key(0), x, cond)["params"]
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype),
      shapes)


def _inputs(seed=1):
  ks = jax.random.split(jax.random.key(seed), 4)
  x = jax.random.normal(ks[0], (2, 8, 8, 3))
  t = jax.random.uniform(ks[1], (2,))
  h = jax.random.uniform(ks[2], (2,)) * t
  guidance = jnp.array([[3.0, 0.2, 0.7], [1.0, 0.0, 1.0]])
  return x, Condition(t, c_step=h, labels=jnp.array([0, 3]),
                      guidance=guidance), ks[3]


def test_output_is_zero_at_initialisation():
  model = _tiny()
  x, cond, _ = _inputs()
  params = model.init(jax.random.key(2), x, cond)
  u, v = model.apply(params, x, cond, return_v=True)
  assert float(jnp.abs(u).max()) == 0.0 and float(jnp.abs(v).max()) == 0.0


def test_time_input_is_h_alone_or_t_alone():
  """two_time=True reads h = t − r (c_step) and not t; False the reverse."""
  x, cond, _ = _inputs()
  for two_time, read, ignored in ((True, "c_step", "c_noise"),
                                  (False, "c_noise", "c_step")):
    model = _tiny(two_time=two_time)
    params = {"params": _random_params(model, x, cond)}
    out = model.apply(params, x, cond)
    moved = lambda f: model.apply(params, x, cond.replace(
        **{f: getattr(cond, f) + 0.3}))
    assert float(jnp.abs(moved(ignored) - out).max()) == 0.0
    assert float(jnp.abs(moved(read) - out).max()) > 1e-3


def test_conditions_enter_as_tokens():
  """Labels (None = the null class) and each guidance input change u."""
  model = _tiny()
  x, cond, _ = _inputs()
  params = {"params": _random_params(model, x, cond)}
  out = model.apply(params, x, cond)
  null = model.apply(params, x, cond.replace(labels=jnp.array([3, 3])))
  none = model.apply(params, x, cond.replace(labels=None))
  np.testing.assert_array_equal(null, none)
  assert float(jnp.abs(null[0] - out[0]).max()) > 1e-3
  for i in range(3):
    moved = model.apply(params, x, cond.replace(
        guidance=cond.guidance.at[:, i].add(0.2)))
    assert float(jnp.abs(moved - out).max()) > 1e-3, i


def test_imf_dit_jvp_matches_finite_differences():
  """jax.jvp in (x, c_step) through RoPE, QK-RMSNorm and SwiGLU, u and v
  heads at once, against central differences."""
  model = _tiny()
  x, cond, key = _inputs()
  params = {"params": _random_params(model, x, cond)}
  f = lambda x, h: model.apply(params, x, cond.replace(c_step=h),
                               return_v=True)
  ks = jax.random.split(key)
  tangents = (jax.random.normal(ks[0], x.shape),
              0.1 * jax.random.normal(ks[1], cond.c_step.shape))
  jvp = jax.jit(lambda p, v: jax.jvp(f, p, v))
  _, (du, dv) = jvp((x, cond.c_step), tangents)
  value = lambda *p: jvp(p, tuple(0 * v for v in tangents))[0]
  eps = 2e-3
  plus = value(*[p + eps * v for p, v in zip((x, cond.c_step), tangents)])
  minus = value(*[p - eps * v for p, v in zip((x, cond.c_step), tangents)])
  for d, i in ((du, 0), (dv, 1)):
    fd = (plus[i] - minus[i]) / (2 * eps)
    err = np.linalg.norm(d - fd) / np.linalg.norm(fd)
    assert err < 5e-3, (i, err)


def test_refuses_what_it_does_not_take():
  model = _tiny()
  x, cond, _ = _inputs()
  with pytest.raises(ValueError, match="takes no context"):
    model.init(jax.random.key(0), x, cond.replace(context=jnp.zeros((2, 4))))
  with pytest.raises(ValueError, match="reads h = t − r"):
    model.init(jax.random.key(0), x, cond.replace(c_step=None))
  with pytest.raises(ValueError, match="must be given iff"):
    model.init(jax.random.key(0), x, cond.replace(guidance=None))
  with pytest.raises(ValueError, match="return_v needs"):
    _tiny(v_head_depth=0).apply(
        _tiny(v_head_depth=0).init(jax.random.key(0), x, cond), x, cond,
        return_v=True)


def test_imf_step_and_sampling_through_the_recipe_network():
  """configs/imf_imagenet256.py:smoke's network under the guided iMF
  objective: finite per-example losses, a nonzero gradient into every
  block of u and v, and one-step samples at the recipe's ω and interval."""
  from cm_jax import generate  # pylint: disable=g-import-not-at-top
  from configs import imf_imagenet256  # pylint: disable=g-import-not-at-top
  c = imf_imagenet256.get_config("smoke")
  c.model.hidden_size, c.model.num_heads = 32, 4
  shape = (8, 8, 3)
  objective = methods.make_objective(c, shape)
  model = get_model(c.model)
  x0 = jax.random.normal(jax.random.key(0), (4, *shape))
  cond = Condition(jnp.zeros((4,)), c_step=jnp.zeros((4,)),
                   labels=jnp.arange(4) % 10, guidance=jnp.ones((4, 3)))
  params = _random_params(model, x0, cond)

  def loss_fn(p):
    net = network(model, p, Condition(labels=jnp.arange(4) % 10))
    return objective(net, net, x0, jax.random.key(1), 0)[0].mean()

  loss, grads = jax.value_and_grad(loss_fn)(params)
  assert np.isfinite(float(loss))
  for name in ("block0", "u_block2", "v_block2", "u_final_linear",
               "v_final_linear", "time_embedder", "omega_embedder"):
    norm = sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads[name]))
    assert norm > 0, name
  samples = generate.generate(model, params, c, shape, 3, 1,
                              jax.random.key(3), kind="flow_map")
  assert samples.shape == (3, *shape) and np.all(np.isfinite(samples))


@pytest.mark.parametrize("size,depth,width", [("b2", 12, 768), ("m2", 24, 768),
                                              ("l2", 32, 1024),
                                              ("xl2", 48, 1024)])
def test_imf_imagenet256_is_the_official_recipe(size, depth, width):
  """Lyy-iiis/imeanflow train_config.yml and default.py (B/2's recipe), the
  size's network, and eval_config.yml's ω and interval."""
  from configs import imf_imagenet256  # pylint: disable=g-import-not-at-top
  c = imf_imagenet256.get_config(f"size={size}")
  assert (c.model.name, c.model.depth, c.model.hidden_size,
          c.model.patch_size, c.model.v_head_depth) == (
              "imf_dit", depth, width, 2, 8)
  assert c.model.num_classes == 1000 and c.model.guidance_inputs
  assert (c.method, c.meanflow.r_neq_t, c.meanflow.p_mean, c.meanflow.p_std,
          c.meanflow.adaptive_p, c.meanflow.adaptive_c,
          c.meanflow.label_dropout, c.meanflow.guidance_s_max,
          c.meanflow.guidance_beta) == (
              "imf", 0.5, -0.4, 1.0, 1.0, 0.01, 0.1, 7.0, 1.0)
  assert (c.optim.name, c.optim.lr, c.optim.b2, c.optim.weight_decay) == (
      "adam", 1e-4, 0.95, 0.0)
  assert (c.train.batch_size, c.optim.warmup_steps, c.train.num_steps,
          c.train.ema_decay) == (1024, 10 * 1251, 640 * 1251, 0.9999)
  want = {"b2": (8.0, (0.4, 0.65)), "m2": (10.5, (0.4, 0.6)),
          "l2": (10.5, (0.4, 0.6)), "xl2": (8.0, (0.42, 0.62))}[size]
  assert (c.sample.guidance, tuple(c.sample.guidance_interval)) == want
  with pytest.raises(ValueError, match="valid: b2, m2, l2, xl2"):
    imf_imagenet256.get_config("size=h2")


def _compare_script():
  spec = importlib.util.spec_from_file_location(
      "compare_official_imf_dit",
      os.path.join(REPO, "scripts", "compare_official_imf_dit.py"))
  compare = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(compare)
  return compare


def test_matches_the_official_outputs_shipped():
  """tests/data/imf_dit_official.npz: the official imfDiT's (u, v) of a
  3-block network at the script's random weights and inputs, written by
  ``compare_official_imf_dit.py --write_fixture`` from a checkout of
  Lyy-iiis/imeanflow (bf60cd7)."""
  compare = _compare_script()
  want = np.load(os.path.join(REPO, "tests", "data", "imf_dit_official.npz"))
  (u, v), _ = compare.ours_apply(compare.FIXTURE,
                                 compare.inputs(2, compare.FIXTURE_SIZE))
  assert float(np.std(want["u"])) > 0.5 and float(np.std(want["v"])) > 0.5
  np.testing.assert_allclose(u, want["u"], atol=1e-4)
  np.testing.assert_allclose(v, want["v"], atol=1e-4)


def _official_checkout():
  path = os.environ.get("CM_JAX_OFFICIAL_IMEANFLOW", "/tmp/official_imeanflow")
  if not os.path.isfile(os.path.join(path, "models", "imfDiT.py")):
    pytest.skip(f"no Lyy-iiis/imeanflow checkout at {path} "
                "(set CM_JAX_OFFICIAL_IMEANFLOW)")
  return path


def test_matches_the_official_imf_dit():
  path = _official_checkout()
  compare = _compare_script()
  module = compare.load_official(path)
  du, dv, su, sv, _ = compare.compare(module, compare.CASES[1][1])
  assert du < 1e-4 * max(su, 1.0) and dv < 1e-4 * max(sv, 1.0), (du, dv)

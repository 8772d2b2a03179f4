"""Class-conditional shortcut models (Frans et al. 2025; kvfrans/shortcut-
models ``targets_shortcut.py``): class dropout on the flow-matching
examples, ``bootstrap_cfg``'s guided half jumps, and CFG sampling of a flow
map, against the formulas written out and the closed-form Gaussian flow of
tests/analytic.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax import generate, losses, methods, processes
from configs import shortcut_toy2d

import analytic

S, DIM, K = 0.6, 2, 3  # class std, dimension, classes (K: the null class)
LINEAR = processes.Linear()
# B = 64, one in 4 a self-consistency example: 16 of them, M = 16 (4 step
# sizes), so the first 16 // 4 = 4 (2d = 1/8) are the guided ones.
B, EVERY, M, BOOT, GUIDED = 64, 4, 16, 16, 4


def _labelled_affine(a, b, c):
  """u(z, r, t | y) = a·t²·z + b·r·z + c·t + (y + 1)·(0.1, −0.2): the null
  class y = K its own offset."""
  def u(z, r, t, y):
    t_, r_ = t[:, None], r[:, None]
    offset = (y[:, None] + 1.0) * jnp.array([0.1, -0.2])
    return a * t_ ** 2 * z + b * r_ * z + c * t_ + offset
  return u


def _data(n, seed=30):
  return 0.7 + S * jax.random.normal(jax.random.key(seed), (n, DIM))


def _labels(n, seed=31):
  return jax.random.randint(jax.random.key(seed), (n,), 0, K)


@pytest.mark.parametrize("cfg_scale", [None, 1.5])
def test_conditional_shortcut_loss_is_the_written_out_formula(cfg_scale):
  """targets_shortcut.py written out: the flow-matching examples' labels
  dropped to the null class (Bernoulli(p) each), the self-consistency
  examples' kept; with bootstrap_cfg the first B_b // log₂M (2d = 2/M)
  take both half jumps as u(∅) + s·(u(c) − u(∅)), the midpoint from the
  guided first half; the others the conditional half jumps; the flow-
  matching target ε − x0 unguided."""
  online = _labelled_affine(0.7, -0.4, 0.3)
  target = _labelled_affine(0.2, 0.5, -0.1)
  x0, y = _data(B), _labels(B)
  key = jax.random.key(32)
  t_key, e_key = jax.random.split(key)
  t, r, step = losses.shortcut_times(t_key, B, denoise_steps=M,
                                     bootstrap_every=EVERY)
  e = jax.random.normal(e_key, x0.shape)
  z = (1 - t[:, None]) * x0 + t[:, None] * e
  d = step / 2
  boot = np.arange(B) < BOOT
  guided = np.arange(B) < GUIDED
  null = jnp.full((B,), K)

  def half_jump(z_, r_, t_):
    u_c = target(z_, r_, t_, y)
    if cfg_scale is None:
      return u_c
    u_u = target(z_, r_, t_, null)
    return np.where(guided[:, None], u_u + cfg_scale * (u_c - u_u), u_c)

  u_1 = half_jump(z, t - d, t)
  z_mid = np.clip(z - d[:, None] * u_1, -4, 4)
  u_2 = half_jump(z_mid, t - 2 * d, t - d)
  want_target = np.where(boot[:, None], np.clip((u_1 + u_2) / 2, -4, 4),
                         e - x0)
  dropped = np.asarray(jax.random.bernoulli(jax.random.fold_in(key, 1), 0.3,
                                            (B,))) & ~boot
  y_online = np.where(dropped, K, y)
  want = np.mean((online(z, r, t, y_online) - want_target) ** 2, axis=1)
  got = losses.conditional_shortcut_loss(
      online, target, x0, y, key, num_classes=K, denoise_steps=M,
      bootstrap_every=EVERY, label_dropout=0.3, cfg_scale=cfg_scale)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # The guidance changes exactly the guided examples' targets.
  plain = losses.conditional_shortcut_loss(
      online, target, x0, y, key, num_classes=K, denoise_steps=M,
      bootstrap_every=EVERY, label_dropout=0.3)
  differs = np.abs(np.asarray(got) - np.asarray(plain)) > 1e-7
  np.testing.assert_array_equal(differs, guided if cfg_scale else False)


def test_class_dropout_reaches_only_the_flow_matching_examples():
  """p = 1: every flow-matching example sees the null class and no
  self-consistency example does (the official bst_labels are never
  dropped); p = 0: none."""
  seen = {}

  def online(z, r, t, y):
    seen["labels"] = y
    return jnp.zeros_like(z)

  target = lambda z, r, t, y: jnp.zeros_like(z)
  y = _labels(B)
  for p, want in ((1.0, np.where(np.arange(B) < BOOT, y, K)), (0.0, y)):
    losses.conditional_shortcut_loss(
        online, target, _data(B), y, jax.random.key(33), num_classes=K,
        denoise_steps=M, bootstrap_every=EVERY, label_dropout=p)
    np.testing.assert_array_equal(seen["labels"], want)
  # p = 0.5 drops about half of the 48 flow-matching examples.
  drops = []
  for seed in range(40):
    losses.conditional_shortcut_loss(
        online, target, _data(B), y, jax.random.key(seed), num_classes=K,
        denoise_steps=M, bootstrap_every=EVERY, label_dropout=0.5)
    drops.append(np.mean(np.asarray(seen["labels"])[BOOT:] == K))
  assert abs(np.mean(drops) - 0.5) < 0.05, np.mean(drops)


def _class_flow(mus):
  """u*(z, r, t | y) of x0 | y ~ N(mus[y], S²I) (the null class K's mean
  last): the exact flow map of each class's Gaussian."""
  exact = [analytic.average_velocity(m, S) for m in mus]

  def u(z, r, t, y):
    outs = jnp.stack([f(z, r, t) for f in exact])  # [K + 1, b, D]
    return outs[y, jnp.arange(z.shape[0])]

  return u


def test_guided_targets_of_the_exact_flow_are_the_guided_gaussian_flow():
  """The Gaussian flow is affine in its mean μ (analytic.py: Φ_{t→r}(z) =
  (1 − r)·μ + σ(r)/σ(t)·(z − (1 − t)·μ)), so guiding the exact
  u*(·|c), u*(·|∅) at scale s is u* of N(μ_∅ + s·(μ_c − μ_∅), S²): two
  guided half jumps compose to that Gaussian's whole jump, and the guided
  examples' loss is 0 against it; at s = 1 the guided targets equal the
  unguided ones (the conditional flow)."""
  mus = [0.7, -0.5, 0.2, -0.3]  # classes 0, 1, 2 and the null class 3
  y = _labels(B)
  x0 = jnp.asarray(mus)[y][:, None] + S * jax.random.normal(
      jax.random.key(34), (B, DIM))
  key = jax.random.key(35)
  exact = _class_flow(mus)
  for s in (1.0, 1.5, 3.0):
    guided_mus = [mus[3] + s * (m - mus[3]) for m in mus]
    loss = losses.conditional_shortcut_loss(
        _class_flow(guided_mus), exact, x0, y, key, num_classes=K,
        denoise_steps=M, bootstrap_every=EVERY, clip=1e3, cfg_scale=s)
    np.testing.assert_allclose(loss[:GUIDED], 0.0, atol=1e-9)
    unguided = losses.conditional_shortcut_loss(
        exact, exact, x0, y, key, num_classes=K, denoise_steps=M,
        bootstrap_every=EVERY, clip=1e3, cfg_scale=None)
    np.testing.assert_allclose(unguided[:BOOT], 0.0, atol=1e-9)
    if s == 1.0:
      np.testing.assert_allclose(loss, unguided, atol=1e-9)
    else:  # the conditional flow misses the guided target
      assert float(unguided[:GUIDED].min()) < 1e-9
      wrong = losses.conditional_shortcut_loss(
          exact, exact, x0, y, key, num_classes=K, denoise_steps=M,
          bootstrap_every=EVERY, clip=1e3, cfg_scale=s)
      assert float(wrong[:GUIDED].min()) > 1e-4, wrong[:GUIDED]
      np.testing.assert_allclose(wrong[GUIDED:BOOT], 0.0, atol=1e-9)


def test_unconditional_loss_is_the_conditional_one_without_labels():
  """shortcut_loss = conditional_shortcut_loss with no labels (one draw of
  the times and noise for both)."""
  online, target = _labelled_affine(0.7, -0.4, 0.3), _labelled_affine(
      0.2, 0.5, -0.1)
  zero = lambda u: lambda z, r, t: u(z, r, t, jnp.zeros(z.shape[0]))
  x0, key = _data(B), jax.random.key(36)
  np.testing.assert_allclose(
      losses.shortcut_loss(zero(online), zero(target), x0, key,
                           denoise_steps=M, bootstrap_every=EVERY),
      losses.conditional_shortcut_loss(
          lambda z, r, t, y: zero(online)(z, r, t),
          lambda z, r, t, y: zero(target)(z, r, t), x0, None, key,
          denoise_steps=M, bootstrap_every=EVERY), rtol=1e-6)


class _LabelModel:
  """A stand-in network F(x, c_noise | y) = x·(y + 1) + c_noise (y = K the
  null class, labels None = all null), read by nn.network."""
  num_classes = K
  guidance_inputs = False
  w_embedding = False

  def apply(self, variables, x, cond, train=False, rngs=None,
            return_weight=False):
    del variables, train, rngs, return_weight
    y = (jnp.full(x.shape[:1], K) if cond.labels is None else cond.labels)
    return x * (y[:, None] + 1.0) + cond.c_noise[:, None]


def test_flow_map_cfg_sampling_is_the_written_out_guidance():
  """sample.guidance ω on a class-conditional flow map: the jump with
  u = u(·|∅) + ω·(u(·|c) − u(·|∅)) (helper_inference.py); unguided (w
  None) the conditional u."""
  z = jax.random.normal(jax.random.key(37), (4, DIM))
  y = jnp.array([0, 1, 2, 0])
  t, r = jnp.full((4,), 0.8), jnp.full((4,), 0.3)
  u_c = z * (y[:, None] + 1.0) + 0.8
  u_u = z * (K + 1.0) + 0.8
  for w in (1.5, 3.0):
    phi = generate.flow_map_function(_LabelModel(), LINEAR, {}, labels=y,
                                     w=jnp.full((4,), w))
    want = z - 0.5 * (u_u + w * (u_c - u_u))
    np.testing.assert_allclose(phi(z, r, t), want, rtol=1e-5)
  phi = generate.flow_map_function(_LabelModel(), LINEAR, {}, labels=y)
  np.testing.assert_allclose(phi(z, r, t), z - 0.5 * u_c, rtol=1e-5)


def test_flow_map_guidance_needs_a_conditional_model():
  config = shortcut_toy2d.get_config("cond")
  config.sample.guidance = 1.5
  w = generate._guidance(config, _LabelModel(), "flow_map", 8)  # pylint: disable=protected-access
  np.testing.assert_array_equal(w, np.full((8,), 1.5))

  class Unconditional(_LabelModel):
    num_classes = 0

  with pytest.raises(ValueError, match="needs a conditional diffusion "
                     "teacher or flow map"):
    generate._guidance(config, Unconditional(), "flow_map", 8)  # pylint: disable=protected-access


def test_cond_toy_builds_the_official_class_conditional_objective():
  config = shortcut_toy2d.get_config("cond")
  objective = methods.make_objective(config, (2,))
  assert (objective.num_classes, objective.label_dropout,
          objective.cfg_scale) == (4, 0.1, 3.0)
  unconditional = methods.make_objective(shortcut_toy2d.get_config(), (2,))
  assert (unconditional.num_classes, unconditional.cfg_scale) == (0, None)


@pytest.mark.parametrize("fields,message", [
    ({"model.num_classes": 0},
     r"^shortcut.bootstrap_cfg=True guides a class-conditional model; set "
     r"model.num_classes > 0, or --config.shortcut.bootstrap_cfg=False.$"),
    ({"shortcut.label_dropout": 1.5},
     r"^shortcut.label_dropout=1.5 is a probability; set --config.shortcut."
     r"label_dropout in \[0, 1\] \(official class_dropout_prob: 0.1\).$"),
    ({"shortcut.label_dropout": 0.0},
     r"^shortcut.bootstrap_cfg=True needs the null class trained: set "
     r"--config.shortcut.label_dropout > 0 \(official class_dropout_prob: "
     r"0.1\).$"),
])
def test_bad_class_conditional_configs_are_one_line_errors(fields, message):
  config = shortcut_toy2d.get_config("cond")
  config.update_from_flattened_dict(fields)
  with pytest.raises(ValueError, match=message):
    methods.make_objective(config, (2,))

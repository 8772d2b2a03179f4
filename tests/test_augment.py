"""EDM's augmentation pipeline (cm_jax/data/augment.py), its network input and
the EMA ramp-up, against exact invariants and EDM's formulas written out."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax import nn, schedules
from cm_jax.data import augment as aug

N = 3


@pytest.fixture(scope="module")
def images():
  rng = np.random.RandomState(0)
  return jnp.asarray(rng.uniform(-1, 1, (N, 16, 16, 3)).astype(np.float32))


def test_identity_transform_has_zero_labels_and_keeps_the_images(images):
  # p = 0: no transform is drawn, yet the warp (up, bilinear, down) runs as
  # in EDM; Symlet-6 is orthonormal, so down(up(x)) = x to round-off.
  x, labels = aug.augment(jax.random.key(0), images, 0.0)
  assert labels.shape == (N, aug.AUGMENT_DIM)
  np.testing.assert_array_equal(labels, 0.0)
  np.testing.assert_allclose(x, images, atol=5e-6)


def test_warp_by_a_whole_pixel_is_a_shift_with_reflected_border(images):
  # G⁻¹ = translate(−1, 0): output column j reads input column j − 1, and
  # column 0 reads the reflection of column 1 (the reflect padding).
  x = aug.warp(images, aug._translate(-jnp.ones(N), jnp.zeros(N)))
  expected = np.pad(np.asarray(images), ((0, 0), (0, 0), (1, 0), (0, 0)),
                    mode="reflect")[:, :, :16]
  np.testing.assert_allclose(x, expected, atol=5e-6)


def test_quarter_turn_of_a_smooth_image_is_rot90():
  # The Symlet-6 filter is not symmetric, so only smooth images turn
  # exactly; 1e-2 is about what EDM's pipe gives on these.
  yy, xx = np.mgrid[0:32, 0:32] / 31.0
  smooth = np.stack([np.sin(2 * yy + 1) * np.cos(3 * xx), xx * yy,
                     np.exp(-4 * ((xx - .4) ** 2 + (yy - .6) ** 2))], -1)
  smooth = smooth[None].astype(np.float32)
  x = aug.warp(jnp.asarray(smooth), aug._rotate(jnp.full((1,), np.pi / 2)))
  np.testing.assert_allclose(x, np.rot90(smooth, 1, axes=(1, 2)), atol=2e-2)


def test_flips_alone_are_exact_and_labelled(images):
  # xflip = 1e8: every image is flipped with probability ½ and says so.
  flips_only = dict(xflip=1e8, yflip=0, scale=0, rotate_frac=0, aniso=0,
                    translate_frac=0)
  x, labels = aug.augment(jax.random.key(3), images, 0.12, **flips_only)
  flipped = np.asarray(labels[:, 0]) == 1
  expected = np.where(flipped[:, None, None, None],
                      np.asarray(images)[:, :, ::-1], np.asarray(images))
  np.testing.assert_array_equal(x, expected)
  np.testing.assert_array_equal(labels[:, 1:], 0.0)


def test_label_statistics_follow_the_pipe():
  # p = 1, 4096 images: flips are Bernoulli(½); the scale and translation
  # labels are the N(0, 1) draws; rotation θ ~ U(−π, π): E[cos θ − 1] = −1.
  x = jnp.zeros((4096, 8, 8, 1))
  _, labels = jax.jit(lambda k, x: aug.augment(k, x, 1.0))(jax.random.key(1), x)
  labels = np.asarray(labels)
  assert abs(labels[:, 0].mean() - 0.5) < 0.03
  assert abs(labels[:, 1].mean() - 0.5) < 0.03
  assert abs(labels[:, 2].std() - 1.0) < 0.05
  assert abs(labels[:, 3].mean() + 1.0) < 0.03
  assert abs(labels[:, 7:].std() - 1.0) < 0.05
  # anisotropy: w·(cos φ, sin φ) with φ = 0 half the time
  assert abs(np.mean(labels[:, 6] == 0) - 0.5) < 0.03


def test_zero_labels_are_the_identity_input_and_others_change_the_output():
  model = nn.UNet(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                  augment_dim=aug.AUGMENT_DIM)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  c = jnp.zeros((2,))
  params = model.init(jax.random.key(1), x, nn.Condition(c))["params"]
  plain = nn.network(model, params)(x, c)
  zeros = nn.network(model, params, nn.Condition(
      augment_labels=jnp.zeros((2, aug.AUGMENT_DIM))))(x, c)
  np.testing.assert_array_equal(plain, zeros)
  # The labels enter the embedding (EDM map_augment), before map0.
  embed = nn.embeddings.ConditionEmbedding(2 * 8, 32, augment_dim=aug.AUGMENT_DIM)
  e_params = embed.init(jax.random.key(2), nn.Condition(c))
  e_plain = embed.apply(e_params, nn.Condition(c))
  e_ones = embed.apply(e_params, nn.Condition(
      c, augment_labels=jnp.ones((2, aug.AUGMENT_DIM))))
  assert np.abs(e_ones - e_plain).min() > 1e-4
  with pytest.raises(ValueError, match="augment_dim"):
    nn.network(nn.UNet(ch=8, ch_mult=(1, 2), num_res_blocks=1,
                       attn_resolutions=()), params,
               nn.Condition(augment_labels=jnp.zeros((2, aug.AUGMENT_DIM))))(
                   x, c)


def test_ema_rampup_is_edms_formula_in_images():
  # EDM training_loop.py, written out: h = min(h_img, k·B·r),
  # β = 0.5^(B / max(h, 1e-8)), h_img = 500 kimg, B = 512, r = 0.05.
  batch, h_img, ratio = 512, 500_000, 0.05
  decay = 0.5 ** (batch / h_img)
  for k in (0, 1, 10, 1000, 19_531, 400_000):
    h = min(h_img, k * batch * ratio)
    expected = 0.5 ** (batch / max(h, 1e-8))
    got = float(schedules.ema_decay(jnp.int32(k), decay, ratio))
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-7), k
  assert schedules.ema_decay(5, decay, 0.0) == decay  # off: the constant


def test_the_edm_smoke_step_feeds_augment_labels_and_ramps_the_ema():
  # Through the real builder and jitted step: the augment-label weights get
  # a gradient (x-flips are always drawn, so the labels are not all zero;
  # without labels the kernel would see zeros and Adam would leave it as it
  # is), and EDM's ramp-up makes the first EMA equal to θ (β_0 = 0).
  from cm_jax import experiment, sharding
  from cm_jax.data import DataIterator
  from configs import edm_cifar10
  config = edm_cifar10.get_config("smoke")
  assert config.augment.p == 0.12 and config.train.ema_rampup_ratio == 0.05
  mesh = sharding.make_mesh()
  exp = experiment.Experiment(config, "/unused", mesh)
  state = exp.new_state()
  before = np.asarray(state.online["embed"]["augment"]["kernel"])
  batch = next(DataIterator(exp.source, config.train.batch_size, seed=0))
  state, _ = exp.train_step()(state, sharding.to_global(batch, mesh), None)
  after = np.asarray(state.online["embed"]["augment"]["kernel"])
  assert np.abs(after - before).max() > 0
  jax.tree.map(np.testing.assert_array_equal, state.ema, state.online)

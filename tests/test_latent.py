"""Latent space: the KL autoencoder (method=ae), the cached unit-variance
latent source, a plug-in autoencoder, and edm → lcd trained on latents with
samples decoded to images."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax import losses, sharding
from cm_jax.data import get_source
from cm_jax.data import latents as latents_lib
from cm_jax.evaluation import evaluate as evaluate_lib
from cm_jax import experiment
from cm_jax.modes import evaluate as eval_mode
from cm_jax.modes import sample as sample_mode
from cm_jax.modes import train as train_mode
from configs import ae_digits, edm_digits, lcd_digits

from tests.test_train import read_metrics


def tiny_ae_config(num_steps=20):
  c = ae_digits.get_config()
  c.data.resolution = 8
  c.model.ch = 8
  c.model.z_channels = 2
  c.optim.lr = 3e-3
  c.train.num_steps = num_steps
  c.train.batch_size = 32
  c.train.log_every = 1
  c.train.checkpoint_every = num_steps
  c.train.sample_every = 0
  c.train.tensorboard = False
  c.train.ema_decay = 0.0  # sample the latest weights
  c.sample.num = 8
  c.sample.batch_size = 8
  return c


def one_device():
  """A one-device mesh: these runs test data flow, not sharding (that is
  test_train's), and compile faster unpartitioned."""
  return sharding.make_mesh(jax.devices()[:1])


@pytest.fixture(scope="module")
def ae_workdir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("ae"))
  train_mode.train(tiny_ae_config(), workdir, one_device())
  return workdir


def latent_data(ae_workdir, cache=""):
  c = edm_digits.get_config("latent")
  c.data.ae_workdir = ae_workdir
  c.data.latent_cache = cache
  return c.data


def test_gaussian_kl_matches_the_closed_form():
  mean = jnp.array([[0.5, -1.0]])
  logvar = jnp.log(jnp.array([[0.25, 2.0]]))
  expected = 0.5 * ((0.25 + 0.25 - 1 - np.log(0.25)) + (1 + 2 - 1 - np.log(2)))
  np.testing.assert_allclose(losses.gaussian_kl(mean, logvar), [expected],
                             rtol=1e-6)
  np.testing.assert_allclose(losses.gaussian_kl(jnp.zeros((3, 4, 4, 2)),
                                                jnp.zeros((3, 4, 4, 2))), 0.0)


def test_autoencoder_training_reduces_reconstruction_error(ae_workdir):
  rows = read_metrics(ae_workdir)
  rec = [r["rec"] for r in rows]
  print("ℓ1 reconstruction, steps 1 and 20:", rec[0], rec[-1])
  assert len(rows) == 20 and all(np.isfinite(r["kl"]) for r in rows)
  assert np.mean(rec[-5:]) < 0.6 * np.mean(rec[:5])
  # --mode=sample on an autoencoder writes reconstructions of the data.
  path = sample_mode.sample(tiny_ae_config(), ae_workdir, one_device())
  assert os.path.basename(path) == "reconstructions_20.npz"
  recon = np.load(path)["samples"]
  assert (recon.shape, recon.dtype) == ((8, 8, 8, 1), np.uint8)


def test_latent_cache_is_written_once_scaled_and_decodes(ae_workdir,
                                                         monkeypatch):
  source = get_source(latent_data(ae_workdir))
  assert os.path.dirname(source.path) == os.path.join(ae_workdir, "latents")
  digits = get_source({"source": "digits", "resolution": 8})
  assert (source.num_examples, source.example_shape) == (1797, (4, 4, 2))
  assert source.image_shape == (8, 8, 1) and source.num_classes == 10
  np.testing.assert_allclose(np.std(source.x, dtype=np.float64), 1.0,
                             rtol=1e-5)
  batch = source.get(np.arange(5))
  np.testing.assert_array_equal(batch["y"], digits.get(np.arange(5))["y"])
  # The second use reads the file: no encoding, the same arrays.
  def no_encoding(*args, **kwargs):
    raise AssertionError("the cache was re-encoded")
  monkeypatch.setattr(latents_lib, "encode_to_cache", no_encoding)
  again = get_source(latent_data(ae_workdir))
  np.testing.assert_array_equal(again.x, source.x)
  assert again.scale == source.scale
  # Cached latents are s·E(x); decoding divides by s: D(s·E(x)/s) = D(E(x)).
  x = digits.get(np.arange(16))["x"]
  ae = source.autoencoder
  np.testing.assert_allclose(source.encode(x), source.x[:16], rtol=1e-4,
                             atol=1e-4)
  np.testing.assert_allclose(source.decode(source.x[:16]),
                             np.asarray(ae.decode(ae.encode(x))), rtol=1e-4,
                             atol=1e-4)


def make_space_to_depth(data_config):
  """A plug-in `Autoencoder` (data.autoencoder = "tests.test_latent:
  make_space_to_depth"): 2×2 space-to-depth, exactly invertible, ×3 scale."""
  del data_config

  class SpaceToDepth:
    def encode(self, x):
      b, h, w, c = x.shape
      z = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
      return 3.0 * z.reshape(b, h // 2, w // 2, 4 * c)

    def decode(self, z):
      b, h, w, c4 = z.shape
      x = (z / 3.0).reshape(b, h, w, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5)
      return x.reshape(b, 2 * h, 2 * w, c4 // 4)

    def latent_shape(self, image_shape):
      h, w, c = image_shape
      return (h // 2, w // 2, 4 * c)

  return SpaceToDepth(), {"source": "digits", "resolution": 8}


def test_a_plugged_in_autoencoder_round_trips_exactly(tmp_path):
  c = edm_digits.get_config("latent")
  c.data.ae_workdir = ""
  c.data.autoencoder = "tests.test_latent:make_space_to_depth"
  c.data.latent_cache = str(tmp_path / "s2d.npz")
  source = get_source(c.data)
  assert source.example_shape == (4, 4, 4) and os.path.exists(source.path)
  np.testing.assert_allclose(np.std(source.x, dtype=np.float64), 1.0,
                             rtol=1e-5)
  digits = get_source({"source": "digits", "resolution": 8})
  np.testing.assert_allclose(source.decode(source.x[:50]),
                             digits.get(np.arange(50))["x"], atol=1e-5)
  c.data.autoencoder = "tests.test_latent:nothing_here"
  c.data.latent_cache = ""
  with pytest.raises(ValueError, match="pkg.module:fn"):
    get_source(c.data)


def make_space_to_depth_npz(data_config):
  """The space-to-depth plug-in over the npz file at data.image_path."""
  return make_space_to_depth(None)[0], {"source": "npz",
                                        "path": data_config.image_path}


def test_latents_carry_the_images_contexts(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (20, 8, 8, 1), np.uint8)
  context = rng.standard_normal((20, 6)).astype(np.float32)
  np.savez(tmp_path / "images.npz", x_train=x, context_train=context)
  c = edm_digits.get_config("latent")
  c.data.ae_workdir = ""
  c.data.autoencoder = "tests.test_latent:make_space_to_depth_npz"
  c.data.image_path = str(tmp_path / "images.npz")
  c.data.latent_cache = str(tmp_path / "latents.npz")
  for _ in range(2):  # encodes and writes the cache, then reads it
    source = get_source(c.data)
    assert source.context_dim == 6
    batch = source.get(np.array([7, 2]))
    np.testing.assert_array_equal(batch["context"], context[[7, 2]])
    np.testing.assert_allclose(source.decode(batch["x"]),
                               x[[7, 2]] / 127.5 - 1, atol=1e-5)


def _tiny_unet(c, num_steps):
  c.model.ch = 8
  c.model.ch_mult = (1,)
  c.train.num_steps = num_steps
  c.train.batch_size = 8
  c.train.log_every = 1
  c.train.checkpoint_every = num_steps
  c.train.sample_every = 0
  c.train.tensorboard = False
  c.sample.num = 4
  c.sample.batch_size = 4
  c.sample.grid_size = 4
  c.sample.ode_steps = 3
  return c


def test_edm_and_lcd_train_on_latents_and_sample_images(ae_workdir, tmp_path):
  teacher_dir, student_dir = str(tmp_path / "edm"), str(tmp_path / "lcd")
  teacher = _tiny_unet(edm_digits.get_config("latent"), 1)
  teacher.data.ae_workdir = ae_workdir
  train_mode.train(teacher, teacher_dir, one_device())
  student = _tiny_unet(lcd_digits.get_config(), 1)
  student.data.ae_workdir = ae_workdir
  student.teacher.workdir = teacher_dir
  train_mode.train(student, student_dir, one_device())
  assert np.isfinite(read_metrics(student_dir)[-1]["loss"])
  student.sample.steps = 2  # decoded to the autoencoder's 8×8×1 digits
  samples = np.load(sample_mode.sample(student, student_dir, one_device()))[
      "samples"]
  assert (samples.shape, samples.dtype) == ((4, 8, 8, 1), np.uint8)
  # FID compares decoded samples with the images the latents came from.
  image_data = get_source(student.data).image_data
  ref = evaluate_lib.reference_data_config(student, image_data)
  assert (ref["source"], ref["resolution"]) == ("digits", 8)


def test_lcd_cifar10_is_latent_with_a_pixel_option():
  from configs import edm_cifar10, lcd_cifar10
  c = lcd_cifar10.get_config()
  assert (c.data.source, c.data.ae_workdir) == ("latents", "runs/ae_cifar10")
  assert c.teacher.workdir == "runs/edm_cifar10_latent"
  assert edm_cifar10.get_config("latent").data.source == "latents"
  pixel = lcd_cifar10.get_config("pixel")
  assert (pixel.data.source, pixel.teacher.workdir) == (
      "tfds", "runs/edm_cifar10_cond")
  assert lcd_cifar10.get_config("smoke").data.ae_workdir == "/tmp/ae_smoke"


def test_a_teacher_of_another_latent_space_is_refused():
  from cm_jax import teacher
  latent = {"source": "latents", "ae_workdir": "runs/ae_a"}
  teacher._check_same_latents(latent, dict(latent), "T")  # same: accepted
  teacher._check_same_latents({"source": "digits"}, {"source": "npz"}, "T")
  for other in ({"source": "latents", "ae_workdir": "runs/ae_b"},
                {"source": "digits"}):
    with pytest.raises(ValueError, match="ae_workdir"):
      teacher._check_same_latents(latent, other, "T")


def test_the_autoencoder_and_its_method_go_together():
  """Needs.network: method=ae trains only the autoencoder, and no other
  method trains it (each refused in one line, before any step)."""
  from cm_jax.train import validate  # pylint: disable=g-import-not-at-top
  from cm_jax import methods  # pylint: disable=g-import-not-at-top
  c = ae_digits.get_config()
  c.method = "ct"
  with pytest.raises(ValueError, match="method=ct trains a denoising network"
                     ".*'autoencoder' \\(which method=ae trains\\)"):
    validate.check_needs(c, methods.needs_of("ct"), None)
  c.method = "ae"
  validate.check_needs(c, methods.needs_of("ae"), None)  # accepted
  unet = edm_digits.get_config()
  unet.method = "ae"
  with pytest.raises(ValueError, match="trains the KL autoencoder"):
    methods.make_objective(unet, (8, 8, 1))
  with pytest.raises(ValueError, match="method=ae trains autoencoder, got "
                     "model.name='unet'; fix"):
    validate.check_needs(unet, methods.needs_of("ae"), None)

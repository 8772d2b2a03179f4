"""The EDM teacher and consistency distillation from it, on 2-D data.

Measured on the 8-mode mixture: the fraction of samples within 3 std (0.15)
of a mode. The teacher (Heun, 35 NFE) and CD's one-step samples are compared
with CT (the CM paper's: N(k) from 2 to 150, μ0 = 0.9, ℓ2, λ = 1) trained for
the same number of steps.
"""

import os
import tempfile

import chex
import numpy as np

from cm_jax import sharding
from cm_jax import experiment
from cm_jax.modes import evaluate as eval_mode
from cm_jax.modes import sample as sample_mode
from cm_jax.modes import train as train_mode
from configs import cd_toy2d, edm_toy2d, toy2d


def near_fraction(samples, modes, radius=0.15):
  dist = np.linalg.norm(samples[:, None] - modes[None], axis=-1)
  return float((dist.min(axis=1) < radius).mean())


def _quiet(c):
  """Quiet, and on the iCT toy's 128 × 3 MLP: the recipes' 512 × 4 teacher
  and student train 4× slower than this suite affords."""
  c.model.hidden, c.model.depth = 128, 3
  c.train.sample_every = 0
  c.train.tensorboard = False
  c.sample.num = 1000
  c.sample.batch_size = 1000
  return c


class DistillationTest(chex.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.TemporaryDirectory()
    cls.teacher_dir = os.path.join(cls._tmp.name, "edm")
    train_mode.train(_quiet(edm_toy2d.get_config()), cls.teacher_dir)

  @classmethod
  def tearDownClass(cls):
    cls._tmp.cleanup()
    super().tearDownClass()

  def _samples(self, config, workdir, steps=1):
    config.sample.steps = steps
    return np.load(sample_mode.sample(config, workdir))["samples"]

  def _modes(self, config):
    return experiment.Experiment(config, "/unused", sharding.make_mesh()).source.modes

  def test_teacher_heun_samples_sit_on_the_modes(self):
    c = _quiet(edm_toy2d.get_config())
    near = near_fraction(self._samples(c, self.teacher_dir), self._modes(c))
    print("EDM teacher, Heun 35 NFE: fraction near a mode", near)
    self.assertGreater(near, 0.8)

  def test_cd_beats_ct_at_the_same_budget(self):
    cd = _quiet(cd_toy2d.get_config())
    cd.teacher.workdir = self.teacher_dir
    cd.train.num_steps, cd.train.batch_size = 2000, 128  # (recipe: 8000, 512)
    ct = _quiet(toy2d.get_config())  # the CM paper's CT on the same MLP
    ct.curriculum.name, ct.curriculum.s0, ct.curriculum.s1 = "ct", 2, 150
    ct.target.ema, ct.target.mu0 = "adaptive", 0.9
    ct.loss.metric, ct.loss.weighting = "l2", "uniform"
    ct.loss.index_sampling = "uniform"
    ct.train.num_steps = cd.train.num_steps
    near = {}
    for name, c in (("cd", cd), ("ct", ct)):
      workdir = os.path.join(self._tmp.name, name)
      train_mode.train(c, workdir)
      near[name] = near_fraction(self._samples(c, workdir), self._modes(c))
    print(f"1-step fraction near a mode after {cd.train.num_steps} steps:", near)
    self.assertGreater(near["cd"], near["ct"] + 0.1)

  def test_student_with_another_network_is_refused(self):
    c = _quiet(cd_toy2d.get_config())
    c.teacher.workdir = self.teacher_dir
    c.model.hidden = 64
    with self.assertRaisesRegex(ValueError, "model.hidden: 128 there, 64 now"):
      train_mode.train(c, os.path.join(self._tmp.name, "mismatch"))

  def test_teacher_must_be_an_edm_run(self):
    c = _quiet(cd_toy2d.get_config())
    c.teacher.workdir = ""
    with self.assertRaisesRegex(ValueError, "teacher.workdir"):
      train_mode.train(c, os.path.join(self._tmp.name, "none"))
    ct_dir = os.path.join(self._tmp.name, "ct_run")
    tiny = _quiet(toy2d.get_config())
    tiny.train.num_steps = 1
    train_mode.train(tiny, ct_dir)
    c.teacher.workdir = ct_dir
    with self.assertRaisesRegex(ValueError, "method='ct' run"):
      train_mode.train(c, os.path.join(self._tmp.name, "wrong"))

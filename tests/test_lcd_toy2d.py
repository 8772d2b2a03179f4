"""LCD (LCM Alg. 1) on the class-conditional 2-D toy, trained for real.

Four overlapping classes, one gmm mode each (std 0.7 on the unit circle: true
class-conditional samples are only ≈ 70% Bayes-correct). The conditional VP
teacher is trained with label dropout; LCD distils its CFG-augmented ODE with
w ~ U[0, 4] as an input. Class accuracy (nearest mode = the sample's label)
of one-step samples must rise with the guidance scale w.

The ``context`` variant (configs/edm_toy2d.py:context) gives the networks the
class only as a context vector (a random unit code per mode, plus noise), with
no label embedding: the general per-example conditioning, CFG against the zero
context.
"""

import os
import tempfile

import jax
import numpy as np
import pytest

from cm_jax import sharding
from cm_jax import experiment
from cm_jax.modes import evaluate as eval_mode
from cm_jax.modes import sample as sample_mode
from cm_jax.modes import train as train_mode
from configs import edm_toy2d, lcd_toy2d, lcf_toy2d


def _quiet(c, steps):
  c.train.num_steps = steps
  c.train.checkpoint_every = steps
  c.train.sample_every = 0
  c.train.tensorboard = False
  c.sample.num = c.sample.batch_size = 1000
  return c


def one_device():
  """These runs test learning, not sharding (test_train's): one device
  compiles and runs faster than the 4 fake ones."""
  return sharding.make_mesh(jax.devices()[:1])


def class_accuracy(config, workdir, w, steps):
  config.sample.guidance, config.sample.steps = w, steps
  path = sample_mode.sample(config, workdir, one_device())
  # Sample files are named by w when guided, so runs at several w coexist.
  assert os.path.basename(path) == (
      f"samples_{config.train.num_steps}_{steps}step"
      f"{f'_w{float(w)}' if w else ''}.npz"), path
  samples = np.load(path)["samples"]
  source = experiment.Experiment(config, workdir, one_device()).source
  if config.model.context_dim:  # sample i has data example i's context
    labels = source.y[np.arange(len(samples)) % source.num_examples]
  else:  # sample.labels = (): classes in turn
    labels = np.arange(len(samples)) % config.model.num_classes
  return float((source.classify(samples) == labels).mean())


def run_lcd(teacher_steps, lcd_steps, ws, sample_steps=(1,), teacher_ws=(),
            lcf_steps=0, variant="cond", grid=False):
  """Trains the teacher of configs/edm_toy2d.py:<variant> (cond: labels;
  context: context vectors) and, if ``lcd_steps``, its LCD student; returns
  their class accuracies by w (and by sampling steps for the student).
  ``grid``: the student also writes its final sample grid (at the config's
  w = 2), whose name must carry w."""
  acc = {}
  with tempfile.TemporaryDirectory() as tmp:
    teacher_dir, lcd_dir = os.path.join(tmp, "edm"), os.path.join(tmp, "lcd")
    teacher = _quiet(edm_toy2d.get_config(variant), teacher_steps)
    train_mode.train(teacher, teacher_dir, one_device())
    teacher_acc = {w: class_accuracy(teacher, teacher_dir, w, 1)
                   for w in teacher_ws}
    if lcd_steps:
      lcd = _quiet(lcd_toy2d.get_config(None if variant == "cond" else
                                        variant), lcd_steps)
      lcd.teacher.workdir = teacher_dir
      if grid:
        lcd.train.sample_every, lcd.sample.grid_size = lcd_steps, 16
      train_mode.train(lcd, lcd_dir, one_device())
      if grid:
        assert sorted(os.listdir(os.path.join(lcd_dir, "samples"))) == [
            f"grid_{lcd_steps:08d}_w2.0.{ext}" for ext in ("npz", "png")]
      acc = {(w, s): class_accuracy(lcd, lcd_dir, w, s)
             for s in sample_steps for w in ws}
    if lcf_steps:  # LCM Alg. 4: fine-tune this LCM on modes at radius 1.5
      lcf = _quiet(lcf_toy2d.get_config(), lcf_steps)
      lcf.init.workdir = lcd_dir
      lcf_dir = os.path.join(tmp, "lcf")
      train_mode.train(lcf, lcf_dir, one_device())
      radius = {}
      for name, c, d in (("lcd", lcd, lcd_dir), ("lcf", lcf, lcf_dir)):
        c.sample.guidance, c.sample.steps = 0.0, 2
        x = np.load(sample_mode.sample(c, d, one_device()))["samples"]
        radius[name] = float(np.linalg.norm(x, axis=1).mean())
      print(f"mean radius of 2-step samples at w = 0, LCD vs LCF "
            f"({lcf_steps} steps, data at radius 1.5):", radius)
      acc["radius"] = radius
  print(f"{variant} teacher ({teacher_steps} steps, DDIM 50) class accuracy "
        "by w:", teacher_acc)
  print(f"LCD ({lcd_steps} steps) class accuracy by (w, sampling steps):", acc)
  return teacher_acc, acc


def test_lcd_class_accuracy_rises_with_w_fast():
  _, acc = run_lcd(1000, 1000, ws=(0.0, 3.0))
  assert acc[(3.0, 1)] > acc[(0.0, 1)] + 0.03


def test_context_conditioning_class_accuracy_rises_with_w_fast():
  """Class only in the context vector: the CFG teacher and its one-step LCD
  student beat chance (1/4), and their accuracy rises with w."""
  teacher_acc, acc = run_lcd(1000, 1000, ws=(0.0, 3.0),
                             teacher_ws=(0.0, 3.0), variant="context",
                             grid=True)
  assert teacher_acc[0.0] > 0.5 and acc[(0.0, 1)] > 0.5  # chance is 0.25
  assert teacher_acc[3.0] > teacher_acc[0.0] + 0.2
  assert acc[(3.0, 1)] > acc[(0.0, 1)] + 0.03


@pytest.mark.slow
def test_context_conditioning_class_accuracy_rises_with_w():
  teacher_acc, acc = run_lcd(4000, 3000, ws=(0.0, 1.0, 3.0),
                             sample_steps=(1, 2, 4),
                             teacher_ws=(0.0, 1.0, 3.0), variant="context")
  assert teacher_acc[0.0] < 0.8 < teacher_acc[3.0]
  for s in (1, 2, 4):
    assert acc[(0.0, s)] < acc[(1.0, s)] < acc[(3.0, s)] + 1e-9, s
    assert acc[(3.0, s)] > 0.95 and acc[(3.0, s)] > acc[(0.0, s)] + 0.05, s


@pytest.mark.slow
def test_lcd_class_accuracy_rises_with_w():
  teacher_acc, acc = run_lcd(4000, 3000, ws=(0.0, 1.0, 3.0),
                             sample_steps=(1, 2, 4), teacher_ws=(0.0, 1.0, 3.0),
                             lcf_steps=2000)
  assert teacher_acc[0.0] < 0.8 < teacher_acc[3.0]  # CFG works in the teacher
  for s in (1, 2, 4):
    assert acc[(0.0, s)] < acc[(1.0, s)] < acc[(3.0, s)] + 1e-9, s
    assert acc[(3.0, s)] > 0.95 and acc[(3.0, s)] > acc[(0.0, s)] + 0.05, s
  # LCF moves the LCM towards its new data (radius 1.5, std 0.3).
  assert acc["radius"]["lcf"] > acc["radius"]["lcd"] + 0.15

"""LCD (LCM Alg. 1) on the class-conditional 2-D toy, trained for real.

Four overlapping classes, one gmm mode each (std 0.7 on the unit circle: true
class-conditional samples are only ≈ 70% Bayes-correct). The conditional VP
teacher is trained with label dropout; LCD distils its CFG-augmented ODE with
w ~ U[0, 4] as an input. Class accuracy (nearest mode = the sample's label)
of one-step samples must rise with the guidance scale w.
"""

import os
import tempfile

import numpy as np
import pytest

from cm_jax.train import loop
from configs import edm_toy2d, lcd_toy2d, lcf_toy2d


def _quiet(c, steps):
  c.train.num_steps = steps
  c.train.checkpoint_every = steps
  c.train.sample_every = 0
  c.train.tensorboard = False
  c.sample.num = c.sample.batch_size = 1000
  return c


def class_accuracy(config, workdir, w, steps):
  config.sample.guidance, config.sample.steps = w, steps
  samples = np.load(loop.sample(config, workdir))["samples"]
  labels = np.arange(len(samples)) % config.model.num_classes  # sample.labels = (): in turn
  source = loop.Experiment(config, workdir).source
  return float((source.classify(samples) == labels).mean())


def run_lcd(teacher_steps, lcd_steps, ws, sample_steps=(1,), teacher_ws=(),
            lcf_steps=0):
  with tempfile.TemporaryDirectory() as tmp:
    teacher_dir, lcd_dir = os.path.join(tmp, "edm"), os.path.join(tmp, "lcd")
    teacher = _quiet(edm_toy2d.get_config("cond"), teacher_steps)
    loop.train(teacher, teacher_dir)
    lcd = _quiet(lcd_toy2d.get_config(), lcd_steps)
    lcd.teacher.workdir = teacher_dir
    loop.train(lcd, lcd_dir)
    teacher_acc = {w: class_accuracy(teacher, teacher_dir, w, 1)
                   for w in teacher_ws}
    acc = {(w, s): class_accuracy(lcd, lcd_dir, w, s)
           for s in sample_steps for w in ws}
    if lcf_steps:  # LCM Alg. 4: fine-tune this LCM on modes at radius 1.5
      lcf = _quiet(lcf_toy2d.get_config(), lcf_steps)
      lcf.teacher.workdir = lcd_dir
      lcf_dir = os.path.join(tmp, "lcf")
      loop.train(lcf, lcf_dir)
      radius = {}
      for name, c, d in (("lcd", lcd, lcd_dir), ("lcf", lcf, lcf_dir)):
        c.sample.guidance, c.sample.steps = 0.0, 2
        x = np.load(loop.sample(c, d))["samples"]
        radius[name] = float(np.linalg.norm(x, axis=1).mean())
      print(f"mean radius of 2-step samples at w = 0, LCD vs LCF "
            f"({lcf_steps} steps, data at radius 1.5):", radius)
      acc["radius"] = radius
  print(f"teacher ({teacher_steps} steps, DDIM 50) class accuracy by w:",
        teacher_acc)
  print(f"LCD ({lcd_steps} steps) class accuracy by (w, sampling steps):", acc)
  return teacher_acc, acc


def test_lcd_class_accuracy_rises_with_w_fast():
  _, acc = run_lcd(1000, 1000, ws=(0.0, 3.0))
  assert acc[(3.0, 1)] > acc[(0.0, 1)] + 0.03


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

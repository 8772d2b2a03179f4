"""iCT on the 2-D Gaussian mixture (configs/toy2d.py), trained for real.

Measures: the fraction of samples within 3 std (0.15) of a mode, and how
many samples land at each of the 8 modes. Slow: about two minutes on 2 CPU
cores (`-m slow`).
"""

import os
import tempfile

import numpy as np
import pytest

from cm_jax import experiment
from cm_jax.modes import evaluate as eval_mode
from cm_jax.modes import sample as sample_mode
from cm_jax.modes import train as train_mode
from configs import toy2d


@pytest.mark.slow  # the full 8,000-step recipe: about 2 minutes on 2 cores
def test_ict_toy2d_finds_every_mode():
  config = toy2d.get_config()
  config.train.sample_every = 0
  config.train.tensorboard = False
  with tempfile.TemporaryDirectory() as workdir:
    train_mode.train(config, workdir)
    exp = experiment.Experiment(config, workdir)
    results = {}
    for steps in (1, 2):
      config.sample.steps = steps
      samples = np.load(sample_mode.sample(config, workdir))["samples"]
      results[steps] = exp.source.near_mode(samples)
  print("toy2d gmm: fraction near a mode, samples per mode:", results)
  for steps, (near, counts) in results.items():
    assert near > 0.6, (steps, near)
    # Every mode holds at least a third of its fair share (2000 / 8 · 1/3).
    assert counts.min() > len(counts) and counts.min() > 2000 / 8 / 3, counts
  # Two steps no worse than one, up to 0.1 of the samples. Which of the two
  # wins varies from one trained model to the next: near-mode fraction of two
  # steps minus one step was −0.081 and −0.041 for this test with and without
  # the XLA:CPU YNN flag (cm_jax/xla_cpu.py; reductions sum in another order,
  # so training takes another path), +0.057 for the same config on one device.
  assert results[2][0] >= results[1][0] - 0.1

"""scripts/compare_methods.py: equal wall-clock means each method's own
schedule scaled to its step count, and time measured after compilation."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import compare_methods  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.parametrize("spec, fields", [
    ("configs/toy2d.py", {}),  # iCT: the curriculum follows num_steps
    ("configs/ect_toy2d.py", {"ect.stage_steps": "500"}),  # 1,000 of 8,000
    ("configs/sct_toy2d.py", {"scm.warmup_steps": "500"}),
])
def test_schedules_scale_with_the_step_count(spec, fields):
  config = compare_methods.load_config(spec)
  assert config.train.num_steps == 8000
  out = dict(o.split("=") for o in
             compare_methods.scaled_overrides(config, 4000))
  assert out.pop("train.num_steps") == "4000"
  assert out.pop("train.checkpoint_every") == "4000"
  assert out.pop("train.log_every") == "400"
  assert out.pop("train.sample_every") == "0"
  assert out == fields


def test_training_time_leaves_out_the_compiling_interval():
  rows = [{"step": 100, "steps_per_s": 5.0},  # compilation inside
          {"step": 200, "steps_per_s": 100.0},
          {"step": 300, "steps_per_s": 90.0},
          {"step": 400, "steps_per_s": 110.0}]
  assert compare_methods.training_seconds(rows) == pytest.approx(4.0)

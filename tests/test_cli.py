"""launch.py: config errors are one line with exit status 2; any recipe
trains on a user's npz through --config.data.source/path."""

import os
import subprocess
import sys

import numpy as np

from cm_jax import checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(*flags, workdir="/nonexistent"):
  return subprocess.run(
      [sys.executable, "launch.py", f"--workdir={workdir}", *flags],
      cwd=REPO, capture_output=True, text=True, timeout=600)


def one_line_error(result):
  assert result.returncode == 2, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
  return lines[0]


def test_unknown_field_names_the_nearest_fields():
  line = one_line_error(launch("--config=configs/quickstart.py",
                               "--config.train.num_step=5"))
  assert "'train.num_step'" in line and "train.num_steps" in line
  line = one_line_error(launch("--config=configs/toy2d.py",
                               "--config.data.pth=x"))
  assert "'data.pth'" in line and "data.path" in line
  # A field of another group: matched on its last part.
  line = one_line_error(launch("--config=configs/quickstart.py",
                               "--config.train.resolution=8"))
  assert "data.resolution" in line


def test_unknown_config_argument_lists_the_valid_ones():
  line = one_line_error(launch("--config=configs/toy2d.py:nonexistent"))
  assert "nonexistent" in line and "valid: none" in line
  line = one_line_error(launch("--config=configs/edm_cifar10.py:huge"))
  assert "valid: smoke, cond, latent, ddpmpp (combine them" in line
  line = one_line_error(launch("--config=configs/missing.py"))
  assert "cannot load the config file 'configs/missing.py'" in line


def test_user_errors_are_one_line_and_the_traceback_needs_verbose(tmp_path):
  workdir = str(tmp_path / "run")
  line = one_line_error(launch("--config=configs/quickstart.py",
                               "--config.model.ch_mult=1.5", workdir=workdir))
  assert line.startswith("launch.py: model.ch_mult=(1.5,) must be a tuple of "
                         "integers")
  verbose = launch("--config=configs/toy2d.py", "--config.optim.lr=-1",
                   "--verbose", workdir=workdir)
  assert verbose.returncode == 2
  assert "Traceback" in verbose.stderr and "_check_rates" in verbose.stderr
  assert verbose.stderr.strip().splitlines()[-1].startswith(
      "launch.py: optim.lr=-1.0 must be")
  assert not os.path.exists(workdir)  # refused before anything is written


def test_sampling_an_untrained_workdir_is_refused_and_writes_nothing(
    tmp_path):
  workdir = str(tmp_path / "never_trained")
  line = one_line_error(launch("--config=configs/toy2d.py", "--mode=sample",
                               workdir=workdir))
  assert line == (f"launch.py: No checkpoint in {workdir}/checkpoints; train "
                  "first (--mode=train) or point --workdir at a trained run.")
  assert not os.path.exists(workdir)


def test_quickstart_trains_on_a_user_npz(tmp_path):
  """The first thing a user tries: their own images through the npz source
  (12×12 RGB, unlike the quickstart's 8×8 gray digits)."""
  rng = np.random.default_rng(0)
  path = str(tmp_path / "my.npz")
  np.savez(path, x_train=rng.integers(0, 256, (24, 12, 12, 3), np.uint8))
  workdir = str(tmp_path / "run")
  result = launch(
      "--config=configs/quickstart.py", "--config.data.source=npz",
      f"--config.data.path={path}", "--config.train.num_steps=2",
      "--config.train.batch_size=8", "--config.train.log_every=1",
      "--config.train.checkpoint_every=2", "--config.train.sample_every=0",
      "--config.train.tensorboard=False", "--config.model.ch=8",
      "--config.model.ch_mult=(1,)",
      workdir=workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  meta = checkpoint.read_meta(checkpoint.make_manager(workdir))
  assert meta["step"] == 2 and meta["example_shape"] == [12, 12, 3]
  assert meta["config"]["data"]["path"] == path
  # The run names its data first, and says that the quickstart's
  # data.resolution = 8 (the digits') does not resize the file's images.
  assert (f"Data: npz {path} (x_train), 24 examples of shape (12, 12, 3), "
          "unlabelled.") in result.stderr
  assert (f"data.resolution=8 is not applied to npz data: {path} holds "
          "12×12 images") in result.stderr


def test_help_says_where_the_config_fields_are_documented():
  result = subprocess.run([sys.executable, "launch.py", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
  # absl's --help exits with status 1 after printing the usage.
  assert "--config.<group>.<field>=value" in result.stdout, result.stderr
  assert "configs/base.py" in result.stdout
  assert os.path.isfile(os.path.join(REPO, "configs", "base.py"))

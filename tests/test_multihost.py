"""Two processes on localhost (CPU collectives over gloo) train as one."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["--config=configs/toy2d.py", "--config.train.num_steps=4",
         "--config.train.batch_size=16", "--config.train.log_every=1",
         "--config.train.checkpoint_every=2", "--config.train.sample_every=4",
         "--config.sample.grid_size=64",
         "--config.train.tensorboard=False", "--config.model.hidden=32",
         "--config.data.num_examples=512"]


def _launch(workdir, devices, extra=()):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  return subprocess.Popen(
      [sys.executable, "launch.py", f"--workdir={workdir}", *FLAGS, *extra],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True)


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["loss"] for line in f]


def test_two_processes_match_one(tmp_path):
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  single = _launch(tmp_path / "one", 4)
  pair = [_launch(tmp_path / "two", 2, [
      f"--coordinator_address=localhost:{port}", "--num_processes=2",
      f"--process_id={i}"]) for i in range(2)]
  for proc in [single, *pair]:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
  assert "Process 1 of 2; 2 local of 4 devices" in out
  one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
  assert len(one) == len(two) == 4
  for a, b in zip(one, two):
    assert abs(a - b) <= 1e-5 * abs(a), (one, two)
  # Both processes wrote the one collective checkpoint; sampling (a program
  # over both processes' devices) ran on both, process 0 wrote the grid.
  assert sorted(os.listdir(tmp_path / "two" / "checkpoints")) == ["2", "4"]
  grids = [np.load(tmp_path / run / "samples" / "grid_00000004.npz")["samples"]
           for run in ("one", "two")]
  np.testing.assert_allclose(grids[1], grids[0], atol=1e-4)

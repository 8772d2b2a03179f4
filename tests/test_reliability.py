"""Surviving pre-emption and crashes, skipping non-finite updates, and the
checks at start (the exact-resume test is in test_train.py)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax import checkpoint, sharding
from cm_jax.data import DataIterator
from cm_jax import experiment
from cm_jax.modes import evaluate as eval_mode
from cm_jax.modes import sample as sample_mode
from cm_jax.modes import train as train_mode
from cm_jax.train import objectives as objective
from cm_jax.train import optim
from cm_jax.train.step import train_step
from cm_jax.train.writer import MetricWriter
from tests.test_train import REPO, make_tempdir, read_metrics, tiny_toy_config

ONE_DEVICE_ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}


def one_device():
  return sharding.make_mesh(jax.devices()[:1])


def save_checkpoints(exp, steps):
  """Checkpoints at ``steps`` as a run would leave them, without training:
  the i-th holds θ_0 + i. Returns θ_0."""
  manager = checkpoint.make_manager(exp.workdir)
  state = exp.new_state()
  theta_0 = jax.device_get(state.online)
  for i, step in enumerate(steps):
    state = state.replace(online=jax.tree.map(lambda x: x + i, theta_0))
    checkpoint.save(manager, state, train_mode._meta(  # pylint: disable=protected-access
        exp.config, step, step, exp.source.example_shape, 0))
  manager.wait_until_finished()
  return theta_0


def _wait_for_metrics(workdir, proc, timeout=120):
  path = os.path.join(workdir, "metrics.jsonl")
  deadline = time.time() + timeout
  while not (os.path.exists(path) and os.path.getsize(path)):
    if proc.poll() is not None or time.time() > deadline:
      raise AssertionError(f"no metrics before exit: {proc.communicate()}")
    time.sleep(0.05)


class SignalTest(chex.TestCase):

  def test_sigterm_finishes_the_step_saves_and_exits_0(self):
    workdir = make_tempdir(self)
    cmd = [sys.executable, "launch.py", "--config=configs/toy2d.py",
           f"--workdir={workdir}", "--config.train.num_steps=1000000",
           "--config.train.checkpoint_every=100000", "--config.train.log_every=1",
           "--config.model.hidden=16", "--config.data.num_examples=256",
           "--config.train.sample_every=0", "--config.train.tensorboard=False"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ONE_DEVICE_ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_metrics(workdir, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    self.assertEqual(proc.returncode, 0, err[-2000:])
    stopped = [l for l in err.splitlines() if "Stopped by SIGTERM" in l]
    self.assertLen(stopped, 1)
    step = int(stopped[0].split("at step ")[1].split("/")[0])
    self.assertEqual(checkpoint.make_manager(workdir).latest_step(), step)
    self.assertEqual(read_metrics(workdir)[-1]["step"], step)  # flushed

  def test_second_signal_exits_at_once(self):
    script = textwrap.dedent("""
        import os, signal, time
        from cm_jax.train.preemption import GracefulStop
        with GracefulStop() as stop:
          os.kill(os.getpid(), signal.SIGINT)
          assert stop.requested(1, None), "first signal only sets the flag"
          print("still running", flush=True)
          os.kill(os.getpid(), signal.SIGINT)
          time.sleep(30)
        print("not reached")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, text=True,
                          env=ONE_DEVICE_ENV, capture_output=True, timeout=60)
    self.assertEqual(done.returncode, 128 + signal.SIGINT, done.stderr)
    self.assertEqual(done.stdout, "still running\n")
    self.assertIn("Second signal (SIGINT): exiting now", done.stderr)


class CrashSafetyTest(chex.TestCase):

  def test_unfinished_and_unreadable_checkpoints_are_never_restored(self):
    workdir = make_tempdir(self)
    config = tiny_toy_config()
    exp = experiment.Experiment(config, workdir, one_device())
    at_2 = save_checkpoints(exp, (2, 4))
    ckpts = checkpoint.checkpoint_dir(workdir)
    # A save killed half-way (kill -9): Orbax's temporary directory, with
    # only part of the files; it must not count as step 6.
    shutil.copytree(os.path.join(ckpts, "4"),
                    os.path.join(ckpts, "6.orbax-checkpoint-tmp"))
    shutil.rmtree(os.path.join(ckpts, "6.orbax-checkpoint-tmp", "online"))
    with self.assertLogs("absl", "WARNING") as logs:
      state, meta = exp.restore(exp.new_state())
    self.assertEqual(meta["step"], 4)
    chex.assert_trees_all_equal(state.online,
                                jax.tree.map(lambda x: x + 1, at_2))
    self.assertIn("6.orbax-checkpoint-tmp", logs.output[0])
    self.assertIn("step 4", logs.output[0])
    # A finished step whose arrays were lost (a damaged disk or copy): the
    # one before it is restored, with a warning naming both.
    shutil.rmtree(os.path.join(ckpts, "4", "online", "d"))
    shutil.rmtree(os.path.join(ckpts, "4", "online", "ocdbt.process_0"))
    with self.assertLogs("absl", "WARNING") as logs:
      state, meta = exp.restore(exp.new_state())
    self.assertEqual(meta["step"], 2)
    self.assertEqual(int(state.step), 2)
    self.assertTrue(any("step 4" in l and "falling back to step 2" in l
                        for l in logs.output), logs.output)
    chex.assert_trees_all_equal(state.online, at_2)
    # None readable: refused (never a silent fresh start over them).
    shutil.rmtree(os.path.join(ckpts, "2", "online", "d"))
    shutil.rmtree(os.path.join(ckpts, "2", "online", "ocdbt.process_0"))
    with self.assertRaisesRegex(RuntimeError, "No checkpoint .* can be read"):
      exp.restore(exp.new_state())

  def test_metrics_after_the_restored_step_and_torn_lines_are_dropped(self):
    workdir = make_tempdir(self)
    writer = MetricWriter(workdir, tensorboard=False)
    for step in range(1, 6):
      writer.write(step, {"loss": 0.5 * step})
    with open(writer.path, "a") as f:
      f.write('{"step": 6, "loss"')
    self.assertEqual(writer.discard_after(3), 3)
    self.assertEqual(read_metrics(workdir),
                     [{"step": s, "loss": 0.5 * s} for s in (1, 2, 3)])
    self.assertEqual(writer.discard_after(3), 0)  # idempotent
    self.assertEqual(MetricWriter(make_tempdir(self)).discard_after(0), 0)


class NonFiniteTest(chex.TestCase):

  def test_skip_drops_the_update_counts_it_and_does_not_recompile(self):
    config = tiny_toy_config()
    exp = experiment.Experiment(config, "/unused", one_device())

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, batch):
      return train_step(
          state, batch, model=exp.model, tx=exp.tx,
          objective=objective.make_objective(config, exp.source.example_shape),
          lr_schedule=optim.learning_rate_schedule(config.optim),
          ema_decay=0.9, skip_nonfinite=True)

    it = DataIterator(exp.source, 16, seed=0)
    batch = lambda: sharding.to_global(next(it), exp.mesh)
    state, m = step(exp.new_state(), batch())
    self.assertEqual(int(m["skipped"]), 0)
    before = jax.device_get(state)
    bad = next(it)
    bad["x"][3] = np.nan
    state, m = step(state, sharding.to_global(bad, exp.mesh))
    self.assertFalse(np.isfinite(m["loss"]))
    self.assertEqual((int(m["skipped"]), int(state.step)), (1, 2))
    for item in ("online", "target", "ema", "opt_state"):
      chex.assert_trees_all_equal(getattr(state, item), getattr(before, item))
    np.testing.assert_allclose(m["param_norm"],
                               optax_norm(before.online), rtol=1e-6)
    state, m = step(state, batch())  # the next finite batch updates again
    self.assertEqual(int(m["skipped"]), 1)
    self.assertTrue(np.isfinite(m["loss"]))
    self.assertFalse(np.array_equal(state.online["out"]["kernel"],
                                    before.online["out"]["kernel"]))

  def test_skip_mode_in_the_loop_counts_and_stops_past_max_skipped(self):
    workdir = make_tempdir(self)
    c = tiny_toy_config(num_steps=8)  # checkpoints every 2 steps
    c.optim.lr = 1e30  # every update overflows θ: each one is skipped
    c.train.nonfinite = "skip"
    c.train.max_skipped = 3
    with self.assertRaisesRegex(FloatingPointError, "4 non-finite updates "
                                "skipped by step 4 .*last good checkpoint is "
                                "step 2"):
      train_mode.train(c, workdir, one_device())
    self.assertEqual([r["skipped"] for r in read_metrics(workdir)], [1, 2, 3])
    exp = experiment.Experiment(c, workdir, one_device())
    state, meta = exp.restore(exp.new_state())
    self.assertEqual((meta["step"], meta["skipped"]), (2, 2))
    self.assertEqual(int(state.skipped), 2)  # restored with the state
    chex.assert_trees_all_equal(state.online, exp.new_state().online)

  def test_unknown_nonfinite_mode_lists_the_valid_ones(self):
    c = tiny_toy_config()
    c.train.nonfinite = "ignore"
    with self.assertRaisesRegex(ValueError, "train.nonfinite.*skip, stop"):
      train_mode.train(c, make_tempdir(self))


def optax_norm(tree):
  return float(jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree.leaves(tree))))


class StartValidationTest(chex.TestCase):

  def _refused(self, config, pattern, error=ValueError):
    with self.assertRaisesRegex(error, pattern):
      experiment.Experiment(config, "/unused", sharding.make_mesh())

  def test_incompatible_options_are_refused(self):
    c = tiny_toy_config()
    c.data.name = "moons"  # no labels
    c.model.num_classes = 10
    self._refused(c, "no labels; set --config.model.num_classes=0")
    c.data.name = "gmm"  # labelled by mode: 8
    c.model.num_classes = 4
    self._refused(c, "8 classes but model.num_classes=4; set "
                  "--config.model.num_classes=8")
    c = tiny_toy_config()
    c.loss.metric = "lpips"
    self._refused(c, "lpips.*RGB images.*shape \\(2,\\)")
    c = tiny_toy_config()
    c.train.ema_decay = 1.5
    self._refused(c, "train.ema_decay=1.5 must lie in \\[0, 1\\]")
    c = tiny_toy_config()
    c.data.source = "digits"  # images into the 2-D MLP
    self._refused(c, "model.name='mlp' takes vectors.*model.name=unet")

  def test_unet_resolution_must_fit_its_levels(self):
    from configs import quickstart
    c = quickstart.get_config()
    c.data.resolution = 12
    c.model.ch_mult = (1, 1, 1)  # halves twice: needs multiples of 4 ...
    experiment.Experiment(c, "/unused", sharding.make_mesh())
    c.model.ch_mult = (1, 1, 1, 1)  # ... thrice: 8
    self._refused(c, "multiples of 8.*12×12")

  def test_npz_of_wrong_dtype_or_shape_is_refused(self):
    tmp = make_tempdir(self)
    cases = (
        (dict(x_train=np.zeros((4, 8, 8, 3), np.float32)), "uint8 \\[N,H,W,C\\]"),
        (dict(x_train=np.zeros((4, 8, 8), np.uint8)), "uint8 \\[N,H,W,C\\]"),
        (dict(x_train=np.zeros((4, 8, 8, 3), np.uint8),
              y_train=np.zeros((5,), np.int64)), "labels must be integer \\[4\\]"),
        (dict(x_test=np.zeros((4, 8, 8, 3), np.uint8)), "no array 'x_train'"))
    for i, (arrays, pattern) in enumerate(cases):
      path = os.path.join(tmp, f"{i}.npz")
      np.savez(path, **arrays)
      c = tiny_toy_config()
      c.data.source = "npz"
      c.data.path = path
      self._refused(c, pattern)

  def test_workdir_of_another_method_or_data_shape_is_refused(self):
    workdir = make_tempdir(self)
    save_checkpoints(experiment.Experiment(tiny_toy_config(), workdir, one_device()),
                     (2,))
    c = tiny_toy_config(num_steps=4)
    c.method = "edm"
    with self.assertRaisesRegex(ValueError, "method='ct', not 'edm'"):
      train_mode.train(c, workdir)
    exp = experiment.Experiment(tiny_toy_config(), workdir, sharding.make_mesh())
    meta = checkpoint.read_meta(checkpoint.make_manager(workdir))
    self.assertEqual(meta["example_shape"], [2])
    with self.assertRaisesRegex(ValueError, "shape \\(2,\\), but the data now "
                                "have \\(3,\\)"):
      checkpoint.check_compatible(meta["config"], exp.config, workdir,
                                  meta["example_shape"], (3,))


@pytest.mark.slow
def test_fault_injection_resumes_exactly(tmp_path):
  sys.path.insert(0, os.path.join(REPO, "scripts"))
  import fault_inject  # pylint: disable=g-import-not-at-top
  summary = fault_inject.fault_inject(kills=2, num_steps=120,
                                      checkpoint_every=7, seed=1,
                                      workdir=str(tmp_path))
  assert summary["survived"] == 3, summary
  assert summary["differences"] == [], summary["differences"]
  assert min(summary["steps_lost"]) >= 0, summary

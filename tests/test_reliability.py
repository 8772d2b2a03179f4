"""Surviving pre-emption and crashes, skipping non-finite updates, and the
checks at start (the exact-resume test is in test_train.py)."""

import json
import os
import shutil
import signal
import socket
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
from cm_jax import methods
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
    named = stopped[0].split("; checkpoint ")[1].split(". Rerun")[0]
    self.assertEqual(named, os.path.join(checkpoint.checkpoint_dir(workdir),
                                         str(step)))
    self.assertTrue(os.path.isdir(named))  # complete, not a temporary name
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
          objective=methods.make_objective(config, exp.source.example_shape),
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

  def test_a_run_saved_under_a_methods_old_name_reads_under_the_new(self):
    """method=edm is now method=diffusion: a teacher run saved as "edm"
    reads as a diffusion run (CD accepts it; it resumes), and a config
    that still says edm is refused with the new name in one line."""
    workdir = make_tempdir(self)
    c = tiny_toy_config(num_steps=2)
    c.method = "diffusion"
    train_mode.train(c, workdir, one_device())
    step_dir = os.path.join(workdir, "checkpoints", "2", "meta")
    with open(os.path.join(step_dir, "metadata")) as f:
      saved = json.load(f)
    saved["config"]["method"] = "edm"  # as runs before the rename wrote it
    with open(os.path.join(step_dir, "metadata"), "w") as f:
      json.dump(saved, f)
    _, meta = checkpoint.read_run(workdir, "teacher.workdir", ("diffusion",),
                                  "the teacher")
    self.assertEqual(meta["config"]["method"], "diffusion")
    c.train.num_steps = 4
    self.assertEqual(int(train_mode.train(c, workdir, one_device()).step), 4)
    c.method = "edm"
    with self.assertRaisesRegex(ValueError, "^method=edm is now "
                                "method=diffusion; set --config.method="
                                "diffusion.$"):
      methods.make_objective(c, (2,))

  def test_workdir_of_another_method_or_data_shape_is_refused(self):
    workdir = make_tempdir(self)
    save_checkpoints(experiment.Experiment(tiny_toy_config(), workdir, one_device()),
                     (2,))
    c = tiny_toy_config(num_steps=4)
    c.method = "diffusion"
    with self.assertRaisesRegex(ValueError, "method='ct', not 'diffusion'"):
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
  tried = [f for f in summary["faults"] if f["survived"] is not None]
  assert summary["faults_survived"] == len(tried) >= 3, summary["faults"]
  assert summary["differences"] == [], summary["differences"]
  assert min(summary["steps_lost"]) >= 0, summary


# ------------------------------------------------- reliability, round two ----


def largest_file(directory):
  files = [os.path.join(d, f) for d, _, names in os.walk(directory)
           for f in names]
  return max(files, key=os.path.getsize)


def steps_on_disk(workdir):
  return sorted(int(n) for n in os.listdir(checkpoint.checkpoint_dir(workdir))
                if n.isdigit())


def assert_every_step_restores(test, exp, workdir):
  """Every listed checkpoint restores and passes its checksums."""
  manager = checkpoint.make_manager(workdir)
  abstract = {name: getattr(exp.abstract_state(), name)
              for name in checkpoint.ARRAY_ITEMS}
  for step in manager.all_steps():
    meta = checkpoint.read_meta(manager, step)
    test.assertIn("checksums", meta)
    checkpoint.restore(manager, abstract, step, meta)


class CheckpointRetentionTest(chex.TestCase):

  def test_keep_checkpoints_below_one_is_refused_and_deletes_nothing(self):
    workdir = make_tempdir(self)
    train_mode.train(tiny_toy_config(num_steps=4), workdir, one_device())
    c = tiny_toy_config(num_steps=6)
    c.train.keep_checkpoints = 0
    with self.assertRaisesRegex(ValueError, "keep_checkpoints=0 would delete "
                                "every checkpoint.*keep_checkpoints=1"):
      train_mode.train(c, workdir, one_device())
    self.assertEqual(steps_on_disk(workdir), [2, 4])

  def test_an_unreadable_checkpoint_is_moved_aside_and_saved_again(self):
    # Issue 19 B: Orbax skips saves at or below the latest step it lists, so
    # a broken step 4 left in place is never written again, and rotation
    # deletes the good step 2 first.
    workdir = make_tempdir(self)
    train_mode.train(tiny_toy_config(num_steps=4), workdir, one_device())
    ckpts = checkpoint.checkpoint_dir(workdir)
    with open(largest_file(os.path.join(ckpts, "4", "online")), "r+b") as f:
      f.truncate(10)
    c = tiny_toy_config(num_steps=6)
    c.train.keep_checkpoints = 2
    with self.assertLogs("absl", "WARNING") as logs:
      train_mode.train(c, workdir, one_device())
    self.assertTrue(any("step 4" in l and "falling back to step 2" in l
                        for l in logs.output), logs.output)
    self.assertTrue(any("Moved the unreadable checkpoint of step 4" in l
                        for l in logs.output), logs.output)
    self.assertTrue(os.path.isdir(os.path.join(ckpts, "4" + checkpoint.CORRUPT)))
    self.assertEqual(steps_on_disk(workdir), [4, 6])
    assert_every_step_restores(self, experiment.Experiment(c, workdir,
                                                           one_device()), workdir)
    # A rerun past the end resumes from the good, re-saved, step 6.
    c.train.num_steps = 8
    exp = experiment.Experiment(c, workdir, one_device())
    _, meta = exp.restore(exp.new_state())
    self.assertEqual(meta["step"], 6)

  def test_read_only_restores_move_nothing(self):
    workdir = make_tempdir(self)
    exp = experiment.Experiment(tiny_toy_config(), workdir, one_device())
    save_checkpoints(exp, (2, 4))
    ckpts = checkpoint.checkpoint_dir(workdir)
    with open(largest_file(os.path.join(ckpts, "4", "ema")), "r+b") as f:
      f.truncate(10)
    with self.assertLogs("absl", "WARNING"):
      _, meta = exp.restore(exp.abstract_state(), items=("ema",))
    self.assertEqual(meta["step"], 2)
    self.assertEqual(steps_on_disk(workdir), [2, 4])  # as found


class IntegrityTest(chex.TestCase):

  def test_a_flipped_bit_fails_the_checksum_and_falls_back(self):
    workdir = make_tempdir(self)
    exp = experiment.Experiment(tiny_toy_config(), workdir, one_device())
    save_checkpoints(exp, (2, 4))
    manager = checkpoint.make_manager(workdir)
    abstract = {"online": exp.abstract_state().online}
    saved = checkpoint.restore(manager, abstract, 4)["online"]
    path = largest_file(os.path.join(checkpoint.checkpoint_dir(workdir), "4",
                                     "online", "ocdbt.process_0"))
    with open(path, "rb") as f:
      original = f.read()
    # Find a bit whose flip Orbax reads without an error but with another
    # value (zstd may also reject a flip; such a one proves nothing here).
    silent = None
    for offset in range(len(original) // 2, len(original), 97):
      flipped = bytearray(original)
      flipped[offset] ^= 0x10
      with open(path, "wb") as f:
        f.write(flipped)
      try:
        read = checkpoint.restore(checkpoint.make_manager(workdir), abstract,
                                  4)["online"]
      except Exception:  # pylint: disable=broad-except
        continue
      if not all(np.array_equal(a, b) for a, b in zip(
          jax.tree.leaves(read), jax.tree.leaves(saved))):
        silent = offset
        break
    self.assertIsNotNone(silent, "no flip read silently: nothing to test")
    with self.assertLogs("absl", "WARNING") as logs:
      state, meta = exp.restore(exp.new_state())
    self.assertEqual(meta["step"], 2)
    self.assertTrue(any("step 4" in l and "checksum" in l
                        and "falling back to step 2" in l
                        for l in logs.output), logs.output)
    chex.assert_trees_all_equal(state.online, exp.new_state().online)

  def test_checksums_catch_any_single_flipped_bit_and_ignore_sharding(self):
    x = {"a": jnp.arange(12, dtype=jnp.float32).reshape(4, 3),
         "b": jnp.ones((5,), jnp.bfloat16), "c": jnp.int32(7)}
    sums = checkpoint.checksums({"item": x})["item"]
    for bit in (0, 13, 31):
      bad = jax.lax.bitcast_convert_type(x["a"], jnp.uint32)
      bad = bad.at[1, 2].set(bad[1, 2] ^ jnp.uint32(1 << bit))
      y = {**x, "a": jax.lax.bitcast_convert_type(bad, jnp.float32)}
      self.assertNotEqual(checkpoint.checksums({"item": y})["item"]["['a']"],
                          sums["['a']"])
    with self.assertRaisesRegex(checkpoint.CorruptCheckpointError,
                                "array item\\['a'\\] does not match"):
      checkpoint.verify({"item": y}, {"item": sums}, 4)
    mesh = sharding.make_mesh()  # 4 fake devices: the same sums
    split = jax.device_put(x["a"], jax.NamedSharding(mesh, jax.P("data")))
    self.assertEqual(checkpoint.checksums({"item": {**x, "a": split}})["item"],
                     sums)


def _launch_toy(workdir, *flags, python_prefix=(), timeout=120):
  """launch.py on tiny toy2d (one device); (exit code, stderr)."""
  cmd = [sys.executable, *python_prefix, "launch.py", "--config=configs/toy2d.py",
         f"--workdir={workdir}", "--config.model.hidden=32",
         "--config.model.depth=2", "--config.data.num_examples=512",
         "--config.curriculum.s0=2", "--config.curriculum.s1=16",
         "--config.train.batch_size=16", "--config.train.sample_every=0",
         "--config.train.tensorboard=False", "--config.train.log_every=1",
         "--config.train.checkpoint_every=2", *flags]
  done = subprocess.run(cmd, cwd=REPO, env=ONE_DEVICE_ENV, text=True,
                        capture_output=True, timeout=timeout)
  return done.returncode, done.stderr


# Runs launch.py with os.makedirs failing with ENOSPC for Orbax's temporary
# directory of the saves from step 8 on (a full disk, whatever the machine).
FULL_DISK = textwrap.dedent("""
    import errno, os, runpy, sys
    real = os.makedirs
    def makedirs(path, *args, **kwargs):
      step = os.path.basename(str(path)).split(".")[0]
      if str(path).endswith(".orbax-checkpoint-tmp") and step.isdigit() and (
          int(step) >= 8):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
      return real(path, *args, **kwargs)
    os.makedirs = makedirs
    sys.argv = sys.argv[1:]
    runpy.run_path("launch.py", run_name="__main__")
""")


class WriteFaultTest(chex.TestCase):

  def _trained(self):
    workdir = make_tempdir(self)
    train_mode.train(tiny_toy_config(num_steps=4), workdir, one_device())
    return workdir

  def _assert_one_line_stop(self, code, err, workdir, reason):
    self.assertNotEqual(code, 0, err[-2000:])
    # The failed save at step 100 stops the run before the next one (200).
    self.assertLess(read_metrics(workdir, torn_ok=True)[-1]["step"], 200)
    self.assertNotIn("Traceback", err)
    last = err.strip().splitlines()[-1]
    self.assertRegex(last, f"^launch.py: Cannot write a checkpoint to "
                     f"{checkpoint.checkpoint_dir(workdir)}/\\S+: {reason}")
    self.assertFalse(os.path.exists(os.path.join(workdir, "train.lock")))

  def test_unwritable_checkpoint_dir_stops_in_one_line(self):
    # Issue 19 C: the process used to hang for ever on Orbax's threads.
    workdir = self._trained()
    ckpts = checkpoint.checkpoint_dir(workdir)
    if os.geteuid() == 0:  # root ignores permissions: make it immutable
      if subprocess.run(["chattr", "+i", ckpts], capture_output=True,
                        check=False).returncode:
        self.skipTest("root, and chattr +i unsupported here")
      self.addCleanup(subprocess.run, ["chattr", "-i", ckpts], check=False)
      reason = "Operation not permitted"
    else:
      os.chmod(ckpts, 0o555)
      self.addCleanup(os.chmod, ckpts, 0o755)
      reason = "Permission denied"
    code, err = _launch_toy(workdir, "--config.train.num_steps=400",
                            "--config.train.checkpoint_every=100", timeout=90)
    self._assert_one_line_stop(code, err, workdir, reason)
    self.assertEqual(steps_on_disk(workdir), [2, 4])

  def test_full_disk_stops_in_one_line_and_loses_nothing(self):
    workdir = self._trained()
    code, err = _launch_toy(workdir, "--config.train.num_steps=400",
                            "--config.train.checkpoint_every=100",
                            python_prefix=("-c", FULL_DISK), timeout=90)
    self._assert_one_line_stop(code, err, workdir,
                               "No space left on device \\[errno 28\\]; free")
    self.assertEqual(steps_on_disk(workdir), [2, 4])  # all kept
    exp = experiment.Experiment(tiny_toy_config(), workdir, one_device())
    assert_every_step_restores(self, exp, workdir)


class WorkdirLockTest(chex.TestCase):

  def test_a_second_training_run_stops_at_once_naming_the_holder(self):
    workdir = make_tempdir(self)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from cm_jax.train.lock import workdir_lock
            with workdir_lock({workdir!r}):
              print("held", flush=True)
              sys.stdin.read()
        """)], cwd=REPO, env=ONE_DEVICE_ENV, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    self.addCleanup(holder.kill)
    self.assertEqual(holder.stdout.readline(), "held\n")
    with self.assertRaisesRegex(RuntimeError, f"pid {holder.pid} on host "
                                f"{socket.gethostname()}.*holds "
                                f"{workdir}/train.lock; only one run"):
      train_mode.train(tiny_toy_config(), workdir, one_device())
    self.assertFalse(os.path.exists(os.path.join(workdir, "checkpoints")))
    # Reading beside it is allowed (no lock): sample from a checkpoint.
    exp = experiment.Experiment(tiny_toy_config(), workdir, one_device())
    save_checkpoints(exp, (2,))
    sample_mode.sample(tiny_toy_config(), workdir, one_device())
    holder.communicate("", timeout=30)  # releases the lock, deletes it
    self.assertFalse(os.path.exists(os.path.join(workdir, "train.lock")))
    train_mode.train(tiny_toy_config(), workdir, one_device())

  def test_a_dead_holders_lock_is_taken_over_another_hosts_refused(self):
    workdir = make_tempdir(self)
    gone = subprocess.Popen(["true"])
    gone.wait()
    path = os.path.join(workdir, "train.lock")
    with open(path, "w") as f:
      json.dump({"host": socket.gethostname(), "pid": gone.pid,
                 "started": "then"}, f)
    with self.assertLogs("absl", "WARNING") as logs:
      train_mode.train(tiny_toy_config(num_steps=2), workdir, one_device())
    self.assertTrue(any(f"Taking over the lock {path} of pid {gone.pid}" in l
                        for l in logs.output), logs.output)
    self.assertFalse(os.path.exists(path))  # released on exit
    with open(path, "w") as f:
      json.dump({"host": "elsewhere", "pid": 1, "started": "then"}, f)
    with self.assertRaisesRegex(RuntimeError, "pid 1 on host elsewhere.*if "
                                "that run is gone, delete the file"):
      train_mode.train(tiny_toy_config(num_steps=4), workdir, one_device())


class StartChecksTest(chex.TestCase):

  def _refused(self, config, pattern):
    with self.assertRaisesRegex(ValueError, pattern):
      experiment.Experiment(config, "/unused", one_device())

  def test_learning_rate_and_tuple_fields(self):
    for lr in (float("nan"), -1e-3, 0.0, float("inf")):
      c = tiny_toy_config()
      c.optim.lr = lr
      self._refused(c, "optim.lr=.* must be a finite positive number")
    from configs import quickstart  # pylint: disable=g-import-not-at-top
    c = quickstart.get_config()
    c.model.ch_mult = (1.5,)  # what --config.model.ch_mult=1.5 gives
    self._refused(c, r"model.ch_mult=\(1.5,\) must be a tuple of integers")
    c.model.ch_mult = (1, 2.5)
    self._refused(c, r"model.ch_mult=\(1, 2.5\) must be a tuple of integers")
    c = tiny_toy_config()
    c.sample.ts = ("0.8",)
    self._refused(c, r"sample.ts=\('0.8',\) must be a tuple of numbers")

  def test_empty_workdir_is_refused(self):
    from cm_jax import run  # pylint: disable=g-import-not-at-top
    for workdir in ("", "  "):
      with self.assertRaisesRegex(ValueError, "--workdir is empty"):
        run.run(tiny_toy_config(), workdir)

  def test_npz_labels_emptiness_and_damage_name_the_file(self):
    tmp = make_tempdir(self)
    images = np.zeros((4, 8, 8, 1), np.uint8)
    cases = (
        (dict(x_train=images, y_train=np.array([0, 1, -1, 2])), 10,
         "labels -1 … 2, outside \\[0, 10\\)"),
        (dict(x_train=images, y_train=np.array([0, 1, 12, 2])), 10,
         "labels 0 … 12, outside \\[0, 10\\)"),
        (dict(x_train=images[:0]), 0, "holds no examples"))
    for i, (arrays, num_classes, pattern) in enumerate(cases):
      path = os.path.join(tmp, f"{i}.npz")
      np.savez(path, **arrays)
      c = tiny_toy_config()
      c.data.source, c.data.path, c.data.num_classes = "npz", path, num_classes
      c.model.name = "unet"
      self._refused(c, f"{path}: .*{pattern}")
    path = os.path.join(tmp, "torn.npz")
    np.savez(path, x_train=images)
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
    c = tiny_toy_config()
    c.data.source, c.data.path = "npz", path
    self._refused(c, f"Cannot read the npz data file {path}: BadZipFile")

  def test_a_resume_with_another_optimizer_seed_or_data_is_refused(self):
    workdir = make_tempdir(self)
    train_mode.train(tiny_toy_config(num_steps=2), workdir, one_device())
    changes = (("optim", "name", "adam", "optim.name: 'radam' there, 'adam' "
                "now"), (None, "seed", 5, "seed: 0 there, 5 now"),
               ("data", "num_modes", 4, "data.num_modes: 8 there, 4 now"))
    for group, field, value, pattern in changes:
      c = tiny_toy_config(num_steps=4)
      (c[group] if group else c)[field] = value
      with self.assertRaisesRegex(ValueError, f"another {pattern}.*"
                                  "allow_changed_resume=True"):
        train_mode.train(c, workdir, one_device())
    self.assertEqual(steps_on_disk(workdir), [2])  # nothing moved or written
    c.train.allow_changed_resume = True
    with self.assertLogs("absl", "WARNING") as logs:
      train_mode.train(c, workdir, one_device())
    self.assertTrue(any("data.num_modes: 8 there, 4 now" in l
                        for l in logs.output), logs.output)
    self.assertEqual(steps_on_disk(workdir), [2, 4])

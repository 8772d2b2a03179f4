"""The training system end to end on tiny models and 4 fake CPU devices."""

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax import checkpoint, sharding
from cm_jax import experiment
from cm_jax.modes import evaluate as eval_mode
from cm_jax.modes import sample as sample_mode
from cm_jax.modes import train as train_mode
from cm_jax import methods
from cm_jax.train import optim, preemption
from cm_jax.train.step import train_step
from configs import quickstart, toy2d

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_toy_config(num_steps=4):
  c = toy2d.get_config()
  c.data.num_examples = 512
  c.model.hidden = 32
  c.model.depth = 2
  c.curriculum.s0 = 2
  c.curriculum.s1 = 16
  c.train.num_steps = num_steps
  c.train.batch_size = 16
  c.train.log_every = 1
  c.train.checkpoint_every = 2
  c.train.sample_every = 0
  c.train.tensorboard = False
  c.sample.num = 32
  c.sample.batch_size = 32
  return c


def tiny_meanflow_config(num_steps=4):
  """``tiny_toy_config`` as MeanFlow (configs/meanflow_toy2d.py's method)."""
  c = tiny_toy_config(num_steps)
  methods.meanflow.configure(c, methods.meanflow.IMAGENET)
  return c


def make_tempdir(test):
  tmp = tempfile.TemporaryDirectory()
  test.addCleanup(tmp.cleanup)
  return tmp.name


def read_metrics(workdir, torn_ok=False):
  """metrics.jsonl as dicts; ``torn_ok`` skips a partial last line."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    lines = f.readlines()
  if torn_ok and lines and not lines[-1].endswith("\n"):
    lines = lines[:-1]
  return [json.loads(line) for line in lines]


def _step_once(config, mesh):
  """One jitted step from a fresh state on ``mesh``; returns (state, metrics)."""
  exp = experiment.Experiment(config, "/unused", mesh)
  state = exp.new_state()
  from cm_jax.data import DataIterator
  batch = next(DataIterator(exp.source, config.train.batch_size, seed=0))
  step = functools.partial(
      train_step, model=exp.model, tx=exp.tx,
      objective=methods.make_objective(config, exp.source.example_shape),
      lr_schedule=optim.learning_rate_schedule(config.optim),
      ema_decay=config.train.ema_decay)
  return jax.jit(step)(state, sharding.to_global(batch, mesh))


class TrainTest(chex.TestCase):

  def test_four_devices_give_the_single_device_loss(self):
    self.assertEqual(jax.device_count(), 4)
    config = tiny_toy_config()
    config.model.dropout = 0.1  # dropout keys must not depend on the mesh
    s1, m1 = _step_once(config, sharding.make_mesh(jax.devices()[:1]))
    s4, m4 = _step_once(config, sharding.make_mesh())
    np.testing.assert_allclose(m4["loss"], m1["loss"], rtol=1e-5)
    np.testing.assert_allclose(m4["grad_norm"], m1["grad_norm"], rtol=1e-5)
    chex.assert_trees_all_close(s4.online, s1.online, rtol=1e-5, atol=1e-6)

  def test_meanflow_gradient_on_four_devices_is_the_single_device_one(self):
    """A MeanFlow step with the batch sharded over 4 devices: the JVP inside
    the loss syncs like any other term, so loss, gradient norm and the
    updated θ equal one device's (the bug of torch.func.jvp under DDP)."""
    config = tiny_meanflow_config()
    config.model.dropout = 0.1
    s1, m1 = _step_once(config, sharding.make_mesh(jax.devices()[:1]))
    s4, m4 = _step_once(config, sharding.make_mesh())
    np.testing.assert_allclose(m4["loss"], m1["loss"], rtol=1e-5)
    np.testing.assert_allclose(m4["grad_norm"], m1["grad_norm"], rtol=1e-5)
    chex.assert_trees_all_close(s4.online, s1.online, rtol=1e-5, atol=1e-6)

  def test_step_traced_once_across_curriculum_changes(self):
    config = tiny_toy_config(num_steps=8)  # iCT: K' = 2, N = 3, 5, 9, 17, 17
    exp = experiment.Experiment(config, "/unused", sharding.make_mesh())
    obj = methods.make_objective(config, exp.source.example_shape)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, batch):
      return train_step(state, batch, model=exp.model, tx=exp.tx, objective=obj,
                        lr_schedule=optim.learning_rate_schedule(config.optim),
                        ema_decay=0.9)

    state = exp.new_state()
    from cm_jax.data import DataIterator
    it = DataIterator(exp.source, 16, seed=0)
    seen = []
    for _ in range(8):
      state, metrics = step(state, sharding.to_global(next(it), exp.mesh))
      seen.append(int(metrics["num_scales"]))
    self.assertEqual(seen, [3, 3, 5, 5, 9, 9, 17, 17])

  def test_ict_target_is_online_and_ct_target_follows_mu(self):
    config = tiny_toy_config()
    mesh = sharding.make_mesh()
    state, _ = _step_once(config, mesh)  # iCT: μ = 0
    chex.assert_trees_all_equal(state.target, state.online)
    config.curriculum.name = "ct"
    config.target.ema = "adaptive"
    state, metrics = _step_once(config, mesh)
    # μ(0) = exp(s0 log μ0 / N(0)) with N(0) = s0: μ0 exactly.
    np.testing.assert_allclose(metrics["target_mu"], 0.9, rtol=1e-6)
    fresh = experiment.Experiment(config, "/unused", mesh).new_state()
    want = jax.tree.map(lambda t, o: 0.9 * t + 0.1 * o, fresh.target, state.online)
    chex.assert_trees_all_close(state.target, want, rtol=1e-6)

  def test_resume_reproduces_the_uninterrupted_run(self):
    """A run killed after step 5 (its checkpoint at 4, metrics up to 5 and a
    torn line) resumes to the same metrics and bit-identical state (CPU, one
    device): data position, dropout keys, optimizer, θ⁻, EMA, curriculum."""
    config = tiny_toy_config(num_steps=8)
    config.model.dropout = 0.1  # per-step keys must resume
    config.curriculum.name = "ct"  # N(k) grows over the 8 steps ...
    config.target.ema = "adaptive"  # ... and θ⁻ ≠ θ, μ(k) follows it
    rows, _ = self._assert_resumes_bit_exactly(config)
    self.assertGreater(len({r["num_scales"] for r in rows}), 1)

  def test_ect_resumes_bit_exactly_across_its_stages(self):
    """ECT from scratch, its stage s = ⌊k/3⌋ changing during the run."""
    config = tiny_toy_config(num_steps=8)
    config.method, config.loss.metric = "ect", "l2_norm"
    config.ect.stage_steps = 3
    config.model.dropout = 0.1
    rows, _ = self._assert_resumes_bit_exactly(config)
    self.assertEqual([r["ect_stage"] for r in rows], [0, 0, 0, 1, 1, 1, 2, 2])

  def test_sct_resumes_bit_exactly_with_its_adaptive_weight(self):
    """sCT with the learned w_φ (its head is part of θ, the optimizer state
    and the EMA) and the tangent warm-up half done at the interruption."""
    config = tiny_toy_config(num_steps=8)
    config.method, config.process = "sct", "trigflow"
    config.model.adaptive_weight = True
    config.model.dropout = 0.1
    config.scm.warmup_steps = 6
    rows, state = self._assert_resumes_bit_exactly(config)
    self.assertEqual(rows[-1]["tangent_warmup"], 1.0)
    self.assertLess(rows[0]["tangent_warmup"], 1.0)
    head = state.online["adaptive_weight"]["out"]["kernel"]
    self.assertGreater(float(jnp.abs(head).max()), 0.0)  # w_φ trained (init 0)

  def test_scd_starts_from_its_trigflow_teacher_and_resumes_bit_exactly(self):
    """sCD from a TrigFlow teacher run (method=diffusion, process=trigflow): the
    student starts as the teacher plus a zero w_φ head, trains, resumes."""
    teacher_dir = os.path.join(make_tempdir(self), "teacher")
    teacher = tiny_toy_config(num_steps=2)
    teacher.method, teacher.process = "diffusion", "trigflow"
    teacher.sample.ode_steps = 4
    taught = train_mode.train(teacher, teacher_dir,
                              sharding.make_mesh(jax.devices()[:1]))
    config = tiny_toy_config(num_steps=8)
    config.method, config.process = "scd", "trigflow"
    config.model.adaptive_weight = True
    config.teacher.workdir, config.teacher.init_student = teacher_dir, True
    fresh = make_tempdir(self)
    exp = experiment.Experiment(config, fresh,
                                sharding.make_mesh(jax.devices()[:1]))
    start, _ = exp.initial_state(checkpoint.make_manager(fresh))
    chex.assert_trees_all_equal(start.online["layer0"], taught.ema["layer0"])
    self._assert_resumes_bit_exactly(config)
    config.trigflow.time_scale = 2.0  # another c_noise(t) than the teacher's
    with self.assertRaisesRegex(ValueError, "trigflow.time_scale: 1.0 there"):
      _ = experiment.Experiment(config, fresh).teacher

  def test_tcm_starts_from_its_stage1_run_and_resumes_bit_exactly(self):
    """TCM's stage 2 from a stage-1 run (method=ect with TCM's choices): θ
    starts as its EMA, φ is that EMA with θ's dropout, the boundary and
    truncated means are logged, and a killed run resumes bit-exactly."""
    stage1_dir = os.path.join(make_tempdir(self), "stage1")
    stage1 = tiny_toy_config(num_steps=2)
    stage1.model.dropout = 0.1
    methods.tcm.configure_stage1(stage1, stage_steps=3)
    trained = train_mode.train(stage1, stage1_dir,
                               sharding.make_mesh(jax.devices()[:1]))
    config = tiny_toy_config(num_steps=8)
    config.model.dropout = 0.1
    methods.tcm.configure(config, stage_steps=3, start_stage=8)
    config.teacher.workdir = stage1_dir
    fresh = make_tempdir(self)
    exp = experiment.Experiment(config, fresh,
                                sharding.make_mesh(jax.devices()[:1]))
    start, _ = exp.initial_state(checkpoint.make_manager(fresh))
    chex.assert_trees_all_equal(start.online, trained.ema)
    chex.assert_trees_all_equal(start.ema, trained.ema)
    rows, _ = self._assert_resumes_bit_exactly(config)
    self.assertEqual([r["ect_stage"] for r in rows], [8, 8, 8, 9, 9, 9, 10, 10])
    self.assertTrue(all(r["loss_boundary"] > 0 and r["loss_consistency"] > 0
                        for r in rows))

  def test_meanflow_resumes_bit_exactly(self):
    """MeanFlow (a two-time network on the linear process, forward mode in
    the step) killed and resumed equals the uninterrupted run."""
    config = tiny_meanflow_config(num_steps=8)
    config.model.dropout = 0.1
    self._assert_resumes_bit_exactly(config)

  def test_imf_and_shortcut_resume_bit_exactly(self):
    """iMF (its v head, the JVP along its own v) and shortcut models (θ⁻,
    an EMA in the state, read by the self-consistency targets) killed and
    resumed equal their uninterrupted runs."""
    imf = tiny_meanflow_config(num_steps=8)
    imf.method, imf.model.v_head = "imf", True
    self._assert_resumes_bit_exactly(imf)
    shortcut = tiny_meanflow_config(num_steps=8)
    methods.shortcut.configure(shortcut)
    shortcut.shortcut.denoise_steps = 4  # 2 step sizes, 2 examples in 16
    _, final = self._assert_resumes_bit_exactly(shortcut)
    self.assertFalse(all(jax.tree.leaves(jax.tree.map(
        lambda a, b: bool(jnp.all(a == b)), final.target, final.online))))

  def _assert_resumes_bit_exactly(self, config):
    """Trains ``config`` uninterrupted and killed after step 5 then resumed;
    returns the metrics rows after checking they and the state agree."""
    tmp = make_tempdir(self)
    full, part = os.path.join(tmp, "full"), os.path.join(tmp, "part")
    one = lambda: sharding.make_mesh(jax.devices()[:1])
    final_full = train_mode.train(config, full, one())
    with mock.patch.object(preemption.GracefulStop, "requested",
                           lambda self, step, manager: step == 5):
      train_mode.train(config, part, one())  # as after SIGTERM: stops, saves at 5
    shutil.rmtree(os.path.join(part, "checkpoints", "5"))  # now as kill -9
    with open(os.path.join(part, "metrics.jsonl"), "a") as f:
      f.write('{"step": 6, "lo')  # a line torn by the kill
    self.assertEqual([r["step"] for r in read_metrics(part, torn_ok=True)],
                     [1, 2, 3, 4, 5])
    final_part = train_mode.train(config, part, one())  # resumes from step 4
    drop_rate = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_s"}
                              for r in rows]
    self.assertEqual(drop_rate(read_metrics(part)), drop_rate(read_metrics(full)))
    self.assertLen(read_metrics(full), 8)
    for item in ("online", "target", "ema", "opt_state"):
      chex.assert_trees_all_equal(getattr(final_part, item),
                                  getattr(final_full, item))
    return read_metrics(full), final_full

  def test_checkpoint_from_four_devices_restores_on_one(self):
    tmp = make_tempdir(self)
    four, mixed = os.path.join(tmp, "four"), os.path.join(tmp, "mixed")
    config = tiny_toy_config(num_steps=4)
    final_four = train_mode.train(config, four, sharding.make_mesh())
    train_mode.train(tiny_toy_config(num_steps=2), mixed, sharding.make_mesh())
    one = sharding.make_mesh(jax.devices()[:1])
    final_mixed = train_mode.train(config, mixed, one)
    self.assertEqual(final_mixed.online["out"]["kernel"].sharding.mesh.size, 1)
    chex.assert_trees_all_close(final_mixed.online, final_four.online, rtol=1e-5,
                                atol=1e-6)

  def test_sample_mode_writes_npz_and_png(self):
    workdir = make_tempdir(self)
    config = tiny_toy_config(num_steps=2)
    train_mode.train(config, workdir)
    for steps in (1, 2):
      config.sample.steps = steps
      path = sample_mode.sample(config, workdir)
      self.assertEqual(os.path.basename(path), f"samples_2_{steps}step.npz")
      samples = np.load(path)["samples"]
      self.assertEqual(samples.shape, (32, 2))
      self.assertEqual(samples.dtype, np.float32)
      self.assertTrue(os.path.exists(path[:-4] + ".png"))

  def test_digits_unet_end_to_end(self):
    workdir = make_tempdir(self)
    c = quickstart.get_config()
    c.model.ch = 8
    c.model.ch_mult = (1,)
    c.train.num_steps = 1
    c.train.batch_size = 8
    c.train.sample_every = 1
    c.train.tensorboard = False
    c.sample.grid_size = 4
    c.sample.num = 4
    train_mode.train(c, workdir)
    rows = read_metrics(workdir)
    self.assertEqual([r["step"] for r in rows], [1])
    self.assertTrue(np.isfinite(rows[0]["loss"]))
    self.assertTrue(os.path.isdir(os.path.join(workdir, "checkpoints", "1")))
    self.assertTrue(os.path.exists(os.path.join(workdir, "samples",
                                                "grid_00000001.png")))
    c.sample.steps = 2
    samples = np.load(sample_mode.sample(c, workdir))["samples"]
    self.assertEqual((samples.shape, samples.dtype), ((4, 8, 8, 1), np.uint8))
    # --mode=eval through the real FID Inception (gray → 3 channels, 8 → 299).
    c.eval.num, c.eval.ref_num, c.eval.batch_size = 4, 4, 8
    results = eval_mode.evaluate(c, workdir)
    with open(os.path.join(workdir, "eval", "metrics_1.json")) as f:
      self.assertEqual(json.load(f), results)
    for key in ("fid_1step", "fid_2step", "kid_1step", "kid_2step"):
      self.assertTrue(np.isfinite(results[key]), key)
    self.assertGreater(results["fid_1step"], 0)
    self.assertIn("4 examples of digits", results["reference_description"])


class ValidationTest(chex.TestCase):

  def test_unknown_names_list_the_valid_ones(self):
    for field, value, listed in (("data.source", "mnist", "digits"),
                                 ("model.name", "resnet", "unet"),
                                 ("loss.metric", "l3", "pseudo_huber"),
                                 ("curriculum.name", "cosine", "ict"),
                                 ("optim.name", "sgd", "radam")):
      c = tiny_toy_config()
      group, name = field.split(".")
      c[group][name] = value
      with self.assertRaisesRegex(ValueError, listed):
        exp = experiment.Experiment(c, "/unused", sharding.make_mesh())
        methods.make_objective(c, exp.source.example_shape)

  def test_non_finite_update_stops_and_keeps_the_last_good_checkpoint(self):
    workdir = make_tempdir(self)
    train_mode.train(tiny_toy_config(num_steps=2), workdir)  # a good checkpoint at 2
    c = tiny_toy_config(num_steps=5)
    c.optim.lr = 1e30  # the next update overflows the parameters
    c.train.allow_changed_resume = True  # (resuming with another lr)
    with self.assertRaisesRegex(FloatingPointError,
                                "step 3 .*last good checkpoint is step 2"):
      train_mode.train(c, workdir)
    c.optim.lr = 1e-3
    exp = experiment.Experiment(c, workdir, sharding.make_mesh())
    state, meta = exp.restore(exp.new_state())
    self.assertEqual(meta["step"], 2)
    self.assertTrue(all(np.all(np.isfinite(x))
                        for x in jax.tree.leaves(state.online)))

  def test_context_width_is_checked_against_the_data(self):
    c = tiny_toy_config()
    c.model.context_dim = 4  # the toy data have no contexts
    with self.assertRaisesRegex(ValueError, "has none; set --config.model."
                                "context_dim=0"):
      experiment.Experiment(c, "/unused", sharding.make_mesh())
    c.data.context_dim = 3
    with self.assertRaisesRegex(ValueError, "width 3 but model.context_dim=4; "
                                r"set --config.model.context_dim=3\."):
      experiment.Experiment(c, "/unused", sharding.make_mesh())
    c.model.context_dim = 3
    experiment.Experiment(c, "/unused", sharding.make_mesh())

  def test_missing_npz_path_names_the_flag(self):
    c = tiny_toy_config()
    c.data.source = "npz"
    c.data.path = "/nonexistent/data.npz"
    with self.assertRaisesRegex(FileNotFoundError, "config.data.path"):
      experiment.Experiment(c, "/unused", sharding.make_mesh())

  def test_workdir_of_another_architecture_is_refused(self):
    workdir = make_tempdir(self)
    train_mode.train(tiny_toy_config(num_steps=2), workdir)
    c = tiny_toy_config(num_steps=4)
    c.model.hidden = 64
    with self.assertRaisesRegex(ValueError, "model.hidden: 32 there, 64 now"):
      train_mode.train(c, workdir)

  def test_cli_rejects_unknown_field_and_trains(self):
    tmp = make_tempdir(self)
    cmd = [sys.executable, "launch.py", "--config=configs/toy2d.py",
           f"--workdir={tmp}"]
    bad = subprocess.run(cmd + ["--config.train.nonexistent=1"], cwd=REPO,
                         capture_output=True, text=True)
    self.assertNotEqual(bad.returncode, 0)
    self.assertIn("nonexistent", bad.stderr)
    ok = subprocess.run(cmd + ["--config.train.num_steps=3",
                               "--config.model.hidden=16",
                               "--config.train.sample_every=3",
                               "--config.data.num_examples=256"],
                        cwd=REPO, capture_output=True, text=True)
    self.assertEqual(ok.returncode, 0, ok.stderr[-2000:])
    self.assertEqual(read_metrics(tmp)[-1]["step"], 3)
    self.assertTrue(os.path.exists(os.path.join(tmp, "samples",
                                                "grid_00000003.png")))

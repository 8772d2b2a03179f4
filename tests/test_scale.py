"""Scale switches: FSDP equals data parallelism; bf16 compute stays close."""

import json

import chex
import jax
import numpy as np
import pytest

from cm_jax import nn, sharding
from cm_jax.data import DataIterator
from cm_jax import experiment
from cm_jax.modes import evaluate as eval_mode
from cm_jax.modes import sample as sample_mode
from cm_jax.modes import train as train_mode
from cm_jax import methods
from cm_jax.train import optim
from cm_jax.train.step import jit_train_step
from tests.test_train import tiny_toy_config


def _run_steps(config, num_steps=2):
  exp = experiment.Experiment(config, "/unused")
  state_sharding = exp.state_sharding()
  step = jit_train_step(
      state_sharding, sharding.batch_sharding(exp.mesh), None, model=exp.model,
      tx=exp.tx,
      objective=methods.make_objective(config, exp.source.example_shape),
      lr_schedule=optim.learning_rate_schedule(config.optim),
      ema_decay=config.train.ema_decay)
  state = exp.new_state()
  iterator = DataIterator(exp.source, config.train.batch_size, seed=0)
  losses = []
  for _ in range(num_steps):
    state, metrics = step(state, sharding.to_global(next(iterator), exp.mesh),
                          None)
    losses.append(float(metrics["loss"]))
  return state, losses


def test_fsdp_shards_the_state_and_matches_data_parallelism():
  config = tiny_toy_config()
  config.model.hidden = 128  # 128×128 kernels: large enough to be sharded
  dp_state, dp_losses = _run_steps(config)
  config.train.param_sharding = "fsdp"
  fsdp_state, fsdp_losses = _run_steps(config)
  kernel = fsdp_state.online["layer0"]["kernel"]  # [128, 128] over 4 devices
  assert kernel.addressable_shards[0].data.size * 4 == kernel.size
  assert fsdp_state.online["layer0"]["bias"].sharding.is_fully_replicated
  for tree in (fsdp_state.target, fsdp_state.ema,
               fsdp_state.opt_state[1][0].mu):  # θ⁻, EMA and Adam's m too
    assert not tree["layer0"]["kernel"].sharding.is_fully_replicated
  np.testing.assert_allclose(fsdp_losses, dp_losses, rtol=1e-5)
  chex.assert_trees_all_close(jax.device_get(fsdp_state.online),
                              jax.device_get(dp_state.online), rtol=1e-5,
                              atol=1e-6)


def test_bfloat16_compute_keeps_float32_params_and_the_loss():
  config = tiny_toy_config(num_steps=3)
  config.model.hidden = 128
  f32_state, f32_losses = _run_steps(config, 3)
  config.model.dtype = "bfloat16"
  bf16_state, bf16_losses = _run_steps(config, 3)
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(
      (bf16_state.online, bf16_state.ema, bf16_state.opt_state))
             if np.issubdtype(x.dtype, np.floating))
  print("loss float32", f32_losses, "bfloat16", bf16_losses)
  np.testing.assert_allclose(bf16_losses, f32_losses, rtol=2e-2)
  # The network really computes in bf16: same params, outputs ≈ 1e-2 apart.
  params = jax.device_get(f32_state.online)
  x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
  c_noise = np.linspace(-1.5, 1.5, 64).astype(np.float32)
  outputs = []
  for dtype in ("float32", "bfloat16"):
    config.model.dtype = dtype
    outputs.append(nn.get_model(config.model).apply(
        {"params": params}, x, nn.Condition(c_noise)))
  assert outputs[1].dtype == np.float32
  rel = np.abs(outputs[1] - outputs[0]).max() / np.abs(outputs[0]).max()
  assert 1e-4 < rel < 5e-2, rel


def test_scanned_steps_equal_single_steps():
  config = tiny_toy_config()
  exp = experiment.Experiment(config, "/unused")
  static = dict(
      model=exp.model, tx=exp.tx,
      objective=methods.make_objective(config, exp.source.example_shape),
      lr_schedule=optim.learning_rate_schedule(config.optim),
      ema_decay=config.train.ema_decay)
  shardings = (exp.state_sharding(), sharding.batch_sharding(exp.mesh), None)
  single = jit_train_step(*shardings, **static)
  scanned = jit_train_step(*shardings, steps_per_dispatch=3, **static)
  iterator = DataIterator(exp.source, config.train.batch_size, seed=0)
  batches = [next(iterator) for _ in range(3)]
  state = exp.new_state()
  losses = []
  for batch in batches:
    state, metrics = single(state, sharding.to_global(batch, exp.mesh), None)
    losses.append(float(metrics["loss"]))
  stacked = jax.tree.map(lambda *xs: np.stack(xs), *batches)
  scan_state, scan_metrics = scanned(
      exp.new_state(), sharding.to_global(stacked, exp.mesh, stacked=True),
      None)
  assert scan_metrics["loss"].shape == (3,)
  np.testing.assert_allclose(scan_metrics["loss"], losses, rtol=1e-6)
  chex.assert_trees_all_close(jax.device_get(scan_state.online),
                              jax.device_get(state.online), rtol=1e-6,
                              atol=1e-7)
  assert int(scan_state.step) == 3


def test_steps_per_dispatch_and_prefetch_keep_the_metrics(tmp_path):
  config = tiny_toy_config(num_steps=6)
  config.train.log_every = config.train.checkpoint_every = 2
  config.data.prefetch = 0
  train_mode.train(config, str(tmp_path / "plain"))
  config.train.steps_per_dispatch = 2
  config.data.prefetch = 2
  config.train.num_steps = 4  # then resume from its checkpoint to 6
  train_mode.train(config, str(tmp_path / "scanned"))
  config.train.num_steps = 6
  train_mode.train(config, str(tmp_path / "scanned"))
  rows = {}
  for name in ("plain", "scanned"):
    with open(tmp_path / name / "metrics.jsonl") as f:
      rows[name] = [json.loads(line) for line in f]
  assert [r["step"] for r in rows["scanned"]] == [2, 4, 6]
  for a, b in zip(rows["plain"], rows["scanned"]):
    for key in ("loss", "grad_norm", "param_norm", "num_scales"):
      np.testing.assert_allclose(b[key], a[key], rtol=1e-5, err_msg=key)
  config.train.log_every = 3
  with pytest.raises(ValueError, match="multiple of train.steps_per_dispatch"):
    train_mode.train(config, str(tmp_path / "bad"))


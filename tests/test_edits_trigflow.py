"""CM Alg. 4 on sCM's TrigFlow (x_t = cos t·x0 + sin t·z, z ~ N(0, σ_d²I)):
the editors' guarantees, the process's noising against the Gaussian truth,
and --mode=edit on a tiny sCT run (in process and through launch.py).

Gaussian truth: data x0 ~ N(m, s²I) has x_t ~ N(cos t·m, v(t)I), v(t) =
s²·cos²t + σ_d²·sin²t, and the exact consistency function is
f*(x, t) = m + s·(x − cos t·m)/√v(t). f* maps a state with TrigFlow's
marginal at t to N(m, s²) exactly, and any other noising (VE's x + t·z, a
missing σ_d or cos t) to another mean or std.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import analytic
from cm_jax import editing, processes, run, samplers
from cm_jax.data.base import uint8_to_float
from cm_jax.modes import edit as edits
from cm_jax.modes import train as train_mode
from cm_jax.parametrization import expand_to
from configs import base, sct_digits
from test_edits import HALF_LEVEL, smooth_colour_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M, S, SD = 0.5, 0.6, 0.5  # data mean, data std, σ_d
TRIGFLOW = processes.TrigFlow(sigma_data=SD)
TS = (TRIGFLOW.t_max, 1.1, 0.4)  # TrigFlow times, descending
N = 512  # images of 8×8×1 for the statistics: 32,768 values


def gaussian_f(process=TRIGFLOW, m=M, s=S):
  """f*(x, t) = m + s·(x − cos t·m)/√(s²cos²t + σ_d²sin²t)."""

  def f(x, t):
    cos, sin = expand_to(jnp.cos(t), x), expand_to(jnp.sin(t), x)
    v = s ** 2 * cos ** 2 + process.sigma_data ** 2 * sin ** 2
    return m + s * (x - cos * m) / jnp.sqrt(v)

  return f


def mixture_f(process=TRIGFLOW):
  """A non-trivial TrigFlow f (mixing pixels): the VE mixture denoiser at
  x_t/cos t and σ = σ_d·tan t (TrigFlow is EDM's VE process re-timed)."""
  means = jax.random.uniform(jax.random.key(42), (3, 8, 8, 3), minval=-1,
                             maxval=1)
  denoiser = analytic.mixture_denoiser(means, 0.3)

  def f(x, t):
    return denoiser(x / expand_to(jnp.cos(t), x),
                    process.sigma_data * jnp.tan(t))

  return f


def images(seed, shape=(4, 8, 8, 3)):
  return jax.random.uniform(jax.random.key(seed), shape, minval=-1, maxval=1)


def assert_data_statistics(x, what):
  x = np.asarray(x)
  # Standard errors: 0.0033 (mean) and 0.0023 (std); a wrong noising is > 0.1
  # off (VE's x + t·z: std 1.9 after the second step).
  assert abs(x.mean() - M) < 0.02, (what, x.mean())
  assert abs(x.std() - S) < 0.02, (what, x.std())


# ------------------------------------------------------------- processes ----


def test_ve_sigma_to_process_time():
  sigmas = jnp.array([0.002, 0.4, 2.0, 80.0])
  np.testing.assert_array_equal(processes.VE().from_ve_sigma(sigmas), sigmas)
  t = TRIGFLOW.from_ve_sigma(sigmas)
  np.testing.assert_allclose(SD * jnp.tan(t), sigmas, rtol=1e-5)
  assert float(t[-1]) == pytest.approx(TRIGFLOW.t_max)
  vp = processes.VP()
  t = np.asarray(vp.from_ve_sigma(sigmas))
  assert np.all(t == np.round(t)) and np.all(np.diff(t) > 0)
  ratio = np.sqrt((1 - vp.alphas_cumprod) / vp.alphas_cumprod)
  for sigma, step in zip(np.asarray(sigmas), t.astype(int)):
    assert np.abs(ratio - sigma).argmin() == step
  assert (TRIGFLOW.prior_std, processes.VE().prior_std, vp.prior_std) == (
      SD, 80.0, 1.0)


def test_default_edit_times_are_the_trigflow_grid():
  config = base.get_base_config()
  config.edit.steps = 4
  ts = edits.edit_times(config.edit, TRIGFLOW, "inpaint")
  # T and the interior of process.grid(5), descending.
  np.testing.assert_array_equal(ts, np.asarray(TRIGFLOW.grid(5))[1:][::-1])
  assert ts[0] == pytest.approx(TRIGFLOW.t_max)
  # stroke_t is a VE σ: t_1 = arctan(σ/σ_d).
  stroke = edits.edit_times(config.edit, TRIGFLOW, "stroke")
  assert stroke[0] == pytest.approx(np.arctan(config.edit.stroke_t / SD))
  assert len(stroke) == 4 and all(a > b for a, b in zip(stroke, stroke[1:]))
  config.edit.ts = (1.5, 1.1, 0.2)  # the run's own times, as given
  assert edits.edit_times(config.edit, TRIGFLOW, "inpaint") == (1.5, 1.1, 0.2)
  config.edit.ts = (2.0, 1.1)  # past t_max = arctan(80/0.5) ≈ 1.5645
  with pytest.raises(ValueError, match="edit.ts.*1.5645"):
    edits.edit_times(config.edit, TRIGFLOW, "inpaint")
  config.edit.ts, config.edit.stroke_t = (), 100.0
  with pytest.raises(ValueError, match="edit.stroke_t=100.0 \\(a VE σ\\)"):
    edits.edit_times(config.edit, TRIGFLOW, "stroke")


# ------------------------------------------------------------ guarantees ----


def test_trigflow_inpainting_keeps_every_unmasked_pixel():
  y = images(0)
  mask = jnp.zeros_like(y).at[:, 2:6, 2:6, :].set(1.0)
  out = jax.jit(lambda k: editing.inpaint(mixture_f(), k, y, mask, TS,
                                          process=TRIGFLOW))(jax.random.key(0))
  keep = np.asarray(mask) == 0
  np.testing.assert_array_equal(np.asarray(out)[keep], np.asarray(y)[keep])
  assert float(jnp.abs(out - y)[:, 2:6, 2:6].mean()) > 1e-3  # generated


def test_trigflow_super_resolution_pools_back_and_colorize_keeps_luminance():
  y_low = images(2, (4, 4, 4, 3))
  out = editing.super_resolve(mixture_f(), jax.random.key(2), y_low, 2, TS,
                              process=TRIGFLOW)
  np.testing.assert_allclose(editing.average_pool(out, 2), y_low, atol=2e-6)
  assert float(jnp.std(out - jnp.repeat(jnp.repeat(y_low, 2, 1), 2, 2))) > 1e-3
  y = images(1)
  out = editing.colorize(mixture_f(), jax.random.key(1), y, TS,
                         process=TRIGFLOW)
  np.testing.assert_allclose(editing.luminance(out), editing.luminance(y),
                             atol=2e-6)


# ------------------------------------------- the noising, against truth ----


def test_trigflow_alg4_noising_gives_the_data_distribution():
  """Ω = 1 (generate everything): Alg. 4 is multistep sampling from y = 0;
  with f* every step returns N(m, s²) only if each noised state has
  TrigFlow's marginal N(cos t·m, v(t)): lines 3 and 7 are right."""
  f = gaussian_f()
  y = jnp.zeros((N, 8, 8, 1))
  for ts in (TS[:1], TS[:2], TS):
    out = jax.jit(lambda k, ts=ts: editing.inpaint(
        f, k, y, jnp.ones_like(y), ts, process=TRIGFLOW))(jax.random.key(3))
    assert_data_statistics(out, ts)
  # The same run with VE's noising (x + t·z, its ε) is far off.
  out = editing.inpaint(f, jax.random.key(3), y, jnp.ones_like(y), TS)
  assert abs(float(jnp.std(out)) - S) > 0.5


def test_trigflow_stroke_denoise_and_interpolate_match_the_truth():
  f = gaussian_f()
  x0 = M + S * jax.random.normal(jax.random.key(4), (N, 8, 8, 1))
  # stroke: the guide is noised to t_1 by the process (from real data here).
  out = editing.stroke_edit(f, jax.random.key(5), x0, (1.2, 0.5),
                            process=TRIGFLOW)
  assert_data_statistics(out, "stroke")
  # denoise: y = x0 + σ·n is x_t/cos t at t = arctan(σ/σ_d).
  sigma = 0.4
  n = jax.random.normal(jax.random.key(6), x0.shape)
  out = editing.denoise(f, None, x0 + sigma * n, sigma, process=TRIGFLOW)
  t = np.arctan(sigma / SD)
  expected = f(TRIGFLOW.noise(x0, n, jnp.float32(t)), jnp.full((N,), t))
  np.testing.assert_allclose(out, expected, atol=1e-5)
  assert_data_statistics(out, "denoise")
  # interpolate: one step from T on σ_d·slerp(z0, z1, α), the prior's scale.
  z = jax.random.normal(jax.random.key(7), (2, 64, 32, 16))
  out = samplers.interpolate(f, z[0], z[1], jnp.linspace(0, 1, 3),
                             t_max=TRIGFLOW.t_max,
                             prior_std=TRIGFLOW.prior_std)
  for row in out:
    assert_data_statistics(row, "interpolate")


# ---------------------------------------------------- --mode=edit on sCT ----


def tiny_sct_config(data_path):
  """configs/sct_digits.py shrunk to an 8×8 RGB UNet on an npz."""
  c = sct_digits.get_config()
  c.data.source = "npz"
  c.data.path = data_path
  c.model.ch = 8
  c.model.ch_mult = (1,)
  c.train.num_steps = 2
  c.train.batch_size = 16
  c.train.checkpoint_every = 2
  c.train.sample_every = 0
  c.train.tensorboard = False
  c.edit.num = 4
  c.edit.steps = 3
  return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp("edits_trigflow")
  data_path = str(root / "data.npz")
  np.savez(data_path, x_train=smooth_colour_images(64))
  workdir = str(root / "run")
  config = tiny_sct_config(data_path)
  assert config.process == "trigflow" and config.method == "sct"
  train_mode.train(config, workdir)
  outputs = {}
  for task in edits.TASKS:
    c = config.copy_and_resolve_references()
    c.edit.task, c.edit.mask, c.edit.num_alphas = task, "strokes", 5
    prefix = run.run(c, workdir, "edit")
    assert os.path.exists(prefix + ".png")
    with np.load(prefix + ".npz") as arrays:
      outputs[task] = dict(arrays)
  return config, workdir, outputs


def test_every_task_runs_on_a_sct_model_and_keeps_its_guarantees(trained):
  out = trained[2]
  assert out["interpolate"]["result"].shape == (4, 5, 8, 8, 3)
  for task in ("inpaint", "colorize", "superres", "stroke", "denoise"):
    assert out[task]["result"].shape == (4, 8, 8, 3), task
  inpaint = out["inpaint"]
  keep = inpaint["mask"] == 0
  assert 0 < keep.mean() < 1
  np.testing.assert_array_equal(inpaint["result"][keep], inpaint["input"][keep])
  np.testing.assert_array_equal(inpaint["result"][keep],
                                inpaint["reference"][keep])
  superres = out["superres"]
  np.testing.assert_allclose(
      editing.average_pool(uint8_to_float(superres["result"]), 2),
      uint8_to_float(superres["input"]), atol=HALF_LEVEL + 1e-5)
  colorize = out["colorize"]
  np.testing.assert_allclose(
      editing.luminance(uint8_to_float(colorize["result"])),
      editing.luminance(uint8_to_float(colorize["input"])),
      atol=HALF_LEVEL + 1e-5)


def test_sct_edit_through_the_command_line(trained):
  config, workdir = trained[:2]
  command = [sys.executable, "launch.py", "--config=configs/sct_digits.py",
             f"--workdir={workdir}", "--mode=edit"]
  command += [f"--config.{k}={v}" for k, v in (
      ("data.source", "npz"), ("data.path", config.data.path),
      ("model.ch", 8), ("model.ch_mult", "(1,)"),
      ("edit.task", "inpaint"), ("edit.mask", "left"), ("edit.num", 2),
      ("edit.ts", "(1.5,1.1,0.5)"))]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  assert os.path.exists(os.path.join(workdir, "edits", "inpaint.png"))
  with np.load(os.path.join(workdir, "edits", "inpaint.npz")) as out:
    assert out["result"].shape == (2, 8, 8, 3)
    keep = out["mask"] == 0
    np.testing.assert_array_equal(keep[:, :, 4:], True)
    np.testing.assert_array_equal(keep[:, :, :4], False)
    np.testing.assert_array_equal(out["result"][keep], out["input"][keep])

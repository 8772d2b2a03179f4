"""sCD from a VE EDM teacher: TrigFlow with trigflow.network=edm.

TrigFlow is EDM's VE process re-timed, σ = σ_d·tan t and x_VE = x_t/cos t;
with EDM's Table 1 scalings the VE denoiser D(x; σ) = c_skip·x +
c_out·net(c_in·x, ¼ ln σ) is TrigFlow's x̂0 = cos t·x_t − sin t·σ_d·F with
F(x_in, t) = −net(x_in, ¼·ln(σ_d·tan t)) (cm_jax/processes.py). Checked
against the truth, not against that formula:
1. for a random network, TrigFlow's x̂0 at (cos t·x, t) is EDM's D(x; σ_d·tan
   t) (``parametrization.edm_denoiser``), TrigFlow's DDIM step is EDM's
   Euler step, f(x, 0) = x, and t → 0 is finite;
2. for Gaussian data, the VE closed forms written as EDM raw networks give
   TrigFlow's closed-form velocity and consistency F, the VE PF-ODE mapped
   through the change of variables, and a zero sCD tangent per sample;
3. launch.py: a VE edm run, then sCD from it whose student starts as the
   teacher (its first loss is 0: F_θ = F_θ⁻ = F_teacher, so g = 0).
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax import losses, nn, parametrization, processes, solvers, teacher
from cm_jax.methods.scm import (
    SimplifiedConsistencyDistillation)
from configs import base

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S, SD, DIM = 0.8, 0.5, 3  # data std s, σ_d, dimension


def tiny_net(key=0):
  """A random 2-layer MLP with the w_φ head, every parameter non-zero."""
  c = base.get_base_config()
  base.set_mlp(c)
  c.model.hidden, c.model.depth, c.model.adaptive_weight = 16, 2, True
  model = nn.get_model(c.model)
  params = model.init(jax.random.key(key),
                      *nn.dummy_inputs(model, (DIM,)))["params"]
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(key + 1), len(leaves))
  params = jax.tree.unflatten(tree, [
      p + 0.3 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
  return nn.network(model, params, None)


# 1. The conversion identity on a random network.


def test_edm_network_is_edms_denoiser_in_trigflow_variables():
  net = tiny_net()
  process = processes.TrigFlow(sigma_data=SD, network="edm")
  x = jax.random.normal(jax.random.key(2), (8, DIM))
  t = jnp.concatenate([
      jax.random.uniform(jax.random.key(3), (6,), minval=1e-3,
                         maxval=process.t_max),
      process.grid(18)[jnp.array([0, 17])]])  # σ_min and t_max
  x_t = jnp.cos(t)[:, None] * x
  want = parametrization.edm_denoiser(net, SD)(x, SD * jnp.tan(t))
  np.testing.assert_allclose(process.denoiser(net)(x_t, t), want, rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_array_equal(process.consistency_fn(net)(x_t, t),
                                process.denoiser(net)(x_t, t))
  # F = −net(x_in, ¼·ln(σ_d·tan t)); the sign is F's only, not w_φ's.
  F, log_w = process.velocity_net(net)(x, t, return_weight=True)
  raw, raw_w = net(x, 0.25 * jnp.log(SD * jnp.tan(t)), return_weight=True)
  np.testing.assert_allclose(F, -raw, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(log_w, raw_w, rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(raw_w).min()) > 0
  # sCM's reading (network=trigflow) is left as it was.
  sc = processes.TrigFlow(sigma_data=SD)
  np.testing.assert_array_equal(sc.velocity_net(net)(x, t), net(x, t))


def test_trigflow_ddim_on_the_edm_network_is_the_ve_euler_step():
  """DDIM on TrigFlow (α = cos t, σ = σ_d·sin t) steps in x/α = x_VE and
  σ/α = σ_d·tan t, so through the conversion one DDIM step of the teacher
  is EDM's Euler step of D from σ_d·tan t to σ_d·tan t' (EDM eq. 4)."""
  net = tiny_net()
  process = processes.TrigFlow(sigma_data=SD, network="edm")
  x = 2.0 * jax.random.normal(jax.random.key(8), (6, DIM))
  t = jax.random.uniform(jax.random.key(9), (6,), minval=0.05, maxval=1.5)
  t_next = 0.5 * t
  step = solvers.ddim_step(process.denoiser(net), jnp.cos(t)[:, None] * x, t,
                           t_next, process=process)
  ve = solvers.euler_step(parametrization.edm_denoiser(net, SD), x,
                          SD * jnp.tan(t), SD * jnp.tan(t_next))
  np.testing.assert_allclose(step, jnp.cos(t_next)[:, None] * ve, rtol=1e-4,
                             atol=1e-5)


def test_edm_network_at_t_zero_is_finite_and_the_identity():
  """¼·ln(σ_d·tan 0) = −∞ is clamped at σ_min: f(x, 0) = x exactly, and
  f's JVP, its parameter gradient and sCM's tangent stay finite."""
  net = tiny_net()
  process = processes.TrigFlow(sigma_data=SD, network="edm")
  f = process.consistency_fn(net)
  x = jax.random.normal(jax.random.key(4), (4, DIM))
  zero = jnp.zeros(4)
  np.testing.assert_array_equal(f(x, zero), x)
  assert float(process.c_noise(0.0)) == pytest.approx(
      0.25 * np.log(process.sigma_min))
  for t in (zero, jnp.full(4, 1e-7), jnp.full(4, 1e-3)):
    _, dfdt = jax.jvp(f, (x, t), (jnp.ones_like(x), jnp.ones_like(t)))
    assert bool(jnp.isfinite(dfdt).all()), t
    F = process.velocity_net(net)
    f_minus, g = losses.scm_tangent(F, x, t, -x, sigma_data=SD)
    assert bool(jnp.isfinite(f_minus).all() & jnp.isfinite(g).all()), t

  c = base.get_base_config()
  base.set_mlp(c)
  c.model.hidden, c.model.depth = 16, 2
  model = nn.get_model(c.model)
  params = model.init(jax.random.key(0), *nn.dummy_inputs(model, (DIM,)))
  grads = jax.grad(lambda p: jnp.sum(process.consistency_fn(
      nn.network(model, p["params"], None))(x, zero) ** 2))(params)
  assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


def test_network_names_and_time_scale_fail_in_one_line():
  with pytest.raises(ValueError, match="valid: edm, trigflow"):
    processes.TrigFlow(network="ve")
  with pytest.raises(ValueError, match="trigflow.time_scale=1"):
    processes.TrigFlow(network="edm", time_scale=2.0)


# 2. Gaussian data: the VE closed forms through the conversion.


def var(t):
  """v(t): x_t ~ N(0, v(t)I) under TrigFlow for x0 ~ N(0, s²I)."""
  return S ** 2 * jnp.cos(t) ** 2 + SD ** 2 * jnp.sin(t) ** 2


def ve_denoiser(x, sigma):
  """E[x0 | x0 + σn = x] = s²/(s² + σ²)·x (VE, Gaussian data)."""
  return S ** 2 / (S ** 2 + sigma[:, None] ** 2) * x


def ve_consistency(x, sigma):
  """The VE PF-ODE's trajectories are x(σ) = x0·√(s² + σ²)/s, so f*(x, σ) =
  s·x/√(s² + σ²)."""
  return S * x / jnp.sqrt(S ** 2 + sigma[:, None] ** 2)


def as_edm_net(fn):
  """``fn(x, σ)`` as an EDM raw network: net(c_in·x, ¼ ln σ) = (fn(x, σ) −
  c_skip·x)/c_out (EDM Table 1), σ = e^{4·c_noise}, x = x_in/c_in."""

  def net(x_in, c_noise):
    sigma = jnp.exp(4.0 * c_noise)
    c_skip, c_out, c_in, _ = parametrization.edm_scalings(sigma, SD)
    x = x_in / c_in[:, None]
    return (fn(x, sigma) - c_skip[:, None] * x) / c_out[:, None]

  return net


def trajectory_points(key, n):
  kt, kx = jax.random.split(key)
  t = losses.trigflow_time(kt, n, sigma_data=SD)
  assert float(jnp.min(SD * jnp.tan(t))) > processes.TrigFlow().sigma_min
  return jnp.sqrt(var(t))[:, None] * jax.random.normal(kx, (n, DIM)), t


def ve_velocity_in_trigflow(x_t, t):
  """dx_t/dt of the VE PF-ODE dx/dσ = (x − D(x; σ))/σ (EDM eq. 4) through
  x_t = cos t·x_VE, σ = σ_d·tan t: −sin t·x_VE + cos t·(dσ/dt)·dx_VE/dσ,
  dσ/dt = σ_d/cos²t."""
  sigma = SD * jnp.tan(t)
  x_ve = x_t / jnp.cos(t)[:, None]
  dx_dsigma = (x_ve - ve_denoiser(x_ve, sigma)) / sigma[:, None]
  return (-jnp.sin(t)[:, None] * x_ve
          + jnp.cos(t)[:, None] * (SD / jnp.cos(t) ** 2)[:, None] * dx_dsigma)


def test_gaussian_ve_teacher_gives_trigflow_velocity_and_zero_scd_tangent():
  with jax.enable_x64(True):
    process = processes.TrigFlow(sigma_data=SD, network="edm")
    x_t, t = trajectory_points(jax.random.key(5), 64)
    F_teacher = process.velocity_net(as_edm_net(ve_denoiser))
    F_star = process.velocity_net(as_edm_net(ve_consistency))
    velocity = SD * F_teacher(x_t / SD, t)
    # The VE PF-ODE mapped to TrigFlow, and TrigFlow's closed form
    # E[cos t·z − sin t·x0 | x_t] = sin t·cos t·(σ_d² − s²)/v(t)·x_t.
    np.testing.assert_allclose(velocity, ve_velocity_in_trigflow(x_t, t),
                               rtol=1e-9, atol=1e-12)
    exact = (jnp.sin(t) * jnp.cos(t) * (SD ** 2 - S ** 2) / var(t))[:, None]
    np.testing.assert_allclose(velocity, exact * x_t, rtol=1e-9, atol=1e-12)
    # F* of TrigFlow's consistency function s·x/√v(t) (sCM eq. 5 solved).
    want = (jnp.cos(t)[:, None] * x_t - S * x_t / jnp.sqrt(var(t))[:, None]
            ) / (SD * jnp.sin(t)[:, None])
    np.testing.assert_allclose(F_star(x_t / SD, t), want, rtol=1e-9,
                               atol=1e-12)
    # sCD's tangent (sCM Alg. 1) is zero per sample at F*, with the teacher.
    _, g = losses.scm_tangent(F_star, x_t, t, velocity, sigma_data=SD)
    assert float(jnp.abs(g).max()) < 1e-10 * float(jnp.abs(x_t).max())
    _, g = losses.scm_tangent(F_teacher, x_t, t, velocity, sigma_data=SD)
    assert float(jnp.abs(g).min(axis=-1).max()) > 1e-3  # not at the teacher

    # The same through sCD's objective, raw EDM networks in (loss = 0 at F*,
    # with w_φ ≡ 0), and not with a teacher 10% off.
    scd = SimplifiedConsistencyDistillation(
        p_mean=-1.0, p_std=1.4, tangent_c=0.1, tangent_norm="l2",
        warmup_steps=0, prior_weighting=True, adaptive=False,
        diffusion=process)
    x0 = S * jax.random.normal(jax.random.key(6), (64, DIM))
    star, teach = as_edm_net(ve_consistency), as_edm_net(ve_denoiser)
    # (the train step hands sCD its teacher as the CFG pair (φ_c, φ_∅))
    loss, _ = scd(star, star, x0, jax.random.key(7), 0,
                  teacher=(teach, teach))
    assert float(jnp.abs(loss).max()) < 1e-18
    off = as_edm_net(lambda x, s: 1.1 * ve_denoiser(x, s))
    loss, _ = scd(star, star, x0, jax.random.key(7), 0, teacher=(off, off))
    assert float(loss.mean()) > 1e-2  # (D ≈ 0 at large σ: a few near 0)


def test_ve_teacher_needs_network_edm_and_the_same_diffusion():
  c = base.get_base_config()
  c.method, c.process = "scd", "trigflow"
  saved = json.loads(base.get_base_config().to_json())  # process=ve, edm
  with pytest.raises(ValueError, match="set --config.trigflow.network=edm"):
    teacher._check_same_process(saved, c, "runs/edm")
  c.trigflow.network = "edm"
  teacher._check_same_process(saved, c, "runs/edm")  # accepted
  c.diffusion.sigma_data = 1.0  # the network's input and output scale
  with pytest.raises(ValueError, match="diffusion.sigma_data: 0.5 there"):
    teacher._check_same_process(saved, c, "runs/edm")
  # σ_min, σ_max and ρ set the student's grids and samplers, not what the
  # teacher's network computes (ECT evaluates with σ_min = 0.003).
  c.diffusion.sigma_data = 0.5
  c.diffusion.sigma_max, c.diffusion.sigma_min = 40.0, 0.003
  teacher._check_same_process(saved, c, "runs/edm")  # accepted
  # A TrigFlow teacher of sCM's reading (before trigflow.network existed)
  # is not an edm-reading student's.
  c.diffusion.sigma_max, c.diffusion.sigma_min = 80.0, 0.002
  saved.update(process="trigflow", trigflow={"time_scale": 1.0})
  with pytest.raises(ValueError, match="trigflow.network: 'trigflow' there"):
    teacher._check_same_process(saved, c, "runs/trigflow")


# 3. launch.py: the VE teacher, then sCD from it.

TINY = ("--config.model.hidden=32", "--config.model.depth=2",
        "--config.data.num_examples=512", "--config.train.batch_size=16",
        "--config.train.sample_every=0", "--config.train.tensorboard=False",
        "--config.train.log_every=1")


def launch(*flags):
  return subprocess.run([sys.executable, "launch.py", *flags, *TINY],
                        cwd=REPO, capture_output=True, text=True, timeout=600)


def test_scd_student_starts_as_the_ve_teacher(tmp_path):
  teacher_dir, student_dir = str(tmp_path / "edm"), str(tmp_path / "scd")
  run = launch("--config=configs/edm_toy2d.py", f"--workdir={teacher_dir}",
               "--config.train.num_steps=3",
               "--config.train.checkpoint_every=3")
  assert run.returncode == 0, run.stderr[-3000:]
  run = launch("--config=configs/scd_toy2d.py:edm",
               f"--workdir={student_dir}",
               f"--config.teacher.workdir={teacher_dir}",
               "--config.train.num_steps=2",
               "--config.train.checkpoint_every=2",
               "--config.scm.warmup_steps=10")
  assert run.returncode == 0, run.stderr[-3000:]
  with open(os.path.join(student_dir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  # Step 1 (k = 0, r = 0): g = −cos²t·σ_d·(F_θ⁻ − F_teacher) and F_θ − F_θ⁻
  # vanish only if the student is the converted teacher; w_φ starts at 0.
  assert rows[0]["tangent_warmup"] == 0.0
  assert abs(rows[0]["loss"]) < 1e-6, rows[0]
  assert rows[1]["loss"] != 0.0  # and then it trains
  # The VE teacher read as sCM's F is refused, saying how to fix it.
  run = launch("--config=configs/scd_toy2d.py:edm",
               f"--workdir={tmp_path / 'bad'}",
               f"--config.teacher.workdir={teacher_dir}",
               "--config.trigflow.network=trigflow",
               "--config.train.num_steps=2")
  assert run.returncode == 2, run.stderr[-3000:]
  lines = run.stderr.strip().splitlines()
  assert len(lines) == 1 and "set --config.trigflow.network=edm" in lines[0]

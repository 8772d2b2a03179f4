"""sCM on TrigFlow against the closed-form Gaussian truth.

Data x0 ~ N(0, s²I), x_t = cos t·x0 + sin t·z, z ~ N(0, σ_d²I), so x_t ~
N(0, v(t)I) with v(t) = s²·cos²t + σ_d²·sin²t, and
- the PF-ODE velocity is E[dx_t/dt | x_t] = sin t·cos t·(σ_d² − s²)/v(t)·x_t,
  whose trajectories are x_t = x0·√v(t)/s;
- the consistency function is f*(x, t) = s·x/√v(t), so with sCM eq. 5 the
  exact network is F*(x/σ_d, t) = (cos t·x − f*(x, t))/(σ_d·sin t);
- the TrigFlow diffusion model's F is the velocity / σ_d.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from cm_jax import losses, processes

S, SD, DIM = 0.8, 0.5, 3


def var(t):
  return S ** 2 * jnp.cos(t) ** 2 + SD ** 2 * jnp.sin(t) ** 2


def exact_velocity(x, t):
  t = t[:, None]
  return jnp.sin(t) * jnp.cos(t) * (SD ** 2 - S ** 2) / var(t) * x


def exact_F(x_in, t):
  """F* of the exact consistency function (sCM eq. 5 solved for F)."""
  x, t = SD * x_in, t[:, None]
  return (jnp.cos(t) * x - S * x / jnp.sqrt(var(t))) / (SD * jnp.sin(t))


def teacher_F(x_in, t):
  return exact_velocity(SD * x_in, t) / SD


def test_exact_F_maps_every_trajectory_point_to_its_origin():
  """f(x_t, t) = cos t·x_t − sin t·σ_d·F*(x_t/σ_d, c_noise(t)) returns x0 for
  every t of the process's grid, and f(x, 0) = x exactly."""
  process = processes.TrigFlow(sigma_data=SD)
  f = jax.jit(process.consistency_fn(exact_F))
  x0 = S * jax.random.normal(jax.random.key(0), (5, DIM))
  for t in np.asarray(process.grid(12))[1:]:
    tt = jnp.full((5,), t, jnp.float32)
    x_t = x0 * jnp.sqrt(var(tt))[:, None] / S
    np.testing.assert_allclose(f(x_t, tt), x0, rtol=2e-5, atol=2e-5)
  x = jax.random.normal(jax.random.key(1), (5, DIM))
  np.testing.assert_array_equal(
      process.consistency_fn(lambda x, c: x + 1.0)(x, jnp.zeros(5)), x)
  assert process.t_max == np.arctan(80.0 / SD)


def _trajectory_point(key, n):
  kt, kx = jax.random.split(key)
  t = losses.trigflow_time(kt, n, sigma_data=SD)
  x_t = jnp.sqrt(var(t))[:, None] * jax.random.normal(kx, (n, DIM))
  return x_t, t


def test_scd_tangent_is_zero_for_the_exact_F_and_matches_df_dt_otherwise():
  """With the exact teacher velocity, sCM's tangent g vanishes per sample for
  F*, and for a perturbed F it equals cos t·df⁻/dt along the exact PF-ODE
  (central differences of f⁻ along the trajectory x_t·√v(t')/√v(t))."""
  with jax.enable_x64(True):
    x_t, t = _trajectory_point(jax.random.key(2), 64)
    dxdt = exact_velocity(x_t, t)
    tangent = jax.jit(lambda F, r=1.0: losses.scm_tangent(
        F, x_t, t, dxdt, sigma_data=SD, warmup=r)[1], static_argnums=0)
    g = tangent(exact_F)
    assert float(jnp.abs(g).max()) < 1e-10 * float(jnp.abs(x_t).max())

    perturbed = lambda x_in, t: exact_F(x_in, t) + 0.3 * jnp.sin(
        x_in * t[:, None])
    g = tangent(perturbed)
    f = processes.TrigFlow(sigma_data=SD).consistency_fn(perturbed)
    along = jax.jit(lambda s: f(x_t * jnp.sqrt(var(s) / var(t))[:, None], s))
    h = 1e-5
    dfdt = (along(t + h) - along(t - h)) / (2 * h)
    np.testing.assert_allclose(g, jnp.cos(t)[:, None] * dfdt, rtol=1e-6,
                               atol=1e-8)
    assert float(jnp.abs(g).min(axis=-1).max()) > 1e-3
    # The tangent warm-up scales the JVP term: r = 0 keeps −cos²t(σ_d F − v).
    g0 = tangent(perturbed, 0.0)
    np.testing.assert_allclose(
        g0, -jnp.cos(t)[:, None] ** 2 * (SD * perturbed(x_t / SD, t) - dxdt),
        rtol=1e-12)


def _expected_gradient(loss_fn, n=40_000):
  """Mean and standard error of d loss/dθ over n examples."""
  with jax.enable_x64(True):
    x0 = S * jax.random.normal(jax.random.key(3), (n, DIM))
    per_example = jax.jit(jax.jacfwd(loss_fn))(0.0, x0, jax.random.key(4))
    return float(per_example.mean()), float(per_example.std() / np.sqrt(n))


def _sct_gradient(theta_minus):
  """d/dθ of the sCT loss (no normalisation, so g is linear in dx_t/dt) for
  F_θ = F* + θ·h at θ = θ⁻ (h(x_in, t) = x_in·sin t)."""
  net = lambda theta: lambda x_in, t: (
      exact_F(x_in, t) + theta * x_in * jnp.sin(t)[:, None])

  def loss_fn(delta, x0, key):
    online = lambda x_in, t: (net(theta_minus + delta)(x_in, t),
                              jnp.zeros_like(t))
    return losses.continuous_consistency_loss(
        online, net(theta_minus), x0, key, sigma_data=SD, tangent_c=0.0)

  return _expected_gradient(loss_fn)


def test_sct_gradient_vanishes_in_expectation_at_the_exact_F():
  """sCT's dx_t/dt = cos t·z − sin t·x0 is an unbiased estimate of the PF-ODE
  velocity, and g is linear in it, so at F* the expected gradient is 0
  (within 4 standard errors of 40,000 samples); at a perturbed F it is not."""
  mean, se = _sct_gradient(0.0)
  assert abs(mean) < 4 * se, (mean, se)
  mean, se = _sct_gradient(0.5)
  assert abs(mean) > 20 * se, (mean, se)


def test_trigflow_diffusion_loss_is_minimised_by_the_velocity():
  """The teacher's flow-matching loss: expected gradient 0 at F = v*/σ_d
  (the exact velocity), not at a shifted F."""
  def at(shift):
    def loss_fn(delta, x0, key):
      net = lambda x_in, t: teacher_F(x_in, t) + (shift + delta) * x_in
      return losses.trigflow_diffusion_loss(net, x0, key, sigma_data=SD)
    return _expected_gradient(loss_fn)

  mean, se = at(0.0)
  assert abs(mean) < 4 * se, (mean, se)
  mean, se = at(0.2)
  assert abs(mean) > 20 * se, (mean, se)


# The sCM loss written out again (sCM Alg. 1 and eq. 8, §4.2), in NumPy
# float64, on networks whose derivatives are known in closed form:
#   F⁻(x_in, t) = A·x_in·sin t + B·cos t, so along (dx_t/dt/σ_d, 1)
#   dF⁻/dt = A·sin t·(dx_t/dt)/σ_d + A·x_in·cos t − B·sin t;
#   F_θ(x_in, t) = C·x_in + t, w_φ(t) = E·cos t.
A, B, C, E = 0.7, -0.4, 1.3, 0.8


def target_F(x_in, t):
  return A * x_in * jnp.sin(t)[:, None] + B * jnp.cos(t)[:, None]


def online_F(x_in, t):
  return C * x_in + t[:, None], E * jnp.cos(t)


def _written_out_loss(x0, key, *, dxdt_of, p_mean=-1.0, p_std=1.4, r=1.0,
                      c=0.1, norm="l2", prior=True):
  """sCM's per-example loss from the formulas, not from cm_jax.losses:
  t = arctan(e^τ/σ_d), τ ~ N(P_mean, P_std²); z ~ N(0, σ_d²I); x_t = cos t·x0
  + sin t·z; g = −cos²t·(σ_d·F⁻ − dx_t/dt) − r·cos t·sin t·(x_t +
  σ_d·dF⁻/dt); ĝ = g/(‖g‖ + c) (l2) or g/(‖g‖/√D + c) (rms); loss =
  w(t)·e^{w_φ}/D·‖F_θ − F⁻ − ĝ‖² − w_φ, w(t) = 1/(σ_d·tan t) or 1."""
  t_key, z_key = jax.random.split(key)  # the loss's split of its key
  x0 = np.asarray(x0, np.float64)
  n, dim = x0.shape
  tau = p_mean + p_std * np.asarray(jax.random.normal(t_key, (n,)),
                                    np.float64)
  t = np.arctan(np.exp(tau) / SD)[:, None]
  z = SD * np.asarray(jax.random.normal(z_key, x0.shape), np.float64)
  x_t = np.cos(t) * x0 + np.sin(t) * z
  dxdt = dxdt_of(x0, z, x_t, t)
  x_in = x_t / SD
  f_minus = A * x_in * np.sin(t) + B * np.cos(t)
  df_minus = A * np.sin(t) * dxdt / SD + A * x_in * np.cos(t) - B * np.sin(t)
  g = (-np.cos(t) ** 2 * (SD * f_minus - dxdt)
       - r * np.cos(t) * np.sin(t) * (x_t + SD * df_minus))
  size = np.sqrt(np.sum(g ** 2, axis=1, keepdims=True))
  if norm == "rms":
    size = size / np.sqrt(dim)
  g = g / (size + c) if c > 0 else g
  f_theta, log_w = C * x_in + t, E * np.cos(t[:, 0])
  weight = 1 / (SD * np.tan(t[:, 0])) if prior else 1.0
  return (weight * np.exp(log_w) / dim
          * np.sum((f_theta - f_minus - g) ** 2, axis=1) - log_w)


def sct_velocity(x0, z, x_t, t):
  return np.cos(t) * z - np.sin(t) * x0


def test_sct_loss_is_the_written_out_formula():
  """Every term of sCM's loss against ``_written_out_loss``: the tangent
  (both of its terms, the warm-up r), its normalisation (the ℓ2 norm over
  all D elements, and the per-element RMS), the prior weighting 1/(σ_d·tan t),
  e^{w_φ}/D and −w_φ, with and without the normalisation and the prior."""
  x0 = S * jax.random.normal(jax.random.key(5), (64, DIM))
  key = jax.random.key(6)
  cases = [dict(), dict(norm="rms"), dict(r=0.3), dict(prior=False),
           dict(c=0.0), dict(norm="rms", c=2.0, r=0.0)]
  for case in cases:
    with jax.enable_x64(True):
      got = losses.continuous_consistency_loss(
          online_F, target_F, x0, key, sigma_data=SD,
          warmup=case.get("r", 1.0), tangent_c=case.get("c", 0.1),
          tangent_norm=case.get("norm", "l2"),
          prior_weighting=case.get("prior", True))
      want = _written_out_loss(x0, key, dxdt_of=sct_velocity, **case)
    np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=str(case))


def test_tangent_normalisation_values():
  """g = (3, 4, 0) has ‖g‖ = 5 and RMS 5/√3; c = 0.1."""
  g = jnp.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(losses.normalize_tangent(g, 0.1),
                             [[3 / 5.1, 4 / 5.1, 0.0], [0.0, 0.0, 0.0]],
                             rtol=1e-6)
  rms = 5 / np.sqrt(3) + 0.1
  np.testing.assert_allclose(losses.normalize_tangent(g, 0.1, "rms"),
                             [[3 / rms, 4 / rms, 0.0], [0.0, 0.0, 0.0]],
                             rtol=1e-6)


def test_scd_guided_velocity_and_w_input():
  """sCD with a class-conditional teacher: dx_t/dt = σ_d·(F_∅ + w·(F_c −
  F_∅)) at x_t/σ_d (classifier-free guidance of the velocity, sCM §5.2),
  w ~ U[w_min, w_max] from the first half of the key, and the student and
  its target see that w as their input."""
  from cm_jax.methods.scm import (  # pylint: disable=g-import-not-at-top
      SimplifiedConsistencyDistillation)
  process = processes.TrigFlow(sigma_data=SD)
  x0 = S * jax.random.normal(jax.random.key(7), (64, DIM))
  key = jax.random.key(8)
  cond = lambda x_in, t: 0.9 * x_in - 0.2 * jnp.cos(t)[:, None]
  uncond = lambda x_in, t: 0.5 * x_in + 0.1
  # Raw networks (c_noise = t for network="trigflow"); the student's and
  # target's outputs carry w so that a missing w input shows.
  student = lambda x_in, t, w=None, return_weight=False: (
      online_F(x_in, t)[0] + 0.0 * w[:, None],
      online_F(x_in, t)[1]) if return_weight else (
          online_F(x_in, t)[0] + 0.0 * w[:, None])
  tgt = lambda x_in, t, w: target_F(x_in, t) + 0.0 * w[:, None]
  w_min, w_max = 1.0, 3.0
  scd = SimplifiedConsistencyDistillation(
      p_mean=-1.0, p_std=1.4, tangent_c=0.1, tangent_norm="l2",
      warmup_steps=0, prior_weighting=True, adaptive=True,
      diffusion=process, guidance=(w_min, w_max), w_condition=True)
  with jax.enable_x64(True):
    got, aux = scd(student, tgt, x0, key, 0, teacher=(cond, uncond))
    w_key, loss_key = jax.random.split(key)
    w = np.asarray(jax.random.uniform(w_key, (64,), jnp.float32, w_min,
                                      w_max), np.float64)[:, None]

  def guided(x0, z, x_t, t):
    x_in = x_t / SD
    f_c = 0.9 * x_in - 0.2 * np.cos(t)
    f_u = 0.5 * x_in + 0.1
    return SD * (f_u + w * (f_c - f_u))

  with jax.enable_x64(True):
    want = _written_out_loss(x0, loss_key, dxdt_of=guided)  # H = 0: r = 1
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(aux["guidance"], w.mean(), rtol=1e-6)
  # w = 1 everywhere is the conditional teacher, v_∅ unused.
  plain = SimplifiedConsistencyDistillation(
      p_mean=-1.0, p_std=1.4, tangent_c=0.1, tangent_norm="l2",
      warmup_steps=0, prior_weighting=True, adaptive=True,
      diffusion=process)
  with jax.enable_x64(True):
    got = plain(lambda x, t, return_weight=False: online_F(x, t)
                if return_weight else online_F(x, t)[0], target_F, x0, key,
                0, teacher=(cond, lambda x, t: jnp.nan * x))[0]
    want = _written_out_loss(
        x0, key, dxdt_of=lambda x0, z, x_t, t: SD * (
            0.9 * x_t / SD - 0.2 * np.cos(t)))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_one_and_two_step_sampling_with_the_exact_F_give_the_data():
  """Through ``generate.SAMPLERS``' default for TrigFlow (LCM Alg. 3's
  renoise x_τ = cos τ·x + sin τ·σ_d·z): x_T ~ N(0, σ_d²I) at t_max, and the
  2-step sampler through sCM's t = 1.1, both give samples of std s."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from cm_jax import generate, keys  # pylint: disable=g-import-not-at-top
  process = processes.TrigFlow(sigma_data=SD)
  config = ml_collections.ConfigDict(dict(
      process="trigflow", sample=dict(sampler="", ts=(1.1,))))
  f = process.consistency_fn(exact_F)
  for steps in (1, 2):
    name = generate.sampler_name(config.sample, process, "consistency", steps)
    times = generate.sample_times(config.sample, steps, process)
    x = generate.SAMPLERS[name].run(
        f, keys.per_example(jax.random.key(6), 0, 4000), (4000, DIM),
        jnp.asarray(times, jnp.float32), process, config.sample)
    np.testing.assert_allclose(float(jnp.std(x)), S, rtol=0.03)
  assert generate.sample_times(config.sample, 2, process) == (1.1,)
  config.sample.ts = ()  # default: the interior of the process's grid
  want = float(np.arctan(np.asarray(
      processes.VE().grid(4))[2] / SD))
  assert generate.sample_times(config.sample, 3, process)[0] == want


def test_guided_scd_on_the_class_conditional_toy(tmp_path):
  """configs/scd_toy2d.py:cond through launch.py: a class-conditional
  TrigFlow teacher (edm_toy2d.py:trigflow,cond), sCD from it with w ~
  U[1, 3] as the student's input, sampled at w = 2; guidance on an
  unconditional network is refused in one line."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  tiny = ("--config.model.hidden=32", "--config.model.depth=2",
          "--config.data.num_examples=512", "--config.train.batch_size=16",
          "--config.train.sample_every=0", "--config.train.tensorboard=False",
          "--config.train.log_every=1")

  def launch(*flags):
    return subprocess.run([sys.executable, "launch.py", *flags, *tiny],
                          cwd=repo, capture_output=True, text=True,
                          timeout=600)

  teacher_dir, student_dir = tmp_path / "teacher", tmp_path / "scd"
  run = launch("--config=configs/edm_toy2d.py:trigflow,cond",
               f"--workdir={teacher_dir}", "--config.train.num_steps=2",
               "--config.train.checkpoint_every=2")
  assert run.returncode == 0, run.stderr[-3000:]
  student = ("--config=configs/scd_toy2d.py:cond", f"--workdir={student_dir}",
             f"--config.teacher.workdir={teacher_dir}",
             "--config.train.num_steps=2", "--config.train.checkpoint_every=2")
  run = launch(*student)
  assert run.returncode == 0, run.stderr[-3000:]
  with open(student_dir / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert all(1.0 < row["guidance"] < 3.0 for row in rows), rows
  run = launch(*student, "--mode=sample", "--config.sample.num=16")
  assert run.returncode == 0, run.stderr[-3000:]  # at the config's w = 2
  with np.load(student_dir / "samples" / "samples_2_1step_w2.0.npz") as f:
    assert np.all(np.isfinite(f["samples"]))
  run = launch("--config=configs/scd_toy2d.py", f"--workdir={tmp_path / 'u'}",
               f"--config.teacher.workdir={teacher_dir}",
               "--config.scm.guidance_max=2", "--config.train.num_steps=2")
  assert run.returncode == 2, run.stderr[-3000:]
  lines = run.stderr.strip().splitlines()
  assert len(lines) == 1 and "class-conditional teacher" in lines[0], lines

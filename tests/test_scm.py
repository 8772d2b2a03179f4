"""sCM on TrigFlow against the closed-form Gaussian truth.

Data x0 ~ N(0, s²I), x_t = cos t·x0 + sin t·z, z ~ N(0, σ_d²I), so x_t ~
N(0, v(t)I) with v(t) = s²·cos²t + σ_d²·sin²t, and
- the PF-ODE velocity is E[dx_t/dt | x_t] = sin t·cos t·(σ_d² − s²)/v(t)·x_t,
  whose trajectories are x_t = x0·√v(t)/s;
- the consistency function is f*(x, t) = s·x/√v(t), so with sCM eq. 5 the
  exact network is F*(x/σ_d, t) = (cos t·x − f*(x, t))/(σ_d·sin t);
- the TrigFlow diffusion model's F is the velocity / σ_d.
"""

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


def test_tangent_normalisation_and_adaptive_weight():
  """g/(‖g‖ + c) per example; the loss is w·e^{w_φ}/D·‖F − F⁻ − g‖² − w_φ,
  so at F = F⁻ + g it is −w_φ."""
  g = jnp.array([[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_allclose(losses.normalize_tangent(g, 0.1),
                             [[3 / 5.1, 4 / 5.1], [0.0, 0.0]], rtol=1e-6)
  x0 = jnp.ones((2, DIM))
  key = jax.random.key(5)
  log_w = jnp.array([0.3, -0.2])
  target = lambda x_in, t: 0.1 * x_in
  # Recover this draw's F⁻ + g through a zero-weight call ...
  zero = lambda x_in, t: (jnp.zeros_like(x_in), jnp.zeros_like(t))
  base = losses.continuous_consistency_loss(zero, target, x0, key,
                                            sigma_data=SD,
                                            prior_weighting=False)
  assert float(base.min()) > 0
  # ... and an online F that hits it exactly gives −w_φ.
  t = losses.trigflow_time(jax.random.split(key)[0], 2, sigma_data=SD)
  z = SD * jax.random.normal(jax.random.split(key)[1], x0.shape)
  x_t = jnp.cos(t)[:, None] * x0 + jnp.sin(t)[:, None] * z
  dxdt = jnp.cos(t)[:, None] * z - jnp.sin(t)[:, None] * x0
  f_minus, g = losses.scm_tangent(target, x_t, t, dxdt, sigma_data=SD)
  g = losses.normalize_tangent(g, 0.1)
  hit = lambda x_in, t: (f_minus + g, log_w)
  np.testing.assert_allclose(
      losses.continuous_consistency_loss(hit, target, x0, key, sigma_data=SD),
      -log_w, atol=1e-6)


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
    name = generate.sampler_name(config, "consistency", steps)
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

"""The linear process, flow matching and MeanFlow against the closed-form
Gaussian truth (tests/analytic.py): x0 ~ N(μ, s²I) on z_t = (1 − t)·x0 +
t·ε, whose flow Φ_{t→r}, velocity v and average velocity u* are affine in z.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax import generate, losses, processes, samplers
from configs import meanflow_toy2d

import analytic

MU, S, DIM = 0.7, 0.6, 2
LINEAR = processes.Linear()
U_STAR = analytic.average_velocity(MU, S)


def test_linear_process_is_the_written_interpolation():
  x0 = jnp.array([[1.0, -2.0]])
  z = jnp.array([[0.5, 3.0]])
  for t in (0.0, 0.3, 1.0):
    np.testing.assert_allclose(LINEAR.noise(x0, z, jnp.array([t])),
                               (1 - t) * x0 + t * z, rtol=1e-6)
    np.testing.assert_allclose(LINEAR.alpha(t), 1 - t, rtol=1e-6)
    np.testing.assert_allclose(LINEAR.sigma(t), t, rtol=1e-6)
  # EDM's σ: z_t/(1 − t) = x0 + σ·z at t = σ/(1 + σ).
  sigma = 1.7
  t = LINEAR.from_ve_sigma(sigma)
  np.testing.assert_allclose(LINEAR.noise(x0, z, t[None]) / (1 - t),
                             x0 + sigma * z, rtol=1e-6)
  np.testing.assert_allclose(LINEAR.grid(5), [0, 0.25, 0.5, 0.75, 1.0])
  np.testing.assert_allclose(LINEAR.grid(3, size=5), [0, 0.5, 1, 1, 1])


def test_exact_average_velocity_obeys_the_meanflow_identity():
  """u*(z, r, t) = v(z, t) − (t − r)·d/dt u*(z_t, r, t) pointwise along the
  flow (MeanFlow eq. 6), d/dt = v·∂_z + ∂_t; and u*(z, t, t) = v."""
  key = jax.random.key(0)
  z = 2.0 * jax.random.normal(key, (256, DIM))
  t = jax.random.uniform(jax.random.key(1), (256,), minval=0.05, maxval=1.0)
  r = t * jax.random.uniform(jax.random.key(2), (256,), maxval=0.95)
  v = analytic.linear_velocity(z, t, MU, S)
  u, du_dt = jax.jvp(U_STAR, (z, r, t), (v, jnp.zeros_like(r),
                                         jnp.ones_like(t)))
  np.testing.assert_allclose(u, v - (t - r)[:, None] * du_dt, atol=2e-5)
  np.testing.assert_allclose(U_STAR(z, t, t), v, rtol=1e-6)
  # The flow is exact: z − (t − r)·u* lands on Φ_{t→r}(z).
  np.testing.assert_allclose(z - (t - r)[:, None] * u,
                             analytic.linear_flow(z, t, r, MU, S), atol=1e-5)


def test_denoiser_and_flow_map_of_the_exact_networks():
  """Read through the process: x̂0 = z − t·v is the posterior mean, and one
  jump of u* from t to r is the exact flow."""
  z = jax.random.normal(jax.random.key(3), (64, DIM))
  t = jnp.full((64,), 0.4)
  r = jnp.full((64,), 0.1)
  net = analytic.as_two_time_net(U_STAR, time_scale=1000.0)
  scaled = processes.Linear(time_scale=1000.0)
  np.testing.assert_allclose(scaled.denoiser(net)(z, t),
                             analytic.linear_posterior_mean(z, t, MU, S),
                             atol=1e-5)
  np.testing.assert_allclose(scaled.flow_map(net)(z, r, t),
                             analytic.linear_flow(z, t, r, MU, S), atol=1e-5)
  np.testing.assert_allclose(scaled.consistency_fn(net)(z, t),
                             analytic.linear_flow(z, t, 0 * t, MU, S),
                             atol=1e-5)


@pytest.mark.parametrize("ts", [(), (0.5,), (0.7, 0.2)])
def test_flow_map_sampling_with_u_star_reproduces_the_data(ts):
  """1, 2 or 3 jumps from z_1 ~ N(0, I) give μ + s·z_1 exactly (Φ_{1→0}),
  so the samples are N(μ, s²I)."""
  key = jax.random.key(4)
  phi = LINEAR.flow_map(analytic.as_two_time_net(U_STAR))
  x = samplers.flow_map_sample(phi, key, (4096, DIM), jnp.array(ts),
                               process=LINEAR)
  z1 = LINEAR.prior(key, (4096, DIM))
  np.testing.assert_allclose(x, MU + S * z1, atol=1e-4)


def test_flow_euler_with_the_exact_velocity_approaches_the_data():
  """Flow matching's Euler sampler with v*: the error shrinks with the
  number of steps (first order) towards μ + s·z_1."""
  key = jax.random.key(5)
  d = LINEAR.denoiser(analytic.as_two_time_net(U_STAR))
  z1 = LINEAR.prior(key, (512, DIM))
  errors = []
  for n in (8, 64):
    x = samplers.flow_euler_sample(d, key, (512, DIM),
                                   LINEAR.grid(n + 1)[::-1], process=LINEAR)
    errors.append(float(jnp.max(jnp.abs(x - (MU + S * z1)))))
  assert errors[1] < errors[0] / 5 and errors[1] < 0.05, errors


def _data(n, seed=10):
  return MU + S * jax.random.normal(jax.random.key(seed), (n, DIM))


def _gradient(loss_of_u, u_theta, direction, n=40_000):
  """Mean and standard error of d/dθ of the per-example loss at θ = 0,
  u = u_theta + θ·direction (one forward-mode pass over the batch)."""
  def per_example(theta):
    u = lambda z, r, t: u_theta(z, r, t) + theta * direction(z, r, t)
    return loss_of_u(u)

  g = jax.jacfwd(per_example)(0.0)
  return float(g.mean()), float(g.std() / np.sqrt(g.size))


def _meanflow_gradient(u_theta, times=None, n=40_000):
  x0 = _data(n)
  times = times or functools.partial(losses.meanflow_times, r_neq_t=0.75)
  loss = lambda u: losses.meanflow_loss(u, x0, jax.random.key(11),
                                        times=times, p=0.0)
  direction = lambda z, r, t: z * (1.0 + (t - r))[:, None]
  return _gradient(loss, u_theta, direction, n)


def test_meanflow_gradient_vanishes_in_expectation_at_u_star():
  """The target v − (t − r)·du/dt is linear in the conditional velocity
  ε − x0, an unbiased estimate of v(z_t, t), so at u* (which satisfies the
  identity) the expected gradient is 0 (within 4 standard errors); at a
  perturbed u, or a u that is only the instantaneous velocity, it is not."""
  mean, se = _meanflow_gradient(U_STAR)
  assert abs(mean) < 4 * se, (mean, se)
  shifted = lambda z, r, t: U_STAR(z, r, t) + 0.3
  mean, se = _meanflow_gradient(shifted)
  assert abs(mean) > 20 * se, (mean, se)
  instantaneous = lambda z, r, t: U_STAR(z, t, t)
  mean, se = _meanflow_gradient(instantaneous)
  assert abs(mean) > 20 * se, (mean, se)


def _affine_u(a=0.7, b=-0.4, c=0.3):
  """u(z, r, t) = a·t²·z + b·r·z + c·t: ∂_z u = a·t² + b·r, ∂_t u =
  2a·t·z + c."""
  def u(z, r, t):
    t, r = t[:, None], r[:, None]
    return a * t ** 2 * z + b * r * z + c * t
  return u, (a, b, c)


def test_meanflow_loss_is_the_written_out_formula():
  """Each term of MeanFlow's loss against the formula written out with the
  partial derivatives by hand: u_tgt = v − (t − r)·(v·∂_z u + ∂_t u), the
  squared error summed over an example, and the adaptive weight
  1/(‖Δ‖² + c)^p (p = 0, 0.5, 1)."""
  u, (a, b, c) = _affine_u()
  x0 = _data(64)
  key = jax.random.key(12)
  t = jnp.linspace(0.1, 0.9, 64)
  r = t * jnp.linspace(0.0, 1.0, 64)
  e = jax.random.normal(jax.random.split(key)[1], x0.shape)
  z = (1 - t[:, None]) * x0 + t[:, None] * e
  v = e - x0
  dudt = v * (a * t[:, None] ** 2 + b * r[:, None]) + (
      2 * a * t[:, None] * z + c)
  target = v - (t - r)[:, None] * dudt
  sq = jnp.sum((u(z, r, t) - target) ** 2, axis=1)
  for p, cc in ((0.0, 0.01), (0.5, 0.01), (1.0, 1e-3)):
    got = losses.meanflow_loss(u, x0, key, times=lambda k, n: (t, r), p=p,
                               c=cc)
    np.testing.assert_allclose(got, sq / (sq + cc) ** p, rtol=1e-5,
                               err_msg=f"p={p}")


def test_meanflow_times_sorted_with_the_share_of_r_equal_t():
  """t ≥ r from two logit-normal draws; the first ⌊B·(1 − r_neq_t)⌋
  examples have r = t (the official data_proportion), the rest r < t."""
  key = jax.random.key(13)
  t, r = losses.meanflow_times(key, 16, p_mean=-0.4, p_std=1.0,
                               r_neq_t=0.25)
  k1, k2 = jax.random.split(key)
  a = jax.nn.sigmoid(-0.4 + jax.random.normal(k1, (16,)))
  b = jax.nn.sigmoid(-0.4 + jax.random.normal(k2, (16,)))
  np.testing.assert_allclose(t, jnp.maximum(a, b), rtol=1e-6)
  np.testing.assert_array_equal(r[:12], t[:12])
  np.testing.assert_allclose(r[12:], jnp.minimum(a, b)[12:], rtol=1e-6)
  assert np.all(np.asarray(r[12:]) < np.asarray(t[12:]))


def test_flow_matching_loss_is_minimised_by_the_velocity():
  """Flow matching's expected gradient is 0 at v* and not at a shifted v."""
  x0 = _data(40_000)

  def loss_of_u(u):
    return losses.flow_matching_loss(lambda z, t: u(z, t, t), x0,
                                     jax.random.key(14))

  direction = lambda z, r, t: 1.0 + z
  mean, se = _gradient(loss_of_u, U_STAR, direction)
  assert abs(mean) < 4 * se, (mean, se)
  shifted = lambda z, r, t: U_STAR(z, r, t) + 0.3
  mean, se = _gradient(loss_of_u, shifted, direction)
  assert abs(mean) > 20 * se, (mean, se)


def test_meanflow_recipe_samples_with_jumps():
  config = meanflow_toy2d.get_config()
  process = processes.make_process(config)
  assert isinstance(process, processes.Linear)
  assert generate.sampler_name(config.sample, process, "flow_map", 2) == \
      "flow_map"
  assert generate.sampler_times("flow_map", config, 2, process).tolist() == \
      [0.5]


def test_shortcut_times_are_the_dyadic_grid():
  """M = 16, B = 64, one in 4 a self-consistency example: 16 of them,
  4 per step size 2d ∈ {1/8, 1/4, 1/2, 1} (k = 3, 2, 1, 0), t a multiple
  of 2d in (0, 1] so r = t − 2d ≥ 0; the other 48 have r = t, t = 1 − j/16."""
  t, r, step = losses.shortcut_times(jax.random.key(20), 64, denoise_steps=16,
                                     bootstrap_every=4)
  t, r, step = map(np.asarray, (t, r, step))
  np.testing.assert_array_equal(step[:16], np.repeat([1 / 8, 1 / 4, 1 / 2, 1],
                                                     4))
  np.testing.assert_allclose(t - r, step, atol=1e-7)
  assert np.all(r >= -1e-7) and np.all(t <= 1) and np.all(t > 0)
  np.testing.assert_allclose(np.round((1 - t[:16]) / step[:16]),
                             (1 - t[:16]) / step[:16], atol=1e-5)
  np.testing.assert_array_equal(step[16:], 0)
  np.testing.assert_allclose(np.round(16 * t[16:]), 16 * t[16:], atol=1e-4)


def test_shortcut_target_is_exact_at_every_step_size():
  """With u* as both networks, two half jumps compose to the whole jump
  (Φ_{t−d→t−2d}∘Φ_{t→t−d} = Φ_{t→t−2d}), so every self-consistency
  example's loss is 0, at every d; a biased target network's is not."""
  x0 = _data(64)
  key = jax.random.key(21)
  loss = losses.shortcut_loss(U_STAR, U_STAR, x0, key, denoise_steps=16,
                              bootstrap_every=2)
  np.testing.assert_allclose(loss[:32], 0.0, atol=1e-9)
  assert float(loss[32:].min()) > 0  # flow matching: the conditional v
  biased = lambda z, r, t: U_STAR(z, r, t) + 0.1
  loss = losses.shortcut_loss(U_STAR, biased, x0, key, denoise_steps=16,
                              bootstrap_every=2)
  assert float(loss[:32].min()) > 0.005, loss[:32]  # ≈ 0.1² per element


def test_shortcut_loss_is_the_written_out_formula():
  """The target ½·u⁻(z_t, t − d, t) + ½·u⁻(z_t − d·u_1, t − 2d, t − d)
  for self-consistency examples and ε − x0 for the others, against the
  online u at (t − 2d, t) and (t, t), the squared error averaged over an
  example's elements; u⁻ an affine stand-in whose two halves differ."""
  u, _ = _affine_u()
  target, _ = _affine_u(a=0.2, b=0.5, c=-0.1)
  x0 = _data(32)
  key = jax.random.key(22)
  t_key, e_key = jax.random.split(key)
  t, r, step = losses.shortcut_times(t_key, 32, denoise_steps=8,
                                     bootstrap_every=4)
  e = jax.random.normal(e_key, x0.shape)
  z = (1 - t[:, None]) * x0 + t[:, None] * e
  d = step / 2
  u_1 = target(z, t - d, t)
  u_2 = target(z - d[:, None] * u_1, t - 2 * d, t - d)
  boot = (np.arange(32) < 8)[:, None]
  want_target = np.where(boot, (u_1 + u_2) / 2, e - x0)
  want = np.mean((u(z, r, t) - want_target) ** 2, axis=1)
  got = losses.shortcut_loss(u, target, x0, key, denoise_steps=8,
                             bootstrap_every=4)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_meanflow_guided_velocity_is_the_written_out_formula():
  """v_g = ω·v + (1 − ω − κ)·v(∅) + κ·v(c) inside [t_start, t_end], v
  outside it and for the dropped examples (MeanFlow eq. 19; official
  ``guidance_fn`` and ``cond_drop``)."""
  v = jnp.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5], [2.0, 0.0]])
  z = jnp.zeros_like(v)
  t = jnp.array([0.2, 0.5, 0.9, 0.5])
  v_cond = lambda z, t: jnp.full(z.shape, 10.0)
  v_null = lambda z, t: jnp.full(z.shape, -4.0)
  dropped = jnp.array([False, False, False, True])
  got = losses.meanflow_guided_velocity(
      v_cond, v_null, omega=0.2, kappa=0.5, interval=(0.3, 0.8),
      dropped=dropped)(z, t, v)
  guided = 0.2 * v + 0.3 * (-4.0) + 0.5 * 10.0
  want = np.stack([v[0], guided[1], v[2], v[3]])
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_meanflow_class_dropout_drops_the_first_examples():
  """n ~ Binomial(B, p) examples dropped, the first n (official
  ``cond_drop``), so they are among the r = t examples."""
  key = jax.random.key(30)
  got = np.asarray(losses.first_dropped(key, 64, 0.25))
  n = int(jax.random.bernoulli(key, 0.25, (64,)).sum())
  assert 0 < n < 64
  np.testing.assert_array_equal(got, np.arange(64) < n)


def test_guided_meanflow_objective_calls_the_network_as_written():
  """The objective with guidance: θ's u for the JVP conditioned on the
  dropped labels, the target velocity from θ's v(·|c) and v(·|∅) (stand-in
  networks that read the label), the loss equal to meanflow_loss with the
  same pieces."""
  from cm_jax.methods import meanflow as mf  # pylint: disable=g-import-not-at-top
  from cm_jax.nn import Condition  # pylint: disable=g-import-not-at-top
  labels = jnp.array([0, 1, 2, 1, 0, 2, 1, 0])

  def online(z, c_noise, c_step=None, labels=labels, **unused):
    return z * (1.0 + 0.1 * labels[:, None]) + c_noise[:, None] - 0.5 * c_step[
        :, None]

  online.condition = Condition(labels=labels)
  objective = mf.MeanFlow(p_mean=-0.4, p_std=1.0, r_neq_t=0.5, adaptive_p=0.0,
                          adaptive_c=0.01, diffusion=LINEAR, num_classes=3,
                          label_dropout=0.3, guidance=(0.5, 0.2, 0.1, 0.9))
  x0 = _data(8)
  key = jax.random.key(31)
  got, _ = objective(online, None, x0, key, 0)
  drop_key, rest = jax.random.split(key)
  dropped = losses.first_dropped(drop_key, 8, 0.3)
  null = jnp.full((8,), 3)
  u_of = lambda y: LINEAR.average_velocity(
      functools.partial(online, labels=y))
  v_of = lambda y: LINEAR.velocity(functools.partial(online, labels=y))
  velocity = losses.meanflow_guided_velocity(
      v_of(labels), v_of(null), omega=0.5, kappa=0.2, interval=(0.1, 0.9),
      dropped=dropped)
  want = losses.meanflow_loss(u_of(jnp.where(dropped, null, labels)), x0,
                              rest, times=objective.times, velocity=velocity,
                              p=0.0)
  np.testing.assert_allclose(got, want, rtol=1e-6)


def _u_and_v(u, v_head=None):
  """(u(z, r, t), v(z, r, t)): a stand-in network with iMF's v head."""
  v_head = v_head or (lambda z, r, t: U_STAR(z, t, t))
  return lambda z, r, t: (u(z, r, t), v_head(z, r, t))


def _imf_gradient(u_and_v_of_theta, n=40_000):
  x0 = _data(n)
  times = functools.partial(losses.meanflow_times, r_neq_t=0.75)
  loss = lambda theta: losses.improved_meanflow_loss(
      u_and_v_of_theta(theta), x0, jax.random.key(15), times=times, p=0.0)
  g = jax.jacfwd(loss)(0.0)
  return float(g.mean()), float(g.std() / np.sqrt(g.size))


def test_imf_gradient_vanishes_in_expectation_at_the_exact_heads():
  """With u = u* and the v head = v*, V = u* + (t − r)·du*/dt along v* is
  v*(z_t, t) (the MeanFlow identity), and ε − x0 is an unbiased estimate of
  it: both terms' expected gradients vanish; moving u or the v head off
  the truth makes them non-zero."""
  direction = lambda z, r, t: z * (1.0 + (t - r))[:, None]
  at = lambda u, v=None: (lambda th: _u_and_v(
      lambda z, r, t: u(z, r, t) + th * direction(z, r, t), v))
  mean, se = _imf_gradient(at(U_STAR))
  assert abs(mean) < 4 * se, (mean, se)
  shifted = lambda z, r, t: U_STAR(z, r, t) + 0.3
  mean, se = _imf_gradient(at(shifted))
  assert abs(mean) > 20 * se, (mean, se)
  # The v head alone off the truth: its own term's gradient.
  off_v = lambda th: _u_and_v(
      U_STAR, lambda z, r, t: U_STAR(z, t, t) + 0.3 + th * z)
  mean, se = _imf_gradient(off_v)
  assert abs(mean) > 20 * se, (mean, se)


def test_imf_loss_is_the_written_out_formula():
  """V = u + (t − r)·(v_θ(z, t, t)·∂_z u + ∂_t u) with the partials by hand,
  w(‖V − v‖²) + w(‖v_θ(z, r, t) − v‖²), for p = 0 and 1."""
  u, (a, b, c) = _affine_u()
  v_head = lambda z, r, t: 0.5 * z + (t - 0.3 * r)[:, None]
  x0 = _data(64)
  key = jax.random.key(16)
  t = jnp.linspace(0.1, 0.9, 64)
  r = t * jnp.linspace(0.0, 1.0, 64)
  e = jax.random.normal(jax.random.split(key)[1], x0.shape)
  z = (1 - t[:, None]) * x0 + t[:, None] * e
  v = e - x0
  tangent = v_head(z, t, t)
  dudt = tangent * (a * t[:, None] ** 2 + b * r[:, None]) + (
      2 * a * t[:, None] * z + c)
  big_v = u(z, r, t) + (t - r)[:, None] * dudt
  sq_u = jnp.sum((big_v - v) ** 2, axis=1)
  sq_v = jnp.sum((v_head(z, r, t) - v) ** 2, axis=1)
  for p, cc in ((0.0, 0.01), (1.0, 0.01)):
    got = losses.improved_meanflow_loss(_u_and_v(u, v_head), x0, key,
                                        times=lambda k, n: (t, r), p=p, c=cc)
    want = sq_u / (sq_u + cc) ** p + sq_v / (sq_v + cc) ** p
    np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=f"p={p}")


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
def test_imf_guidance_scale_has_the_power_law(beta):
  """ω on [1, 1 + s_max] with density ∝ ω^−β: CDF ln ω / ln(1 + s_max) at
  β = 1, (ω^{1−β} − 1)/((1 + s_max)^{1−β} − 1) otherwise (KS distance of
  40,000 draws below the 1% critical value)."""
  n, s_max = 40_000, 7.0
  w = np.sort(np.asarray(losses.imf_guidance_scale(
      jax.random.key(3), n, s_max=s_max, beta=beta), np.float64))
  assert w.min() >= 1.0 and w.max() <= 1.0 + s_max
  if beta == 1.0:
    cdf = np.log(w) / np.log(1 + s_max)
  else:
    cdf = (w ** (1 - beta) - 1) / ((1 + s_max) ** (1 - beta) - 1)
  ks = np.max(np.maximum(np.arange(1, n + 1) / n - cdf, cdf - np.arange(n) / n))
  assert ks < 1.63 / np.sqrt(n), ks


def test_imf_guidance_interval_laws_and_flow_matching_examples():
  n = 20_000
  fm = jnp.arange(n) < n // 2
  t_min, t_max = map(np.asarray, losses.imf_guidance_interval(
      jax.random.key(4), n, fm))
  np.testing.assert_array_equal(t_min[: n // 2], 0.0)
  np.testing.assert_array_equal(t_max[: n // 2], 1.0)
  lo, hi = t_min[n // 2:], t_max[n // 2:]
  assert lo.min() >= 0 and lo.max() < 0.5 and hi.min() >= 0.5 and hi.max() < 1
  np.testing.assert_allclose([lo.mean(), hi.mean()], [0.25, 0.75], atol=0.005)


def test_guided_imf_loss_is_the_written_out_formula():
  """iMF's guided objective against imeanflow's ``forward`` written out, the
  JVP's partials by hand, on a stand-in network that reads every input
  (ω, the interval and the null class move u and v): w = ω inside [t_min,
  t_max], 1 outside; v_c at (w, [0, 1]) with the labels, v_u at (1, [0, 1])
  with the null class; v_g = v + (1 − 1/w)·(v_c − v_u), v for the dropped
  examples; V from the JVP along v_c; both terms for p = 0 and 1."""
  u0, (a, b, c) = _affine_u()

  def u_and_v(z, r, t, guidance, null):
    g = 1 - 1 / guidance[:, :1]
    lo, hi, nl = guidance[:, 1:2], guidance[:, 2:3], null[:, None] * 1.0
    u = u0(z, r, t) + 0.4 * g + 0.2 * lo - 0.3 * hi + 0.5 * nl
    v = 0.5 * z + (t - 0.3 * r)[:, None] + 0.6 * g - 0.7 * nl + 0.1 * hi
    return u, v

  n = 64
  x0 = _data(n)
  key = jax.random.key(17)
  t = jnp.linspace(0.05, 0.95, n)
  r = jnp.where(jnp.arange(n) < n // 4, t, t * jnp.linspace(0.0, 1.0, n))
  _, e_key, i_key, w_key, d_key = jax.random.split(key, 5)
  e = jax.random.normal(e_key, x0.shape)
  z = (1 - t[:, None]) * x0 + t[:, None] * e
  v = e - x0
  t_min, t_max = losses.imf_guidance_interval(i_key, n, r == t)
  omega = losses.imf_guidance_scale(w_key, n)
  dropped = losses.first_dropped(d_key, n, 0.3)
  inside = (t >= t_min) & (t <= t_max)
  assert inside.any() and (~inside).any() and dropped.any()
  w = jnp.where(inside, omega, 1.0)
  ones, zeros = jnp.ones(n), jnp.zeros(n)
  v_c = u_and_v(z, t, t, jnp.stack([w, zeros, ones], -1), zeros > 0)[1]
  v_u = u_and_v(z, t, t, jnp.stack([ones, zeros, ones], -1), ones > 0)[1]
  v_g = v + (1 - 1 / w)[:, None] * (v_c - v_u)
  v_g = jnp.where(dropped[:, None], v, v_g)
  u, v_theta = u_and_v(z, r, t, jnp.stack([omega, t_min, t_max], -1), dropped)
  dudt = v_c * (a * t[:, None] ** 2 + b * r[:, None]) + (
      2 * a * t[:, None] * z + c)
  big_v = u + (t - r)[:, None] * dudt
  sq_u = jnp.sum((big_v - v_g) ** 2, axis=1)
  sq_v = jnp.sum((v_theta - v_g) ** 2, axis=1)
  for p in (0.0, 1.0):
    got = losses.guided_improved_meanflow_loss(
        u_and_v, x0, key, times=lambda k, m: (t, r), label_dropout=0.3, p=p)
    want = sq_u / (sq_u + 0.01) ** p + sq_v / (sq_v + 0.01) ** p
    np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=f"p={p}")


def test_guided_imf_trains_and_samples_through_its_guidance_inputs():
  """A class-conditional MLP and DiT with model.guidance_inputs: the
  objective builds, a step's loss is finite, the inputs change u, and
  the flow-map sampler feeds sample.guidance and its interval."""
  from cm_jax import methods, nn  # pylint: disable=g-import-not-at-top
  from configs import imf_toy2d  # pylint: disable=g-import-not-at-top
  c = imf_toy2d.get_config()
  c.model.num_classes, c.model.guidance_inputs = 3, True
  objective = methods.make_objective(c, (2,))
  model = nn.get_model(c.model)
  x, cond = nn.dummy_inputs(model, (2,), batch_size=8)
  params = model.init(jax.random.key(0), x, cond)["params"]
  labels = jnp.arange(8) % 3
  net = nn.network(model, params, nn.Condition(labels=labels))
  loss, _ = objective(net, net, _data(8), jax.random.key(1), 0)
  assert loss.shape == (8,) and bool(jnp.all(jnp.isfinite(loss)))
  z = jax.random.normal(jax.random.key(2), (8, 2))
  u = lambda g: LINEAR.average_velocity(functools.partial(
      net, guidance=jnp.tile(jnp.array([g]), (8, 1))))(z, 0.0, 1.0)
  assert float(jnp.abs(u([3.0, 0.0, 1.0]) - u([1.0, 0.0, 1.0])).max()) > 0
  c.sample.guidance, c.sample.guidance_interval = 2.0, (0.1, 0.9)
  samples = generate.generate(model, params, c, (2,), 6, 1,
                              jax.random.key(3), kind="flow_map")
  assert samples.shape == (6, 2) and np.all(np.isfinite(samples))
  c.sample.guidance = 0.5
  with pytest.raises(ValueError, match="sample.guidance=0.5"):
    generate.generate(model, params, c, (2,), 6, 1, jax.random.key(3),
                      kind="flow_map")


def test_guidance_inputs_are_refused_where_no_method_feeds_them():
  from cm_jax import methods, nn  # pylint: disable=g-import-not-at-top
  from cm_jax.train import validate  # pylint: disable=g-import-not-at-top
  from configs import imf_toy2d  # pylint: disable=g-import-not-at-top
  c = imf_toy2d.get_config("cond")
  model = nn.get_model(c.model)
  validate.check_needs(c, methods.needs_of("imf"), model)  # fed: accepted
  c.method = "meanflow"
  with pytest.raises(ValueError, match="model.guidance_inputs=True takes "
                     "iMF's guidance scale and interval, which method="
                     "meanflow does not feed"):
    validate.check_needs(c, methods.needs_of("meanflow"), model)

"""Losses: metrics, CD/CT against closed forms, stop-gradient, index laws."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

import analytic
from cm_jax import losses, schedules

MU, S = 0.3, 0.5


class MetricTest(chex.TestCase):

  def test_metrics_per_example(self):
    x = jnp.zeros((2, 2, 2, 1))
    y = jnp.stack([jnp.ones((2, 2, 1)), 2 * jnp.ones((2, 2, 1))])
    np.testing.assert_allclose(losses.l2(x, y), [4.0, 16.0])
    np.testing.assert_allclose(losses.l1(x, y), [4.0, 8.0])
    c = 0.03
    np.testing.assert_allclose(losses.pseudo_huber(x, y, c),
                               [np.sqrt(4 + c * c) - c, np.sqrt(16 + c * c) - c],
                               rtol=1e-6)
    np.testing.assert_allclose(losses.pseudo_huber(y, y, c), [0.0, 0.0], atol=1e-7)

  def test_ict_huber_c_cifar(self):
    self.assertAlmostEqual(losses.ict_huber_c(32 * 32 * 3), 0.0299, places=4)
    self.assertAlmostEqual(losses.ict_huber_c(64 * 64 * 3), 0.0599, places=4)

  def test_mean_reduction_is_the_per_element_formulas(self):
    """reduction="mean": (1/d)·Σ_i (x_i − y_i)², (1/d)·Σ_i |x_i − y_i| and the
    LCM script's Huber (1/d)·Σ_i (√((x_i − y_i)² + c²) − c); "sum" = d × the
    first two (and iCT's vector form for the third)."""
    x = jax.random.normal(jax.random.key(0), (3, 4, 4, 2))
    y = jax.random.normal(jax.random.key(1), (3, 4, 4, 2))
    r = np.asarray(x - y, np.float64).reshape(3, -1)
    d, c = r.shape[1], 0.001
    np.testing.assert_allclose(losses.l2(x, y, "mean"),
                               (r ** 2).sum(1) / d, rtol=1e-5)
    np.testing.assert_allclose(losses.l1(x, y, "mean"),
                               np.abs(r).sum(1) / d, rtol=1e-5)
    np.testing.assert_allclose(losses.pseudo_huber(x, y, c, "mean"),
                               (np.sqrt(r ** 2 + c * c) - c).mean(1), rtol=1e-5)
    np.testing.assert_allclose(losses.l2(x, y), (r ** 2).sum(1), rtol=1e-5)
    np.testing.assert_allclose(losses.l1(x, y), np.abs(r).sum(1), rtol=1e-5)
    np.testing.assert_allclose(losses.pseudo_huber(x, y, c),
                               np.sqrt((r ** 2).sum(1) + c * c) - c, rtol=1e-5)

  def test_make_metric_reads_loss_reduction(self):
    from cm_jax.methods.base import make_metric
    from configs import base
    x = jax.random.normal(jax.random.key(2), (3, 8))
    y = jnp.zeros((3, 8))
    loss = base.get_base_config().loss
    self.assertEqual(loss.reduction, "sum")  # the CM papers' norms by default
    for name in ("l2", "l1"):
      loss.metric = name
      loss.reduction = "sum"
      total = make_metric(loss, (8,))(x, y)
      loss.reduction = "mean"
      np.testing.assert_allclose(make_metric(loss, (8,))(x, y), total / 8,
                                 rtol=1e-6)
    loss.metric, loss.huber_c = "pseudo_huber", 0.0  # c ≤ 0: the default c
    self.assertEqual(make_metric(loss, (8,)).keywords["c"], 0.001)  # LCM's
    loss.reduction = "sum"
    self.assertAlmostEqual(make_metric(loss, (8,)).keywords["c"],
                           losses.ict_huber_c(8))  # iCT's 0.00054·√d
    loss.reduction = "avg"
    with self.assertRaisesRegex(ValueError, "loss.reduction.*mean"):
      make_metric(loss, (8,))
    loss.metric, loss.reduction = "lpips", "mean"
    with self.assertRaisesRegex(ValueError, "reduction=sum"):
      make_metric(loss, (32, 32, 3))

  def test_mean_reduction_makes_the_clip_independent_of_dimension(self):
    """The same per-element residuals on d and 16·d elements: with "mean" the
    batch loss, its gradient w.r.t. a scalar θ and what a global-norm clip at
    1.0 does to that gradient are the same; with "sum" the gradient is 16×
    larger, and the clip cuts it 16× harder."""
    import optax
    a = jax.random.normal(jax.random.key(3), (8, 4, 4, 3))  # d = 48
    b = a + 0.3 * jax.random.normal(jax.random.key(4), a.shape)
    tile = lambda u: jnp.tile(u, (1, 4, 4, 1))  # 16·d = 768, same residuals
    clip = optax.clip_by_global_norm(1.0)

    def loss_grad_clipped(metric, a, b, theta=1.1):
      loss = lambda theta: jnp.mean(metric(theta * a, b))  # the step's mean
      value, grad = jax.value_and_grad(loss)(theta)
      clipped, _ = clip.update(grad, clip.init(grad))
      return float(value), float(grad), float(clipped)

    mean = functools.partial(losses.l2, reduction="mean")
    small = loss_grad_clipped(mean, a, b)
    large = loss_grad_clipped(mean, tile(a), tile(b))
    np.testing.assert_allclose(large, small, rtol=1e-5)
    # The per-element formula: ∂/∂θ mean_{B,i} (θa − b)² = 2·mean(a·(θa − b)).
    np.testing.assert_allclose(small[1], 2 * np.mean(a * (1.1 * a - b)),
                               rtol=1e-5)
    self.assertLess(abs(small[1]), 1.0)  # the clip leaves it alone at both d
    self.assertEqual(small[2], small[1])
    small = loss_grad_clipped(losses.l2, a, b)
    large = loss_grad_clipped(losses.l2, tile(a), tile(b))
    np.testing.assert_allclose(large[:2], np.multiply(small[:2], 16),
                               rtol=1e-5)
    self.assertGreater(abs(small[1]), 1.0)  # ‖·‖²: clipped at both sizes,
    np.testing.assert_allclose(abs(small[2]), 1.0, rtol=1e-5)
    np.testing.assert_allclose(abs(large[2]), 1.0, rtol=1e-5)
    # i.e. by a factor that shrinks as 1/d: the same clip cuts 16× harder.
    np.testing.assert_allclose(small[2] / small[1], 16 * large[2] / large[1],
                               rtol=1e-5)


class ConsistencyDistillationTest(chex.TestCase):

  def _loss(self, f, key, solver="heun", n=18):
    x0 = MU + S * jax.random.normal(jax.random.key(0), (512, 4))
    teacher = analytic.gaussian_denoiser(MU, S)
    return losses.consistency_distillation_loss(
        f, f, teacher, x0, key, sigmas=schedules.karras_sigmas(n), solver=solver)

  @chex.variants(with_jit=True, without_jit=True)
  def test_exact_f_has_near_zero_cd_loss(self):
    f_star = analytic.gaussian_consistency_fn(MU, S)
    f_wrong = analytic.gaussian_consistency_fn(MU + 0.1, S * 1.3)
    key = jax.random.key(1)
    good = self.variant(lambda k: self._loss(f_star, k))(key)
    bad = self.variant(lambda k: self._loss(f_wrong, k))(key)
    chex.assert_shape(good, (512,))
    self.assertLess(float(good.mean()), 0.05 * float(bad.mean()))
    self.assertGreater(float(bad.mean()), 5e-4)

  def test_cd_loss_of_exact_f_vanishes_at_the_solver_order(self):
    # With f* the only residual is the teacher step's local error, O(Δt^{p+1})
    # per example, so the squared-ℓ2 loss falls like Δt^{2p+2}: ×64 per halving
    # of Δt for Heun (p = 2), ×16 for Euler (p = 1). A wrong f keeps an O(Δt²)
    # loss (×4).
    f_star = analytic.gaussian_consistency_fn(MU, S)
    f_wrong = analytic.gaussian_consistency_fn(MU + 0.1, S * 1.3)
    key = jax.random.key(2)

    def drop(f, solver):  # loss ratio when N goes 36 → 72
      return (float(self._loss(f, key, solver, 36).mean()) /
              float(self._loss(f, key, solver, 72).mean()))

    self.assertGreater(drop(f_star, "heun"), 40.0)
    self.assertBetween(drop(f_star, "euler"), 10.0, 25.0)
    self.assertLess(drop(f_wrong, "heun"), 6.0)

  def test_euler_teacher_worse_than_heun(self):
    f_star = analytic.gaussian_consistency_fn(MU, S)
    key = jax.random.key(2)
    self.assertLess(float(self._loss(f_star, key, "heun").mean()),
                    float(self._loss(f_star, key, "euler").mean()))

  def test_gradient_does_not_flow_through_target(self):
    x0 = jax.random.normal(jax.random.key(3), (16, 3))
    teacher = analytic.gaussian_denoiser(0.0, 1.0)
    sigmas = schedules.karras_sigmas(10)

    def loss(theta):
      f = lambda x, t: theta * x  # the same θ in online and target (μ = 0)
      return losses.consistency_distillation_loss(
          f, f, teacher, x0, jax.random.key(4), sigmas=sigmas).sum()

    # Rebuild the online/target inputs to get the analytic stop-grad gradient.
    index_key, noise_key = jax.random.split(jax.random.key(4))
    n = losses.sample_index(index_key, 16, sigmas)
    t_cur, t_next = sigmas[n][:, None], sigmas[n + 1][:, None]
    a = x0 + t_next * jax.random.normal(noise_key, x0.shape)
    b = analytic.gaussian_denoiser(0.0, 1.0)  # teacher Heun step from a
    from cm_jax.solvers import heun_step
    b = heun_step(b, a, t_next[:, 0], t_cur[:, 0])
    theta = 1.7
    want = jnp.sum(2 * (theta * a - theta * b) * a)  # d/dθ ‖θa − sg(θb)‖²
    np.testing.assert_allclose(jax.grad(loss)(theta), want, rtol=1e-4)


class ConsistencyTrainingTest(chex.TestCase):

  def test_ct_is_cd_with_an_euler_step_of_the_x0_teacher(self):
    # CM Thm. 2 / the CM code's `dsm_target`: D(x; t) = x0 (score (x0 − x)/t²)
    # and one Euler step from x + t_{n+1}z lands exactly on x + t_n z.
    x0 = jax.random.normal(jax.random.key(0), (32, 4))
    f = analytic.gaussian_consistency_fn(MU, S)
    sigmas = schedules.karras_sigmas(11)
    key = jax.random.key(1)
    ct = losses.consistency_training_loss(f, f, x0, key, sigmas=sigmas)
    cd = losses.consistency_distillation_loss(f, f, lambda x, t: x0, x0, key,
                                              sigmas=sigmas, solver="euler")
    np.testing.assert_allclose(cd, ct, rtol=1e-4, atol=1e-7)

  def test_same_noise_for_both_points(self):
    x0 = jax.random.normal(jax.random.key(0), (64, 2, 2, 1))
    # f recovers the noise z from x_t = x0 + t z: identical for both points
    # iff the same z is used.
    f = lambda x, t: (x - x0) / t[:, None, None, None]
    loss = losses.consistency_training_loss(f, f, x0, jax.random.key(1),
                                            sigmas=schedules.karras_sigmas(11))
    np.testing.assert_allclose(loss, 0.0, atol=1e-8)

  def _index_histogram(self, sigmas, **kwargs):
    # f(x, t) = t: the per-example loss (t_{n+1} − t_n)² identifies n.
    f = lambda x, t: jnp.broadcast_to(t[:, None], x.shape)
    x0 = jnp.zeros((100_000, 1))
    loss = losses.consistency_training_loss(f, f, x0, jax.random.key(2),
                                            sigmas=sigmas, **kwargs)
    gaps = np.diff(np.asarray(sigmas)) ** 2
    n = np.argmin(np.abs(np.asarray(loss)[:, None] - gaps[None]), axis=1)
    return np.bincount(n, minlength=len(gaps)) / len(n)

  def test_uniform_index_law(self):
    freq = self._index_histogram(schedules.karras_sigmas(6))
    np.testing.assert_allclose(freq, np.full(5, 0.2), atol=0.01)

  def test_lognormal_index_law_ict(self):
    sigmas = schedules.karras_sigmas(11)
    probs = schedules.lognormal_index_probs(sigmas)
    freq = self._index_histogram(sigmas, index_probs=probs)
    np.testing.assert_allclose(freq, probs, atol=0.01)

  def test_padded_grid_draws_only_active_pairs(self):
    sigmas = schedules.karras_sigmas(jnp.int32(6), size=20)
    freq = self._index_histogram(sigmas, num_scales=6)
    np.testing.assert_allclose(freq[:5], np.full(5, 0.2), atol=0.01)
    np.testing.assert_array_equal(freq[5:], 0.0)
    probs = schedules.lognormal_index_probs(sigmas)
    freq = self._index_histogram(sigmas, index_probs=probs)
    np.testing.assert_array_equal(freq[5:], 0.0)

  def test_ict_weighting_and_huber(self):
    # λ = 1/(σ_{i+1} − σ_i) applied per example, with the pseudo-Huber metric.
    x0 = jnp.zeros((4096, 3))
    f = lambda x, t: jnp.broadcast_to(t[:, None], x.shape)
    sigmas = schedules.karras_sigmas(8)
    metric = functools.partial(losses.pseudo_huber, c=0.01)
    loss = losses.consistency_training_loss(
        f, f, x0, jax.random.key(3), sigmas=sigmas, metric=metric,
        weighting=schedules.ict_weight)
    gaps = np.diff(np.asarray(sigmas))
    allowed = (np.sqrt(3 * gaps ** 2 + 1e-4) - 0.01) / gaps
    dist = np.min(np.abs(np.asarray(loss)[:, None] - allowed[None]), axis=1)
    np.testing.assert_allclose(dist, 0.0, atol=1e-4)

  def test_no_retrace_when_num_scales_changes(self):
    x0 = jnp.zeros((8, 2))
    f = lambda x, t: x * t[:, None]

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(num_scales, key):
      sigmas = schedules.karras_sigmas(num_scales, size=1281)
      return losses.consistency_training_loss(
          f, f, x0, key, sigmas=sigmas,
          index_probs=schedules.lognormal_index_probs(sigmas),
          weighting=schedules.ict_weight)

    for n in (11, 21, 1281):
      self.assertTrue(np.all(np.isfinite(loss(jnp.int32(n), jax.random.key(n)))))


class DenoisingScoreMatchingTest(chex.TestCase):

  def test_minimum_at_exact_denoiser(self):
    x0 = MU + S * jax.random.normal(jax.random.key(0), (200_000, 2))
    key = jax.random.key(1)

    def mean_loss(denoiser):
      return float(losses.denoising_score_matching_loss(denoiser, x0, key).mean())

    exact = mean_loss(analytic.gaussian_denoiser(MU, S))
    for mu, s in ((MU + 0.05, S), (MU, S * 1.1), (MU, S * 0.9)):
      self.assertGreater(mean_loss(analytic.gaussian_denoiser(mu, s)), exact)

  def test_weighting_formula(self):
    # D ≡ 0 at x0 = 1 in one dimension: loss = λ(σ)·1, recover σ from λ.
    loss = losses.denoising_score_matching_loss(
        lambda x, s: jnp.zeros_like(x), jnp.ones((50_000, 1)), jax.random.key(2))
    # λ(σ) = 1/σd² + 1/σ² ⇒ ln σ = −½ ln(λ − 4) should be N(−1.2, 1.2²).
    log_sigma = -0.5 * np.log(np.asarray(loss) - 4.0)
    self.assertAlmostEqual(log_sigma.mean(), -1.2, delta=0.03)
    self.assertAlmostEqual(log_sigma.std(), 1.2, delta=0.03)


class OtherLossValuesTest(chex.TestCase):
  """The teachers' and the autoencoder's losses at given networks, against
  their formulas written out with the losses' own key splits."""

  def test_trigflow_diffusion_loss_value(self):
    """‖σ_d·F(x_t/σ_d, t) − v_t‖²/σ_d², x_t = cos t·x0 + sin t·z, v_t =
    cos t·z − sin t·x0, z ~ N(0, σ_d²I), t = arctan(e^τ/σ_d), τ ~
    N(−1.2, 1.2²)."""
    sd = 0.7
    x0 = jax.random.normal(jax.random.key(0), (256, 3))
    key = jax.random.key(1)
    net = lambda x_in, t: 0.6 * x_in + jnp.sin(t)[:, None]
    got = losses.trigflow_diffusion_loss(net, x0, key, sigma_data=sd)
    t_key, z_key = jax.random.split(key)
    t = np.arctan(np.exp(-1.2 + 1.2 * np.asarray(
        jax.random.normal(t_key, (256,)), np.float64)) / sd)[:, None]
    z = sd * np.asarray(jax.random.normal(z_key, (256, 3)), np.float64)
    x = np.asarray(x0, np.float64)
    x_t, v_t = np.cos(t) * x + np.sin(t) * z, np.cos(t) * z - np.sin(t) * x
    f = 0.6 * x_t / sd + np.sin(t)
    want = np.sum((sd * f - v_t) ** 2, axis=1) / sd ** 2
    np.testing.assert_allclose(got, want, rtol=1e-4)

  def test_noise_prediction_loss_value(self):
    """DDPM's L_simple = ‖ε̂ − ε‖², ε̂ = (z_t − α(t)·D)/σ(t), with SD's
    scaled-linear β (√β linear from √0.00085 to √0.012 over 1000 steps),
    ᾱ_t = ∏(1 − β), α = √ᾱ, σ = √(1 − ᾱ), t ~ U{0, …, 999}."""
    from cm_jax import processes  # pylint: disable=g-import-not-at-top
    process = processes.VP()
    x0 = jax.random.normal(jax.random.key(2), (512, 2))
    key = jax.random.key(3)
    denoiser = lambda z, t: 0.5 * z
    got = losses.noise_prediction_loss(denoiser, x0, key, process=process)
    t_key, noise_key = jax.random.split(key)
    t = np.asarray(jax.random.randint(t_key, (512,), 0, 1000))
    eps = np.asarray(jax.random.normal(noise_key, (512, 2)), np.float64)
    beta = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    alpha_bar = np.cumprod(1 - beta)[t][:, None]
    a, s = np.sqrt(alpha_bar), np.sqrt(1 - alpha_bar)
    z_t = a * np.asarray(x0, np.float64) + s * eps
    eps_hat = (z_t - a * 0.5 * z_t) / s
    want = np.sum((eps_hat - eps) ** 2, axis=1)
    np.testing.assert_allclose(got, want, rtol=2e-3)

  def test_autoencoder_loss_value(self):
    """d(x0, x̂) + β·½Σ(μ² + e^logvar − 1 − logvar) with d = ℓ1."""
    x0 = jnp.array([[1.0, -2.0], [0.5, 0.0]])
    x_hat = jnp.array([[0.5, -1.0], [0.5, 1.0]])
    mean = jnp.array([[0.3], [-1.0]])
    logvar = jnp.array([[0.2], [-0.5]])
    total, rec, kl = losses.autoencoder_loss(
        lambda x: (x_hat, mean, logvar), x0, kl_weight=0.1)
    want_rec = np.array([1.5, 1.0])
    m, lv = np.array([0.3, -1.0]), np.array([0.2, -0.5])
    want_kl = 0.5 * (m ** 2 + np.exp(lv) - 1 - lv)
    np.testing.assert_allclose(rec, want_rec, rtol=1e-6)
    np.testing.assert_allclose(kl, want_kl, rtol=1e-6)
    np.testing.assert_allclose(total, want_rec + 0.1 * want_kl, rtol=1e-6)

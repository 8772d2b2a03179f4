"""TCM (Lee et al. 2025, NVlabs/TCM) against its authors' code written out
again here: the capped ratio, the truncated time laws (against SciPy),
stage 2's loss (ECMLoss with a TCMPrecond network, line by line in NumPy)
and, on point-mass data, where consistency-training pairs lie on the
PF-ODE's trajectories, both of its terms vanishing at the exact f."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from scipy import stats

from cm_jax import losses, methods, processes
from cm_jax.methods.base import Needs
from cm_jax.nn import Condition, get_model, network
from cm_jax.train import step as step_lib
from cm_jax.train.state import TrainState
from configs import tcm_cifar10, tcm_toy2d

sigmoid = lambda t: 1.0 / (1.0 + np.exp(-t))


def tcm_r(t, ratio, r_min=1e-6):
  """NVlabs/TCM ``delta_sigmoid``: dt = t·(1 − ratio)·(1 + 8·sigmoid(−t)),
  s = t − dt, s[s < 1e-6] = 1e-6; returns s (= r)."""
  s = t - t * (1 - ratio) * (1 + 8 * sigmoid(-t))
  return np.where(s < r_min, r_min, s)


def tcm_ratio(stage, q=2.0, limit=0.999):
  """``ECMLoss.update_schedule``: 1 − 1/q^(stage + 1), clipped at the limit."""
  return min(1 - 1 / q ** (stage + 1), limit)


def test_capped_ratio_and_stage_offset_are_the_official_schedule():
  """r(t) at stages 0 … 12 with the ratio capped at 0.999 (reached at
  stage 9, where 1 − 2⁻¹⁰ > 0.999), and the stage counted on from
  ``start_stage`` (TCM's --resume_tick)."""
  t = np.geomspace(2e-3, 80.0, 31)
  for stage in range(13):
    want = tcm_r(t, tcm_ratio(stage), r_min=-np.inf)
    got = losses.ect_mapping(jnp.asarray(t, jnp.float32), stage,
                             ratio_limit=0.999)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
  uncapped = losses.ect_mapping(jnp.float32(50.0), 10)
  capped = losses.ect_mapping(jnp.float32(50.0), 10, ratio_limit=0.999)
  assert float(capped) < float(uncapped)  # the cap binds past stage 9
  np.testing.assert_array_equal(
      losses.ect_stage(np.array([0, 999, 1000, 4500]), 1000, start_stage=8),
      [8, 8, 9, 12])


@pytest.mark.parametrize("df", [0.01, 0.5, 2.0, 30.0])
def test_student_t_cdf_is_scipys(df):
  x = np.concatenate([-np.geomspace(1e-4, 1e3, 40), [0.0],
                      np.geomspace(1e-4, 1e3, 40)])
  np.testing.assert_allclose(losses.student_t_cdf(x, df),
                             stats.t.cdf(x, df), atol=2e-6)


def _truncated_cdf(dist, lower, upper):
  """The CDF of ln t for ln t ~ ``dist`` (a SciPy law) truncated to
  [ln lower, ln upper], written from ``dist`` alone."""
  lo, hi = dist.cdf(np.log(lower)), dist.cdf(np.log(upper))
  return lambda x: (dist.cdf(x) - lo) / (hi - lo)


@pytest.mark.parametrize("law", [
    # TCM stage 1: N(−1.1, 2²) on [0.002, 80].
    dict(p_mean=-1.1, p_std=2.0, t_lower=0.002, t_upper=80.0, df=None),
    # TCM stage 2: Student-t(0.01) at loc 0, scale 0.2 on [1, 80].
    dict(p_mean=0.0, p_std=0.2, t_lower=1.0, t_upper=80.0, df=0.01),
    dict(p_mean=0.5, p_std=1.0, t_lower=0.5, t_upper=20.0, df=3.0)])
def test_truncated_time_laws_are_scipys(law):
  """40,000 draws lie in [t_lower, t_upper] and their ln t follow the
  truncated law (Kolmogorov–Smirnov distance below the 1% critical value
  1.63/√n)."""
  n = 40_000
  t = np.asarray(jax.jit(lambda key: losses.truncated_log_time(
      key, n, **law))(jax.random.key(0)), np.float64)
  assert t.min() >= law["t_lower"] * (1 - 1e-6)
  assert t.max() <= law["t_upper"] * (1 + 1e-6)
  loc, scale = law["p_mean"], law["p_std"]
  dist = (stats.norm(loc, scale) if law["df"] is None
          else stats.t(law["df"], loc, scale))
  cdf = _truncated_cdf(dist, law["t_lower"], law["t_upper"])
  x = np.sort(np.log(t))
  ks = np.max(np.maximum(np.arange(1, n + 1) / n - cdf(x),
                         cdf(x) - np.arange(n) / n))
  assert ks < 1.63 / np.sqrt(n), ks


def _mlp_consistency_fn(seed):
  """f of a small MLP with random weights, EDM's c_skip and c_out (TCM's
  ECMPrecond: no σ_min shift)."""
  model = get_model(ml_collections.ConfigDict(dict(
      name="mlp", hidden=32, depth=2, embedding="positional")))
  x = jnp.zeros((4, 2))
  shapes = jax.eval_shape(model.init, jax.random.key(0), x,
                          Condition(x[:, 0]))
  rng = np.random.default_rng(seed)
  params = jax.tree.map(lambda s: jnp.asarray(
      0.3 * rng.standard_normal(s.shape), s.dtype), shapes["params"])
  return processes.VE(sigma_min=0.0).consistency_fn(network(model, params))


def _authors_stage2_loss(student, stage1, x0, z, t, boundary, *, ratio,
                         transition_t, c, w_boundary):
  """NVlabs/TCM ECMLoss.__call__ with net = TCMPrecond(stage1, student), in
  float64 NumPy: t[mask] = t′; r = t − delta_sigmoid(t); D_yt = net(y_t, t);
  D_yr = net(y_r, r), where TCMPrecond takes the student at σ ≥ t′ and
  the stage-1 model below; ℓ = (√(‖D_yt − D_yr‖² + c²) − c)/(t − r); the
  train loop's loss.mean() + w_boundary·loss_boundary.mean()."""
  call = lambda f, x, s: np.asarray(jax.jit(f)(
      jnp.asarray(x, jnp.float32), jnp.asarray(s, jnp.float32)), np.float64)
  t = np.where(boundary, transition_t, t)
  r = tcm_r(t, ratio)

  def tcm_precond(x, sigma):
    return np.where((sigma >= transition_t)[:, None], call(student, x, sigma),
                    call(stage1, x, sigma))

  d_yt = tcm_precond(x0 + t[:, None] * z, t)
  d_yr = tcm_precond(x0 + r[:, None] * z, r)
  dist = np.sqrt(np.sum((d_yt - d_yr) ** 2, axis=1))
  loss = (np.sqrt(dist ** 2 + c ** 2) - c) / (t - r)
  return loss[~boundary].mean() + w_boundary * loss[boundary].mean(), loss, r


def test_stage1_is_ects_loss_truncated_capped_and_clamped_at_1e6():
  """TCM's stage 1 (``easy_consistency_training_loss`` with t_range,
  ratio_limit and r_min) against ECMLoss written out: ln t from the
  truncated normal on [0.002, 80]; r = delta_sigmoid's s, clamped at 1e-6
  where f is evaluated (no x0 target); ℓ = (√(‖D_yt − D_yr‖² + c²) −
  c)/(t − r), at stage 0 (clamped pairs) and 11 (capped ratio)."""
  f = _mlp_consistency_fn(3)
  n, key, c = 512, jax.random.key(4), 1e-8
  x0 = 0.5 * np.asarray(jax.random.normal(jax.random.key(2), (n, 2)))
  t_key, z_key = jax.random.split(key)  # the loss's own split of its key
  t = np.asarray(losses.truncated_log_time(
      t_key, n, p_mean=-1.1, p_std=2.0, t_lower=0.002, t_upper=80.0),
      np.float64)
  z = np.asarray(jax.random.normal(z_key, (n, 2)), np.float64)
  call = lambda x, s: np.asarray(jax.jit(f)(
      jnp.asarray(x, jnp.float32), jnp.asarray(s, jnp.float32)), np.float64)
  for stage in (0, 11):
    r = tcm_r(t, tcm_ratio(stage))
    if stage == 0:
      assert np.any(r == 1e-6)
    dist = np.linalg.norm(call(x0 + t[:, None] * z, t)
                          - call(x0 + r[:, None] * z, r), axis=1)
    want = (np.sqrt(dist ** 2 + c ** 2) - c) / (t - r)
    got = jax.jit(lambda: losses.easy_consistency_training_loss(
        f, f, jnp.asarray(x0, jnp.float32), key, stage=stage,
        metric=lambda a, b: losses.pseudo_huber(a, b, c),
        t_range=(0.002, 80.0), ratio_limit=0.999, r_min=1e-6))()
    # float32 f(x_t) − f(x_r) cancels where r ≈ t (Δt/t = 0.003 at the cap)
    np.testing.assert_allclose(got, want, rtol=6e-3, atol=1e-6)


def _draws(key, n, transition_t, law):
  """The loss's own draws from its key: t (``truncated_log_time``, tested
  above), the boundary examples (a random permutation's first ⌊n/4⌋) and z."""
  t_key, pick_key, noise_key = jax.random.split(key, 3)
  t = np.asarray(losses.truncated_log_time(
      t_key, n, t_lower=transition_t, t_upper=80.0, **law), np.float64)
  picked = np.asarray(jax.random.permutation(pick_key, n))[:n // 4]
  boundary = np.zeros(n, bool)
  boundary[picked] = True
  z = np.asarray(jax.random.normal(noise_key, (n, 2)), np.float64)
  return t, boundary, z


def test_stage2_loss_is_the_authors_ecm_loss_with_tcm_precond():
  """The TCM objective's batch mean against ECMLoss + TCMPrecond written
  out, with a student and a stage-1 model that differ, at stage 0 (ratio
  ½: many r below t′, some clamped at 1e-6), 3 and 12 (capped at 0.999);
  and its two reported means."""
  student, stage1 = _mlp_consistency_fn(0), _mlp_consistency_fn(1)
  n, key, transition_t, c, w = 512, jax.random.key(5), 1.0, 1e-8, 0.1
  law = dict(p_mean=0.0, p_std=0.2, df=0.01)
  x0 = 0.5 * np.asarray(jax.random.normal(jax.random.key(2), (n, 2)))
  t, boundary, z = _draws(key, n, transition_t, law)
  assert boundary.sum() == n // 4
  metric = lambda a, b: losses.pseudo_huber(a, b, c)
  for stage in (0, 3, 12):
    loss, parts = jax.jit(lambda: losses.truncated_consistency_loss(
        student, student, stage1, jnp.asarray(x0, jnp.float32), key,
        stage=stage, transition_t=transition_t, boundary_prob=0.25,
        w_boundary=w, metric=metric, **law))()
    want, per_example, r = _authors_stage2_loss(
        student, stage1, x0, z, t, boundary, ratio=tcm_ratio(stage),
        transition_t=transition_t, c=c, w_boundary=w)
    if stage == 0:
      assert np.any((r < transition_t) & ~boundary)  # φ's target, truncated
      assert np.any((r >= transition_t) & ~boundary)  # θ's target
      assert np.any(r == 1e-6)  # clamped
    np.testing.assert_allclose(float(jnp.mean(loss)), want, rtol=2e-3)
    np.testing.assert_allclose(parts["consistency"],
                               per_example[~boundary].mean(), rtol=2e-3)
    np.testing.assert_allclose(parts["boundary"],
                               per_example[boundary].mean(), rtol=2e-3)


def _point_mass_fn(mu, offset=0.0, eps=1e-6):
  """f*(x, t) = μ + (x − μ)·ε/t, the consistency function of data at the
  point μ (the closed-form Gaussian's with s = 0), plus ``offset``."""
  def f(x, t):
    t = jnp.broadcast_to(t, x.shape[:1])[:, None]
    return mu + (x - mu) * eps / t + offset
  return f


def test_point_mass_exact_f_makes_both_terms_vanish_and_an_error_shows():
  """Data at one point μ: x0 + t·z and x0 + r·z lie on one PF-ODE
  trajectory, so with the exact f* as student and stage-1 model both terms
  vanish. A stage-1 model off by δ shows exactly where TCMPrecond uses it:
  the boundary term is ‖δ‖/(t′ − r) per example, the truncated term
  ‖δ‖/(t − r) where r < t′ and 0 where r ≥ t′; a student off by δ the
  reverse (its own offset cancels where r ≥ t′)."""
  n, key, transition_t = 256, jax.random.key(9), 1.0
  mu = jnp.array([0.3, -0.2])
  delta = jnp.array([0.03, -0.04])  # ‖δ‖ = 0.05
  x0 = jnp.broadcast_to(mu, (n, 2))
  law = dict(p_mean=0.0, p_std=0.2, df=0.01)
  t, boundary, _ = _draws(key, n, transition_t, law)
  stage = 0  # ratio ½: truncated examples with r on both sides of t′
  r = tcm_r(np.where(boundary, transition_t, t), tcm_ratio(stage))
  t = np.where(boundary, transition_t, t)

  def parts(student, stage1):
    _, got = jax.jit(lambda: losses.truncated_consistency_loss(
        student, student, stage1, x0, key, stage=stage,
        transition_t=transition_t, boundary_prob=0.25, w_boundary=0.1,
        **law))()
    return float(got["consistency"]), float(got["boundary"])

  exact = _point_mass_fn(mu)
  consistency, boundary_term = parts(exact, exact)
  assert consistency < 1e-3 and boundary_term < 1e-3
  below = (r < transition_t) & ~boundary
  assert below.any() and (~below & ~boundary).any()
  per_example = 0.05 / (t - r)
  want_consistency = np.where(below, per_example, 0.0)[~boundary].mean()
  want_boundary = per_example[boundary].mean()
  got = parts(exact, _point_mass_fn(mu, delta))
  np.testing.assert_allclose(got, (want_consistency, want_boundary),
                             rtol=2e-3)
  got = parts(_point_mass_fn(mu, delta), exact)
  np.testing.assert_allclose(got, (want_consistency, want_boundary),
                             rtol=2e-3)


def test_teacher_dropout_shares_the_students_masks():
  """With ``Needs.teacher_dropout`` the step runs φ with θ's dropout key: at
  φ = θ, φ's and θ's outputs agree exactly; without it (CD's teacher) they
  differ by θ's dropout."""
  model = get_model(ml_collections.ConfigDict(dict(
      name="mlp", hidden=64, depth=2, embedding="positional", dropout=0.5)))
  x = jax.random.normal(jax.random.key(0), (8, 2))
  c_noise = jnp.full((8,), 0.3)
  shapes = jax.eval_shape(model.init, jax.random.key(1), x, Condition(c_noise))
  rng = np.random.default_rng(1)  # not the zero output layer of init
  params = jax.tree.map(lambda s: jnp.asarray(
      0.3 * rng.standard_normal(s.shape), s.dtype), shapes["params"])

  @dataclasses.dataclass(frozen=True)
  class Gap:
    needs: Needs

    def __call__(self, online, target, x0, key, step, teacher=None):
      gap = jnp.sum((online(x0, c_noise) - teacher(x0, c_noise)) ** 2, -1)
      return gap, {"target_mu": jnp.float32(0.0), "gap": jnp.mean(gap)}

  tx = optax.sgd(0.0)
  state = TrainState(step=jnp.zeros((), jnp.int32), online=params,
                     target=params, ema=params, opt_state=tx.init(params),
                     rng=jax.random.key(2), skipped=jnp.zeros((), jnp.int32))
  gaps = {}
  for shared in (True, False):
    _, metrics = step_lib.train_step(
        state, {"x": x}, params, model=model, tx=tx,
        objective=Gap(Needs(teacher_in_step=True, teacher_dropout=shared)),
        lr_schedule=lambda step: 0.0, ema_decay=0.0, teacher_model=model)
    gaps[shared] = float(metrics["gap"])
  assert gaps[True] == 0.0 and gaps[False] > 1e-3, gaps


def test_recipes_follow_the_authors_scripts():
  """tcm_cifar10.py's two stages as NVlabs/TCM's README commands."""
  one = tcm_cifar10.get_config("stage1")
  assert (one.method, one.ect.truncate, one.ect.t_lower, one.ect.t_upper,
          one.ect.ratio_limit, one.ect.r_min) == ("ect", True, 0.002, 80.0,
                                                  0.999, 1e-6)
  assert (one.loss.metric, one.loss.huber_c, one.loss.weighting) == (
      "pseudo_huber", 1e-8, "ict")
  assert (one.train.batch_size, one.optim.name, one.optim.lr,
          one.model.dropout, one.ect.stage_steps) == (512, "radam", 1e-4, 0.2,
                                                      25_000)
  two = tcm_cifar10.get_config()
  assert (two.method, two.tcm.transition_t, two.tcm.p_mean, two.tcm.p_std,
          two.tcm.df, two.tcm.boundary_prob, two.tcm.w_boundary) == (
              "tcm", 1.0, 0.0, 0.2, 0.01, 0.25, 0.1)
  assert (two.train.batch_size, two.optim.lr, two.ect.ratio_limit) == (
      1024, 5e-5, 0.999)
  assert tcm_ratio(two.ect.start_stage) == 0.999  # stage 2 at the cap
  assert methods.needs_of("tcm").teacher == ("ect",)


def test_bad_stage2_settings_are_one_line_errors():
  for field, value, match in (("transition_t", 80.0, "transition_t"),
                              ("boundary_prob", 1.0, "boundary_prob"),
                              ("df", 0.0, "tcm.df")):
    c = tcm_toy2d.get_config()
    c.tcm[field] = value
    with pytest.raises(ValueError, match=match):
      methods.make_objective(c, (2,))

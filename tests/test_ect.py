"""ECT (Geng et al. 2024) as its authors' CIFAR-10 code (locuslab/ect, main
branch): the mapping r(t), the stages, the pair loss and the
preconditioning, each against the formula written out again here."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cm_jax import losses, processes, schedules
from cm_jax.nn import Condition, get_model, network
from cm_jax.methods.ect import EasyConsistencyTraining
from configs import ect_cifar10


def test_mapping_and_stage_are_the_official_formulas():
  """r = t·(1 − q^−(s+1)·(1 + k/(1 + e^{bt}))) (sigmoid(−bt) written out)
  and s = ⌊k / K_stage⌋, for several q, k, b, s and t."""
  t = np.geomspace(1e-3, 100.0, 23)
  for q, k, b in [(2.0, 8.0, 1.0), (4.0, 8.0, 1.0), (2.0, 3.0, 0.5)]:
    for s in range(6):
      want = t * (1 - q ** -(s + 1) * (1 + k / (1 + np.exp(b * t))))
      got = losses.ect_mapping(jnp.asarray(t, jnp.float32), s, q=q, k=k, b=b)
      np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
  steps = np.array([0, 1, 999, 1000, 1001, 7999, 8000, 25_000])
  np.testing.assert_array_equal(losses.ect_stage(steps, 1000),
                                [0, 0, 0, 1, 1, 7, 8, 25])
  # Δt/t halves per stage (q = 2) where sigmoid(−t) ≈ 0 (large t).
  big = jnp.float32(50.0)
  gaps = [float(big - losses.ect_mapping(big, s)) for s in range(4)]
  np.testing.assert_allclose(np.array(gaps[1:]) / gaps[:-1], 0.5, rtol=1e-4)


def _tiny_consistency_fn(eps=0.0):
  """f_θ of a small MLP with random (not near-zero) weights: EDM's c_skip,
  c_out (ECMPrecond in training) for eps = 0, CM eq. 5's shift otherwise."""
  model = get_model(ml_collections.ConfigDict(dict(
      name="mlp", hidden=32, depth=2, embedding="positional")))
  x = jnp.zeros((4, 2))
  shapes = jax.eval_shape(model.init, jax.random.key(0), x,
                          Condition(x[:, 0]))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: jnp.asarray(
      0.3 * rng.standard_normal(s.shape), s.dtype), shapes["params"])
  return processes.VE(sigma_min=eps).consistency_fn(network(model, params))


def _authors_loss(f, x0, z, t, r_raw, weighting, sigma_data=0.5):
  """locuslab/ect ``ECMLoss.__call__``, line by line in NumPy (float64):
  r = clamp(r, min=0); D_yt = f(y + t·ε, t); D_yr = f(y + r·ε, r) where
  r > 0, else y; loss = √(Σ (D_yt − D_yr)²); CIFAR-10 (main) returns
  loss/(t − r), the imgnet branch loss·(t² + σ_d²)/(t·σ_d)²."""
  r = np.maximum(r_raw, 0.0)
  call = lambda x, s: np.asarray(jax.jit(f)(jnp.asarray(x, jnp.float32),
                                            jnp.asarray(s, jnp.float32)),
                                 np.float64)
  d_yt = call(x0 + t[:, None] * z, t)
  r_safe = np.where(r > 0, r, 1.0)  # the authors' nan_to_num, then the mask
  d_yr = np.where((r > 0)[:, None], call(x0 + r_safe[:, None] * z, r_safe),
                  x0)
  dist = np.sqrt(np.sum((d_yt - d_yr) ** 2, axis=1))
  if weighting == "ict":
    return dist / (t - r)
  return dist * (t ** 2 + sigma_data ** 2) / (t * sigma_data) ** 2


def test_pair_loss_is_the_authors_ecm_loss_at_several_t_and_stages():
  """``easy_consistency_training_loss`` against ECMLoss written out: t from
  ln t = P_mean + P_std·n (unclipped: t below σ_min and above σ_max), r from the
  mapping clamped at 0 (so stage 0 and 1 hold pairs with r = 0, whose
  target is x0), at stages 0, 1, 2 and 5, for λ = 1/(t − r) (CIFAR-10) and
  snrpk (ImageNet)."""
  f = _tiny_consistency_fn()
  n, key = 1024, jax.random.key(7)
  x0 = 0.5 * np.asarray(jax.random.normal(jax.random.key(2), (n, 2)),
                        np.float64)
  t_key, z_key = jax.random.split(key)  # the loss's own split of its key
  normal = np.asarray(jax.random.normal(t_key, (n,)), np.float64)
  z = np.asarray(jax.random.normal(z_key, (n, 2)), np.float64)
  p_mean, p_std = -1.1, 2.0
  t = np.exp(p_mean + p_std * normal)
  assert t.min() < 0.002 and t.max() > 80.0  # beyond [σ_min, σ_max] both ways
  for weighting, fn in (("ict", schedules.ict_weight),
                        ("snrpk", schedules.snrpk_weight)):
    loss = jax.jit(lambda stage, fn=fn: losses.easy_consistency_training_loss(
        f, f, jnp.asarray(x0, jnp.float32), key, stage=stage, p_mean=p_mean,
        p_std=p_std, weighting=fn))
    for stage in (0, 1, 2, 5):
      r_raw = t * (1 - 2.0 ** -(stage + 1) * (1 + 8.0 / (1 + np.exp(t))))
      if stage < 2:
        assert np.any(r_raw <= 0) and np.any(r_raw > 0)
      want = _authors_loss(f, x0, z, t, r_raw, weighting)
      # float32 f(x_t) − f(x_r) cancels where r ≈ t: 1e-3 of round-off
      np.testing.assert_allclose(loss(stage), want, rtol=3e-3, atol=1e-6)


def test_pair_loss_approaches_the_continuous_time_limit():
  """With λ = 1/(t − r) and d = ‖·‖₂, loss(t, r) → ‖d/dt f(x0 + t·z, t)‖
  as r → t; with snrpk, loss(t, r)/(t − r) → (1/t² + 1/σ_d²)·‖df/dt‖. The
  gap shrinks in proportion to Δt (a first-order difference). df/dt is one
  forward-mode JVP of f, not the loss."""
  f = _tiny_consistency_fn()
  kx, kz = jax.random.split(jax.random.key(1))
  x0 = 0.5 * jax.random.normal(kx, (4, 2))
  z = jax.random.normal(kz, (4, 2))
  t = jnp.full((4,), 0.7)
  _, dfdt = jax.jit(lambda t: jax.jvp(lambda t: f(x0 + t[:, None] * z, t),
                                      (t,), (jnp.ones(4),)))(t)
  speed = np.linalg.norm(np.asarray(dfdt, np.float64), axis=-1)
  for fn, scale, limit in (
      (schedules.ict_weight, lambda dt: 1.0, speed),
      (schedules.snrpk_weight, lambda dt: dt, (1 / 0.49 + 1 / 0.25) * speed)):
    pair_loss = jax.jit(lambda r, fn=fn: losses.ect_pair_loss(
        f, f, x0, z, t, r, weighting=fn))
    errors = []
    for dt in (1e-1, 1e-2, 1e-3):
      per_pair = np.asarray(pair_loss(t - dt)) / scale(dt)
      errors.append(float(np.max(np.abs(per_pair - limit) / limit)))
    assert errors[0] > 5 * errors[1] > 25 * errors[2], errors
    assert errors[2] < 2e-3, errors


def test_small_t_keeps_the_clean_image_as_target():
  """t = e^{P_mean} below σ_min (P_std = 0): r clamps to 0 and the loss is
  ‖f(x0 + t·z, t) − x0‖/t, not zero (the authors keep these draws)."""
  f = _tiny_consistency_fn()
  x0 = 0.5 * jax.random.normal(jax.random.key(2), (4, 2))
  key = jax.random.key(3)
  t = float(np.exp(-8.0))
  assert t < 0.002
  got = jax.jit(lambda: losses.easy_consistency_training_loss(
      f, f, x0, key, stage=0, p_mean=-8.0, p_std=0.0))()
  z = jax.random.normal(jax.random.split(key)[1], x0.shape)
  pred = np.asarray(jax.jit(f)(x0 + t * z, jnp.full((4,), t)), np.float64)
  want = np.linalg.norm(pred - np.asarray(x0, np.float64), axis=-1) / t
  np.testing.assert_allclose(got, want, rtol=1e-4)
  assert float(got.min()) > 0


def test_training_uses_edm_scalings_and_evaluation_the_shifted_ones():
  """ECMPrecond: in training c_skip = σ_d²/(t² + σ_d²), c_out =
  t·σ_d/√(t² + σ_d²); at evaluation (the process's f, σ_min = 0.003)
  c_skip = σ_d²/((t − 0.003)² + σ_d²), c_out = (t − 0.003)·σ_d/√(t² + σ_d²);
  both with c_in = 1/√(t² + σ_d²) and c_noise = ¼·ln t. A network that
  returns its inputs shows every term."""
  config = ect_cifar10.get_config()
  assert config.diffusion.sigma_min == 0.003 and not config.ect.train_shift
  assert config.loss.weighting == "ict" and config.loss.metric == "l2_norm"
  objective = EasyConsistencyTraining.from_config(config, (2,))
  sd = 0.5
  net = lambda x_in, c_noise: x_in * jnp.exp(c_noise)[:, None]  # c_in·x·t^¼
  x = jnp.array([[0.3, -1.2], [2.0, 0.5], [-0.7, 0.1]])
  t = np.array([0.004, 0.821, 80.0])
  c_in, c_noise = 1 / np.sqrt(t ** 2 + sd ** 2), np.log(t) / 4
  out = np.asarray(x, np.float64) * (c_in * np.exp(c_noise))[:, None]
  for f, shift in ((objective.consistency_fn(net), 0.0),
                   (processes.make_process(config).consistency_fn(net),
                    0.003)):
    c_skip = sd ** 2 / ((t - shift) ** 2 + sd ** 2)
    c_out = (t - shift) * sd / np.sqrt(t ** 2 + sd ** 2)
    want = c_skip[:, None] * np.asarray(x, np.float64) + c_out[:, None] * out
    np.testing.assert_allclose(f(x, jnp.asarray(t, jnp.float32)), want,
                               rtol=1e-5)
  config.ect.train_shift = True  # CM eq. 5 in training too
  shifted = EasyConsistencyTraining.from_config(config, (2,))
  np.testing.assert_array_equal(
      shifted.consistency_fn(net)(x, jnp.full((3,), 0.003)), x)


def test_l2_norm_has_a_zero_gradient_at_zero():
  x = jnp.ones((2, 3))
  g = jax.grad(lambda x: losses.l2_norm(x, jnp.ones((2, 3))).sum())(x)
  assert np.all(np.isfinite(g)) and not np.any(g)
  np.testing.assert_allclose(losses.l2_norm(x, 0 * x), np.sqrt(3.0))

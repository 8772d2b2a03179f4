"""Consistency and diffusion losses as pure functions of callables.

Every loss returns the per-example loss, shape [B]; the train step takes the
mean. Networks arrive as callables (see ``cm_jax.parametrization``):
- ``online``, ``target``: ConsistencyFn (x, t) → x̂, f_θ and f_θ⁻;
- ``teacher``, ``denoiser``: Denoiser (x, σ) → x̂_0.
The target branch is wrapped in ``stop_gradient``: no gradient reaches θ⁻
(or θ, when θ⁻ = θ as in iCT), as the papers' stopgrad demands. Callers that
use dropout close the **same** dropout key into online and target (iCT §3.2).

A ``metric`` is any (x, y) → [B]; a ``weighting`` any (σ_i, σ_{i+1}) → λ [B]
(``cm_jax.schedules``: ``uniform_weight``, ``ict_weight``).
"""

import functools
import math

import jax
import jax.numpy as jnp

from cm_jax import processes, schedules, solvers
from cm_jax.parametrization import expand_to
from cm_jax.solvers import get_solver


def _sum_non_batch(x):
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def _mean_non_batch(x):
  return jnp.mean(x.reshape(x.shape[0], -1), axis=-1)


# How a metric reduces an example's d elements: "sum", the CM papers' norms
# (‖·‖², ‖·‖₁), or "mean", 1/d of that (the official LCM script's
# F.mse_loss(reduction="mean")), whose gradient does not grow with d.
REDUCTIONS = {"sum": _sum_non_batch, "mean": _mean_non_batch}


def l2(x, y, reduction="sum"):
  """Squared ℓ2 distance ‖x − y‖² over all non-batch axes → [B];
  ``reduction="mean"``: ‖x − y‖²/d, the per-element mean."""
  return REDUCTIONS[reduction](jnp.square(x - y))


def l1(x, y, reduction="sum"):
  """ℓ1 distance ‖x − y‖₁ → [B]; ``reduction="mean"``: ‖x − y‖₁/d."""
  return REDUCTIONS[reduction](jnp.abs(x - y))


def l2_norm(x, y, reduction="sum"):
  """‖x − y‖₂ → [B] (ECT's metric, its pseudo-Huber with c = 0), with a
  zero gradient where x = y; ``reduction="mean"``: √(‖x − y‖²/d)."""
  sq = l2(x, y, reduction)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def pseudo_huber(x, y, c, reduction="sum"):
  """iCT §3.3: d(x, y) = √(‖x − y‖² + c²) − c → [B]. ``reduction="mean"``:
  the official LCM script's Huber loss, the per-element mean of
  √((x_i − y_i)² + c²) − c."""
  if reduction == "mean":
    return _mean_non_batch(jnp.sqrt(jnp.square(x - y) + c ** 2) - c)
  return jnp.sqrt(l2(x, y, reduction) + c ** 2) - c


def ict_huber_c(dim):
  """iCT §3.3: c = 0.00054·√d for data of dimension d (0.0299 on CIFAR-10)."""
  return 0.00054 * math.sqrt(dim)


LCM_HUBER_C = 0.001  # the official LCM script's --huber_c (per element)


def sample_index(key, batch_size, sigmas, index_probs=None, num_scales=None):
  """Draws n ∈ {0, …, N − 2}, the lower index of the pair (σ_n, σ_{n+1}).

  Uniform as in CM Alg. 2–3 (n ~ U⟦1, N − 1⟧ in the paper's 1-based
  notation), or from ``index_probs`` [len(sigmas) − 1] (iCT's lognormal p(i)).
  ``num_scales`` is the N in use when ``sigmas`` is padded (may be traced).
  """
  if index_probs is not None:
    return jax.random.categorical(key, jnp.log(index_probs), shape=(batch_size,))
  num_scales = len(sigmas) if num_scales is None else num_scales
  return jax.random.randint(key, (batch_size,), 0, num_scales - 1)


def _consistency_pair_loss(online, target, x_next, t_next, x_cur, t_cur, metric,
                           weighting):
  """λ(t_n)·d(f_θ(x_{t_{n+1}}, t_{n+1}), stopgrad f_θ⁻(x_{t_n}, t_n))."""
  pred = online(x_next, t_next)
  tgt = jax.lax.stop_gradient(target(x_cur, t_cur))
  return weighting(t_cur, t_next) * metric(pred, tgt)


def consistency_distillation_loss(online, target, teacher, x0, key, *, sigmas,
                                  solver="heun", metric=l2,
                                  weighting=schedules.uniform_weight,
                                  num_scales=None):
  """CM Alg. 2 / eq. 7, the per-example L_CD^N(θ, θ⁻; φ).

  x_{t_{n+1}} = x + t_{n+1}·z; x̂_{t_n}^φ = one ``solver`` step of the teacher
  PF-ODE from t_{n+1} to t_n (the paper's Heun, or Euler);
  loss = λ(t_n)·d(f_θ(x_{t_{n+1}}, t_{n+1}), f_θ⁻(x̂_{t_n}^φ, t_n)).

  λ defaults to the paper's uniform weighting; ``schedules.ict_weight`` or
  ``karras_weight`` are alternatives. The teacher step is under stop_gradient.
  """
  solver = get_solver(solver)
  index_key, noise_key = jax.random.split(key)
  n = sample_index(index_key, x0.shape[0], sigmas, num_scales=num_scales)
  t_cur, t_next = sigmas[n], sigmas[n + 1]
  x_next = x0 + expand_to(t_next, x0) * jax.random.normal(noise_key, x0.shape)
  x_cur = jax.lax.stop_gradient(solver(teacher, x_next, t_next, t_cur))
  return _consistency_pair_loss(online, target, x_next, t_next, x_cur, t_cur,
                                metric, weighting)


def consistency_training_loss(online, target, x0, key, *, sigmas,
                              index_probs=None, metric=l2,
                              weighting=schedules.uniform_weight,
                              num_scales=None):
  """CM Alg. 3 / eq. 10, the per-example L_CT^N(θ, θ⁻); iCT with its options.

  One z for both points: loss = λ(t_n)·d(f_θ(x + t_{n+1}z, t_{n+1}),
  f_θ⁻(x + t_n z, t_n)). CM: uniform n, λ = 1, LPIPS. iCT: n ~ p(i)
  (``schedules.lognormal_index_probs``), λ = ``schedules.ict_weight``,
  ``pseudo_huber`` metric, and θ⁻ = θ (μ = 0).
  """
  index_key, noise_key = jax.random.split(key)
  n = sample_index(index_key, x0.shape[0], sigmas, index_probs, num_scales)
  t_cur, t_next = sigmas[n], sigmas[n + 1]
  z = jax.random.normal(noise_key, x0.shape)
  x_next = x0 + expand_to(t_next, x0) * z
  x_cur = x0 + expand_to(t_cur, x0) * z
  return _consistency_pair_loss(online, target, x_next, t_next, x_cur, t_cur,
                                metric, weighting)


def ect_mapping(t, stage, *, q=2.0, k=8.0, b=1.0, ratio_limit=1.0):
  """ECT's r(t) at training stage s (Geng et al. 2024, §3.2 "mapping
  function"; locuslab/ect ``training/loss.py``, ``t_to_r_sigmoid``):

    r = t·(1 − q^{−(s+1)}·(1 + k·sigmoid(−b·t))),

  so Δt = t − r = t·q^{−(s+1)}·(1 + k·σ(−bt)) shrinks by q per stage, and
  relatively more at small t. May be ≤ 0; the loss clamps it (``r_min``).
  TCM (NVlabs/TCM ``training/loss.py``, ``update_schedule``) caps the
  ratio 1 − q^{−(s+1)} at ``ratio_limit`` (0.999), i.e. q^{−(s+1)} at
  1 − ratio_limit from below; 1 = no cap (ECT)."""
  decay = jnp.maximum(
      jnp.asarray(q, jnp.float32) ** -(jnp.asarray(stage, jnp.float32) + 1.0),
      1.0 - jnp.asarray(ratio_limit, jnp.float32))
  return t * (1.0 - decay * (1.0 + k * jax.nn.sigmoid(-b * t)))


def ect_stage(step, stage_steps, start_stage=0):
  """ECT's stage s = ⌊k / (iterations per stage)⌋ (the official code:
  ``cur_tick // double_ticks``), plus TCM's ``start_stage`` (its stage 2
  goes on with the stage-1 run's stage through ``--resume_tick``)."""
  return jnp.asarray(step, jnp.int32) // stage_steps + start_stage


def student_t_cdf(x, df):
  """The Student-t CDF F(x) = ½ + ½·sign(x)·I_{x²/(ν + x²)}(½, ν/2), the
  central mass taken from the complementary 1 − I_{ν/(ν + x²)}(ν/2, ½)
  where x² > ν, which keeps float32 accurate at both ends."""
  x = jnp.asarray(x, jnp.float32)
  sq = jnp.square(x)
  central = jnp.where(
      sq < df, jax.scipy.special.betainc(0.5, 0.5 * df, sq / (df + sq)),
      1.0 - jax.scipy.special.betainc(0.5 * df, 0.5, df / (df + sq)))
  return 0.5 + 0.5 * jnp.sign(x) * central


def _inverse_cdf(cdf, u, lo, hi, iterations=48):
  """x in [lo, hi] with cdf(x) = u, by bisection (cdf increasing): 48
  halvings reach float32's resolution on any interval used here."""
  def halve(_, bounds):
    lo, hi = bounds
    mid = 0.5 * (lo + hi)
    below = cdf(mid) < u
    return jnp.where(below, mid, lo), jnp.where(below, hi, mid)
  lo = jnp.full_like(u, lo)
  hi = jnp.full_like(u, hi)
  lo, hi = jax.lax.fori_loop(0, iterations, halve, (lo, hi))
  return 0.5 * (lo + hi)


def truncated_log_time(key, batch_size, *, p_mean, p_std, t_lower, t_upper,
                       df=None):
  """t with ln t = P_mean + P_std·n, n ~ N(0, 1) (``df`` None) or
  Student-t(ν = ``df``), truncated so that t ∈ [t_lower, t_upper]: u ~
  U[F(a), F(b)], n = F⁻¹(u), a, b = (ln t_lower − P_mean)/P_std, (ln
  t_upper − P_mean)/P_std (TCM ``torch_utils/misc.py``:
  ``truncated_normal``, stage 1, and ``truncated_t``, stage 2). [B]."""
  a = (math.log(t_lower) - p_mean) / p_std
  b = (math.log(t_upper) - p_mean) / p_std
  if df is None:
    cdf, inverse = jax.scipy.special.ndtr, jax.scipy.special.ndtri
  else:
    cdf = functools.partial(student_t_cdf, df=df)
    inverse = lambda u: _inverse_cdf(cdf, u, a, b)
  lo, hi = cdf(jnp.float32(a)), cdf(jnp.float32(b))
  u = jax.random.uniform(key, (batch_size,), jnp.float32, lo, hi)
  n = jnp.clip(inverse(u), a, b)  # round-off of F(F⁻¹) at the ends
  return jnp.exp(p_mean + p_std * n)


def easy_consistency_training_loss(online, target, x0, key, *, stage,
                                   q=2.0, k=8.0, b=1.0, p_mean=-1.1,
                                   p_std=2.0, metric=l2_norm,
                                   weighting=schedules.ict_weight,
                                   ratio_limit=1.0, r_min=0.0, t_range=None):
  """ECT (Geng et al. 2024), continuous-time consistency training, per
  example, as locuslab/ect's CIFAR-10 ``ECMLoss``: ln t ~ N(P_mean, P_std²)
  (iCT's lognormal, not clipped), r = max(``ect_mapping``(t, stage), 0),
  one z for both points, and

    loss = λ(r, t)·d(f_θ(x0 + t·z, t), stopgrad f_θ⁻(x0 + r·z, r)),

  the target x0 itself where r = 0 (``ect_pair_loss``). λ = ``weighting``
  (σ_i, σ_{i+1}) at (r, t): ECT's CIFAR-10 1/(t − r) (``schedules.
  ict_weight``) or its ImageNet branch's snrpk 1/t² + 1/σ_d²
  (``schedules.snrpk_weight``); d = ‖·‖₂ by default (ECT's c = 0).
  θ⁻ = θ (ECT's stopgrad, μ = 0).

  TCM's stage 1 (NVlabs/TCM ``ECMLoss``) is this loss with ln t truncated
  to ``t_range`` = (t_lower, t_upper) (``truncated_log_time``; None: not
  truncated), the ratio capped at ``ratio_limit`` and r clamped at
  ``r_min`` = 1e-6 instead of 0, where f_θ⁻ is evaluated (0: x0 is the
  target, ECT).
  """
  t_key, noise_key = jax.random.split(key)
  if t_range is None:
    t = jnp.exp(p_mean + p_std * jax.random.normal(t_key, x0.shape[:1]))
  else:
    t = truncated_log_time(t_key, x0.shape[0], p_mean=p_mean, p_std=p_std,
                           t_lower=t_range[0], t_upper=t_range[1])
  r = jnp.maximum(ect_mapping(t, stage, q=q, k=k, b=b,
                              ratio_limit=ratio_limit), r_min)
  z = jax.random.normal(noise_key, x0.shape)
  return ect_pair_loss(online, target, x0, z, t, r, metric=metric,
                       weighting=weighting)


def truncated_consistency_loss(online, target, stage1, x0, key, *, stage,
                               transition_t=1.0, t_upper=80.0, p_mean=0.0,
                               p_std=0.2, df=0.01, boundary_prob=0.25,
                               w_boundary=0.1, q=2.0, k=8.0, b=1.0,
                               ratio_limit=0.999, r_min=1e-6, metric=l2_norm,
                               weighting=schedules.ict_weight):
  """TCM's stage 2 (Lee et al. 2025, "Truncated Consistency Models", eq. 8;
  NVlabs/TCM ``ECMLoss`` with a ``TCMPrecond`` network), per example.

  ln t = P_mean + P_std·n, n ~ Student-t(ν = ``df``), truncated to t ∈
  [t′, t_upper] (t′ = ``transition_t``); exactly ⌊B·``boundary_prob``⌋
  examples, chosen at random, are boundary examples with t = t′ (the
  official t′ + 1e-8, which float32 rounds to t′). r = max(r(t), r_min)
  by ECT's mapping (``ect_mapping``, the ratio capped). The target network
  is piecewise in its time σ:

    f⁻(x, σ) = stopgrad f_θ(x, σ)   for σ ≥ t′ (the student),
               f_stage1(x, σ)       for σ < t′ (the frozen stage-1 model),

  each example's ℓ = λ(r, t)·d(f_θ(x0 + t·z, t), f⁻(x0 + r·z, r)), and the
  loss is mean(ℓ over the truncated examples) + w_boundary·mean(ℓ over the
  boundary examples): each example's ℓ is scaled here so that the train
  step's mean over the batch is that sum. Returns (loss [B], {"consistency":
  the first mean, "boundary": the second, unweighted})."""
  batch = x0.shape[0]
  num_boundary = int(batch * boundary_prob)
  t_key, pick_key, noise_key = jax.random.split(key, 3)
  t = truncated_log_time(t_key, batch, p_mean=p_mean, p_std=p_std,
                         t_lower=transition_t, t_upper=t_upper, df=df)
  picked = jax.random.permutation(pick_key, batch)[:num_boundary]
  boundary = jnp.zeros((batch,), bool).at[picked].set(True)
  t = jnp.where(boundary, jnp.float32(transition_t + 1e-8), t)
  mapped = ect_mapping(t, stage, q=q, k=k, b=b, ratio_limit=ratio_limit)
  r = jnp.maximum(mapped, r_min)
  z = jax.random.normal(noise_key, x0.shape)

  def piecewise_target(x, sigma):
    student = target(x, sigma)
    return jnp.where(expand_to(sigma >= transition_t, x), student,
                     stage1(x, sigma))

  per_example = ect_pair_loss(online, piecewise_target, x0, z, t, r,
                              metric=metric, weighting=weighting)
  num_truncated = batch - num_boundary
  mean_over = lambda mask, n: jnp.sum(jnp.where(mask, per_example, 0.0)) / n
  parts = {"consistency": mean_over(~boundary, num_truncated),
           "boundary": (mean_over(boundary, num_boundary) if num_boundary
                        else jnp.float32(0.0))}
  scale = jnp.where(boundary, w_boundary * batch / max(num_boundary, 1),
                    batch / num_truncated)
  return per_example * scale, parts


def ect_pair_loss(online, target, x0, z, t, r, *, metric=l2_norm,
                  weighting=schedules.ict_weight):
  """λ(r, t)·d(f_θ(x0 + t·z, t), stopgrad f_θ⁻(x0 + r·z, r)) for t > r ≥ 0,
  with f_θ⁻ replaced by the clean x0 where r = 0 (locuslab/ect: ``D_yr =
  mask·D_yr + (~mask)·y``; the network is not evaluated at σ = 0).

  As r → t with d = ‖·‖₂ and λ = 1/(t − r), the loss tends to
  ‖d/dt f_θ(x0 + t·z, t)‖: the continuous-time consistency loss along z."""
  positive = r > 0
  r_in = jnp.where(positive, r, t)  # any finite time; x0 is taken there
  tgt = jnp.where(expand_to(positive, x0),
                  target(x0 + expand_to(r_in, x0) * z, r_in), x0)
  pred = online(x0 + expand_to(t, x0) * z, t)
  return weighting(r, t) * metric(pred, jax.lax.stop_gradient(tgt))


def denoising_score_matching_loss(denoiser, x0, key, *, p_mean=-1.2, p_std=1.2,
                                  sigma_data=schedules.SIGMA_DATA):
  """EDM eq. 8 with §5 choices: ln σ ~ N(P_mean, P_std²), λ(σ) = (σ² + σd²)/(σ·σd)².

  loss = λ(σ)·‖D(x + σz; σ) − x‖² per example.
  """
  sigma_key, noise_key = jax.random.split(key)
  sigma = jnp.exp(p_mean + p_std * jax.random.normal(sigma_key, x0.shape[:1]))
  weight = (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2
  noisy = x0 + expand_to(sigma, x0) * jax.random.normal(noise_key, x0.shape)
  return weight * l2(denoiser(noisy, sigma), x0)


def trigflow_time(key, batch_size, *, p_mean=-1.0, p_std=1.4,
                  sigma_data=schedules.SIGMA_DATA):
  """sCM's proposal for t (§4.2, Alg. 1): τ ~ N(P_mean, P_std²), t =
  arctan(e^τ/σ_d), i.e. EDM's lognormal σ = σ_d·tan t. [B] in (0, π/2)."""
  tau = p_mean + p_std * jax.random.normal(key, (batch_size,))
  return jnp.arctan(jnp.exp(tau) / sigma_data)


def trigflow_diffusion_loss(net, x0, key, *, p_mean=-1.2, p_std=1.2,
                            sigma_data=schedules.SIGMA_DATA):
  """The TrigFlow diffusion teacher (sCM §2.1), flow matching in v:

    loss = ‖σ_d·F_θ(x_t/σ_d, t) − v_t‖² / σ_d²,  v_t = cos t·z − sin t·x0,

  x_t = cos t·x0 + sin t·z, z ~ N(0, σ_d²I), t = ``trigflow_time``. With
  x̂0 = cos t·x_t − sin t·σ_d·F this is EDM's λ(σ)·‖x̂0 − x0‖² (eq. 8) at
  σ = σ_d·tan t exactly. ``net(x_in, t)`` → F."""
  t_key, z_key = jax.random.split(key)
  t = trigflow_time(t_key, x0.shape[0], p_mean=p_mean, p_std=p_std,
                    sigma_data=sigma_data)
  z = sigma_data * jax.random.normal(z_key, x0.shape)
  cos, sin = expand_to(jnp.cos(t), x0), expand_to(jnp.sin(t), x0)
  x_t, v_t = cos * x0 + sin * z, cos * z - sin * x0
  return l2(sigma_data * net(x_t / sigma_data, t), v_t) / sigma_data ** 2


def scm_tangent(target, x_t, t, dxdt, *, sigma_data=schedules.SIGMA_DATA,
                warmup=1.0):
  """sCM Alg. 1's tangent, with ``target(x_in, t)`` → F_θ⁻:

    g = −cos²t·(σ_d·F_θ⁻ − dx_t/dt) − r·cos t·sin t·(x_t + σ_d·dF_θ⁻/dt),

  dF_θ⁻/dt = ∇_x F_θ⁻·(dx_t/dt)/σ_d + ∂_t F_θ⁻, one forward-mode JVP of F_θ⁻
  in (x_t/σ_d, t) with tangents cos t·sin t·(dx_t/dt/σ_d, 1) (sCM's "JVP
  rearrangement"); r = ``warmup`` ∈ [0, 1] (tangent warm-up). g equals
  cos t·df⁻/dt along dx_t/dt, f⁻ = cos t·x − sin t·σ_d·F_θ⁻ (sCM eq. 5).
  Returns (F_θ⁻, g), both under stop_gradient."""
  cs = jnp.cos(t) * jnp.sin(t)
  f_minus, cs_dfdt = jax.jvp(target, (x_t / sigma_data, t),
                             (expand_to(cs, x_t) * dxdt / sigma_data, cs))
  cos2, cs = expand_to(jnp.cos(t) ** 2, x_t), expand_to(cs, x_t)
  g = (-cos2 * (sigma_data * f_minus - dxdt)
       - warmup * (cs * x_t + sigma_data * cs_dfdt))
  return jax.lax.stop_gradient(f_minus), jax.lax.stop_gradient(g)


def normalize_tangent(g, c=0.1, norm="l2"):
  """sCM §4.2, tangent normalisation, per example: g/(‖g‖ + c).

  ``norm`` = "l2": ‖g‖ over all D elements, as sCM writes it ("replacing
  df/dt with df/dt/(‖df/dt‖ + c)", §4.2; Alg. 1: g ← g/(‖g‖ + c); its
  eq. 8 writes ‖·‖₂² and divides by D explicitly where it means a per-
  element scale). "rms": ‖g‖/√D, the per-element RMS (NVlabs/FastGen's sCM
  default, ``g_norm_spatial_invariance``), which damps g by a factor that
  does not grow with D."""
  sq = _sum_non_batch(jnp.square(g))
  if norm == "rms":
    sq = sq / math.prod(g.shape[1:])
  return g / expand_to(jnp.sqrt(sq) + c, g)


TANGENT_NORMS = ("l2", "rms")


def guided_velocity(cond, uncond, w):
  """Classifier-free guidance of a PF-ODE velocity (sCM §5.2, sCD from a
  CFG teacher): v(x, t) = v_∅ + w·(v_c − v_∅), w scalar or per example
  [B]; w = 1 is the conditional velocity v_c."""

  def velocity(x, t):
    v_c, v_u = cond(x, t), uncond(x, t)
    return v_u + expand_to(w, v_c) * (v_c - v_u)

  return velocity


def continuous_consistency_loss(online, target, x0, key, *, velocity=None,
                                sigma_data=schedules.SIGMA_DATA,
                                p_mean=-1.0, p_std=1.4, warmup=1.0,
                                tangent_c=0.1, tangent_norm="l2",
                                prior_weighting=True):
  """sCM Alg. 1, per example: sCT (``velocity`` None: dx_t/dt = cos t·z −
  sin t·x0 from the pair) or sCD (dx_t/dt = ``velocity(x_t, t)``, the
  teacher's σ_d·F_pretrain(x_t/σ_d, t)).

  ``online(x_in, t)`` → (F_θ, w_φ(t)) (w_φ ≡ 0 without adaptive weighting),
  ``target(x_in, t)`` → F_θ⁻. With g = ``scm_tangent`` (normalised by
  ``normalize_tangent`` with ``tangent_norm`` when ``tangent_c`` > 0) and D
  the data dimension,

    loss = w(t)·e^{w_φ(t)}/D·‖F_θ − F_θ⁻ − g‖² − w_φ(t),

  w(t) = 1/(σ_d·tan t) (sCM's prior weighting) or 1. Its gradient in θ at
  θ = θ⁻ is −2·w·e^{w_φ}/D·g·∂F_θ/∂θ, the continuous-time consistency
  gradient (sCM eq. 8)."""
  t_key, z_key = jax.random.split(key)
  t = trigflow_time(t_key, x0.shape[0], p_mean=p_mean, p_std=p_std,
                    sigma_data=sigma_data)
  z = sigma_data * jax.random.normal(z_key, x0.shape)
  cos, sin = expand_to(jnp.cos(t), x0), expand_to(jnp.sin(t), x0)
  x_t = cos * x0 + sin * z
  dxdt = cos * z - sin * x0 if velocity is None else velocity(x_t, t)
  f_minus, g = scm_tangent(target, x_t, t, jax.lax.stop_gradient(dxdt),
                           sigma_data=sigma_data, warmup=warmup)
  if tangent_c > 0:
    g = normalize_tangent(g, tangent_c, tangent_norm)
  f_theta, log_w = online(x_t / sigma_data, t)
  prior = 1.0 / (sigma_data * jnp.tan(t)) if prior_weighting else 1.0
  dim = math.prod(x0.shape[1:])
  return (prior * jnp.exp(log_w) / dim * l2(f_theta, f_minus + g)
          - log_w)


def logit_normal_time(key, batch_size, *, p_mean=-0.4, p_std=1.0):
  """t = sigmoid(n), n ~ N(P_mean, P_std²): the logit-normal time of flow
  matching (Esser et al. 2024, SD3) and MeanFlow (§4.3). [B] in (0, 1)."""
  return jax.nn.sigmoid(p_mean + p_std * jax.random.normal(key,
                                                           (batch_size,)))


def flow_matching_loss(velocity, x0, key, *, p_mean=-0.4, p_std=1.0):
  """Conditional flow matching (Lipman et al. 2023; MeanFlow eq. 2), per
  example: ‖v_θ(z_t, t) − (ε − x0)‖², z_t = (1 − t)·x0 + t·ε, ε ~ N(0, I),
  t = ``logit_normal_time``. ``velocity(z, t)`` → v_θ."""
  t_key, e_key = jax.random.split(key)
  t = logit_normal_time(t_key, x0.shape[0], p_mean=p_mean, p_std=p_std)
  e = jax.random.normal(e_key, x0.shape)
  z_t = expand_to(1.0 - t, x0) * x0 + expand_to(t, x0) * e
  return l2(velocity(z_t, t), e - x0)


def meanflow_times(key, batch_size, *, p_mean=-0.4, p_std=1.0,
                   r_neq_t=0.25):
  """MeanFlow's (t, r) sampler (§4.3; Gsunshine/meanflow ``sample_tr``):
  two logit-normal draws, t the larger and r the smaller; examples
  i < ⌊B·(1 − ``r_neq_t``)⌋ get r = t (flow matching at t; the official
  ``data_proportion`` = 1 − r_neq_t), the rest keep r ≤ t. Returns (t, r),
  each [B]."""
  t_key, r_key = jax.random.split(key)
  a = logit_normal_time(t_key, batch_size, p_mean=p_mean, p_std=p_std)
  b = logit_normal_time(r_key, batch_size, p_mean=p_mean, p_std=p_std)
  t, r = jnp.maximum(a, b), jnp.minimum(a, b)
  equal = jnp.arange(batch_size) < int(batch_size * (1.0 - r_neq_t))
  return t, jnp.where(equal, t, r)


def adaptive_weight(sq_error, *, p=1.0, c=0.01):
  """MeanFlow's adaptive loss weight (§4.3, after iCT's pseudo-Huber): the
  squared error ‖Δ‖² [B] times sg(w), w = 1/(‖Δ‖² + c)^p; p = 0 is the
  plain ℓ2 loss, p = 0.5 is close to the pseudo-Huber."""
  return sq_error / jax.lax.stop_gradient((sq_error + c) ** p)


def first_dropped(key, batch_size, p):
  """MeanFlow's class dropout (Gsunshine/meanflow ``cond_drop``): n ~
  Binomial(B, p) examples are dropped, the first n of the batch. [B] bool."""
  n = jnp.sum(jax.random.bernoulli(key, p, (batch_size,)))
  return jnp.arange(batch_size) < n


def meanflow_guided_velocity(v_cond, v_null, *, omega, kappa, interval,
                             dropped):
  """MeanFlow's guided target velocity (eq. 15–16, 19 with κ; official
  ``guidance_fn``) as ``meanflow_loss``'s ``velocity(z_t, t, v)``:

    v_g = ω·v + (1 − ω − κ)·u_θ(z_t, t, t | ∅) + κ·u_θ(z_t, t, t | c)

  for t in ``interval`` = (t_start, t_end), v elsewhere (ω = 1, κ = 0), and
  v for the ``dropped`` examples [B] (trained as the null class).
  ``v_cond``, ``v_null``: (z, t) → θ's instantaneous velocity with the
  batch's labels and with the null label."""

  def velocity(z_t, t, v):
    inside = (t >= interval[0]) & (t <= interval[1])
    w = expand_to(jnp.where(inside, omega, 1.0), v)
    k = expand_to(jnp.where(inside, kappa, 0.0), v)
    guided = w * v + (1.0 - w - k) * v_null(z_t, t) + k * v_cond(z_t, t)
    return jnp.where(expand_to(dropped, v) > 0, v, guided)

  return velocity


def meanflow_loss(u, x0, key, *, times, velocity=None, p=1.0, c=0.01):
  """MeanFlow's objective (Alg. 1, eq. 9–10), per example:

    u_tgt = v − (t − r)·(v·∂_z u_θ + ∂_t u_θ),
    loss = ‖u_θ(z_t, r, t) − sg(u_tgt)‖² · sg(1/(‖Δ‖² + c)^p),

  z_t = (1 − t)·x0 + t·ε, ε ~ N(0, I), v = ε − x0 (``velocity`` None) or
  ``velocity(z_t, t, v)`` (classifier-free guidance folded into the target,
  MeanFlow eq. 15–16); du/dt = v·∂_z u + ∂_t u (eq. 8), the total derivative
  along the flow, from one ``jax.jvp`` of (z, r, t) ↦ u_θ(z, r, t) with
  tangents (v, 0, 1). ``u(z, r, t)`` is θ's average velocity; ``times(key,
  B)`` → (t, r) (``meanflow_times``)."""
  t_key, e_key = jax.random.split(key)
  t, r = times(t_key, x0.shape[0])
  e = jax.random.normal(e_key, x0.shape)
  z_t = expand_to(1.0 - t, x0) * x0 + expand_to(t, x0) * e
  v = e - x0
  if velocity is not None:
    v = velocity(z_t, t, v)
  v = jax.lax.stop_gradient(v)
  u_theta, du_dt = jax.jvp(u, (z_t, r, t),
                           (v, jnp.zeros_like(r), jnp.ones_like(t)))
  u_tgt = jax.lax.stop_gradient(v - expand_to(t - r, x0) * du_dt)
  return adaptive_weight(l2(u_theta, u_tgt), p=p, c=c)


def improved_meanflow_loss(u_and_v, x0, key, *, times, p=1.0, c=0.01):
  """Improved MeanFlow's objective (iMF, Geng, Lu et al. 2025, §3; Lyy-iiis/
  imeanflow ``imf.py``), per example, unguided: a regression on v through
  the compound function of the network's own u,

    V = u_θ(z_t, r, t) + (t − r)·sg(du_θ/dt),  du/dt along the tangent
        (v_θ(z_t, t, t), 0, 1): the model's own predicted v, not ε − x0;
    loss = w(‖V − v‖²) + w(‖v_θ(z_t, r, t) − v‖²),  v = ε − x0,

  w the adaptive weight (``adaptive_weight``), the second term the
  auxiliary v head's. ``u_and_v(z, r, t)`` → (u_θ, v_θ) (a network with a
  v head, read by ``Linear.average_velocity(net, return_v=True)``);
  ``times(key, B)`` → (t, r)."""
  t_key, e_key = jax.random.split(key)
  t, r = times(t_key, x0.shape[0])
  e = jax.random.normal(e_key, x0.shape)
  z_t = expand_to(1.0 - t, x0) * x0 + expand_to(t, x0) * e
  v = e - x0
  v_own = jax.lax.stop_gradient(u_and_v(z_t, t, t)[1])
  u, du_dt, v_theta = jax.jvp(
      lambda z, r, t: u_and_v(z, r, t), (z_t, r, t),
      (v_own, jnp.zeros_like(r), jnp.ones_like(t)), has_aux=True)
  big_v = u + expand_to(t - r, x0) * jax.lax.stop_gradient(du_dt)
  return (adaptive_weight(l2(big_v, v), p=p, c=c)
          + adaptive_weight(l2(v_theta, v), p=p, c=c))


def imf_guidance_scale(key, batch_size, *, s_max=7.0, beta=1.0):
  """iMF's guidance scale ω per example (Lyy-iiis/imeanflow ``imf.py``,
  ``sample_cfg_scale``), density ∝ ω^−β on [1, 1 + s_max]: with u ~
  U[0, 1), ω = (1 + s_max)^u for β = 1 (log-uniform), else ω = (1 + u·((1
  + s_max)^{1−β} − 1))^{1/(1−β)}. [B]."""
  u = jax.random.uniform(key, (batch_size,), jnp.float32)
  top = 1.0 + s_max
  if beta == 1.0:
    return top ** u
  return (1.0 + u * (top ** (1.0 - beta) - 1.0)) ** (1.0 / (1.0 - beta))


def imf_guidance_interval(key, batch_size, flow_matching):
  """iMF's guidance interval per example (``sample_cfg_interval``): t_min ~
  U[0, ½), t_max ~ U[½, 1), and [0, 1] for the ``flow_matching`` examples
  (r = t) [B]. Returns (t_min, t_max)."""
  lo_key, hi_key = jax.random.split(key)
  t_min = jax.random.uniform(lo_key, (batch_size,), jnp.float32, 0.0, 0.5)
  t_max = jax.random.uniform(hi_key, (batch_size,), jnp.float32, 0.5, 1.0)
  return (jnp.where(flow_matching, 0.0, t_min),
          jnp.where(flow_matching, 1.0, t_max))


def guided_improved_meanflow_loss(u_and_v, x0, key, *, times,
                                  label_dropout=0.1, s_max=7.0, beta=1.0,
                                  p=1.0, c=0.01):
  """iMF's objective with its guidance as network inputs (iMF §4; Lyy-iiis/
  imeanflow ``imf.py`` ``forward``, ``guidance_fn``, ``cond_drop``), per
  example, for a class-conditional u_θ that also reads (ω, t_min, t_max):

    ω ~ ``imf_guidance_scale``, [t_min, t_max] ~ ``imf_guidance_interval``,
    w = ω for t ∈ [t_min, t_max], 1 elsewhere;
    v_c = v_θ(z_t, t, t | c, w, [0, 1]),  v_u = v_θ(z_t, t, t | ∅, 1, [0, 1]);
    v_g = v + (1 − 1/w)·(v_c − v_u),  v = ε − x0  (v_g = v for the first
      n ~ Binomial(B, ``label_dropout``) examples, which see the null class);
    (u, du/dt, v_θ) = u_θ(z_t, r, t | c or ∅, ω, [t_min, t_max]) and its JVP
      along (v_c, 0, 1);
    loss = w_a(‖u + (t − r)·sg(du/dt) − sg(v_g)‖²) + w_a(‖v_θ − sg(v_g)‖²),

  w_a the adaptive weight (``adaptive_weight``). At the fixed point v_θ(· |
  c, ω) = v(· | ∅) + ω·(v(· | c) − v(· | ∅)), classifier-free guidance at
  scale ω, and u_θ its average. ``u_and_v(z, r, t, guidance, null)`` → (u_θ,
  v_θ), guidance [B, 3] = (ω, t_min, t_max), null [B] bool: the examples
  that see the null class; ``times(key, B)`` → (t, r)."""
  t_key, e_key, i_key, w_key, d_key = jax.random.split(key, 5)
  batch = x0.shape[0]
  t, r = times(t_key, batch)
  e = jax.random.normal(e_key, x0.shape)
  z_t = expand_to(1.0 - t, x0) * x0 + expand_to(t, x0) * e
  v = e - x0
  t_min, t_max = imf_guidance_interval(i_key, batch, r == t)
  omega = imf_guidance_scale(w_key, batch, s_max=s_max, beta=beta)
  dropped = first_dropped(d_key, batch, label_dropout)
  whole = (jnp.zeros_like(t), jnp.ones_like(t))  # the v head's [0, 1]

  def v_head(scale, null):
    guidance = jnp.stack([scale, *whole], axis=-1)
    return u_and_v(z_t, t, t, guidance, null)[1]

  w = jnp.where((t >= t_min) & (t <= t_max), omega, 1.0)
  v_uncond = v_head(jnp.ones_like(t), jnp.ones_like(dropped))
  v_cond = v_head(w, jnp.zeros_like(dropped))
  v_g = v + expand_to(1.0 - 1.0 / w, x0) * (v_cond - v_uncond)
  v_g = jax.lax.stop_gradient(jnp.where(expand_to(dropped, x0), v, v_g))
  guidance = jnp.stack([omega, t_min, t_max], axis=-1)
  u, du_dt, v_theta = jax.jvp(
      lambda z, r, t: u_and_v(z, r, t, guidance, dropped), (z_t, r, t),
      (jax.lax.stop_gradient(v_cond), jnp.zeros_like(r), jnp.ones_like(t)),
      has_aux=True)
  compound = u + expand_to(t - r, x0) * jax.lax.stop_gradient(du_dt)  # V
  return (adaptive_weight(l2(compound, v_g), p=p, c=c)
          + adaptive_weight(l2(v_theta, v_g), p=p, c=c))


def shortcut_times(key, batch_size, *, denoise_steps=128,
                   bootstrap_every=8):
  """Shortcut models' times (Frans et al. 2025, §3; kvfrans/shortcut-models
  ``targets_shortcut.py``), on the linear process, t = 1 at the noise.

  The first B_b = B // ``bootstrap_every`` examples are self-consistency
  examples: their step 2d = 2^−k on the dyadic grid k = log₂M − 1, …, 0
  (M = ``denoise_steps``), B_b // log₂M examples each and the rest at
  k = 0, and t a multiple of 2d in (0, 1] (uniform), so r = t − 2d ≥ 0.
  The others are flow-matching examples (d = 0, r = t), t = 1 − j/M with
  j ~ U{0, …, M − 1}. Returns (t, r, 2d), each [B] (2d = 0 where r = t)."""
  boot = batch_size // bootstrap_every
  levels = int(round(math.log2(denoise_steps)))
  k = jnp.repeat(levels - 1 - jnp.arange(levels), boot // levels)
  k = jnp.concatenate([k, jnp.zeros(boot - k.shape[0], k.dtype)])
  step = 2.0 ** -k.astype(jnp.float32)  # 2d
  b_key, f_key = jax.random.split(key)
  j = jax.random.randint(b_key, (boot,), 0, 2 ** k)
  t_boot = 1.0 - j * step
  j = jax.random.randint(f_key, (batch_size - boot,), 0, denoise_steps)
  t_flow = 1.0 - j / denoise_steps
  t = jnp.concatenate([t_boot, t_flow])
  step = jnp.concatenate([step, jnp.zeros_like(t_flow)])
  return t, t - step, step


def shortcut_loss(online, target, x0, key, *, denoise_steps=128,
                  bootstrap_every=8, clip=4.0):
  """Shortcut models' objective (Frans et al. 2025, eq. 5), per example,
  in the flow-map form u(z, r, t) (a jump z_r = z_t − (t − r)·u; the
  paper's s(x_t, t, d) is −u(z, t − d, t) in its time, which runs from
  noise at 0 to data at 1):

    self-consistency: u_θ(z_t, t − 2d, t) → sg(½·u_1 + ½·u_2),
      u_1 = u⁻(z_t, t − d, t), u_2 = u⁻(z_t − d·u_1, t − 2d, t − d);
    flow matching (d = 0): u_θ(z_t, t, t) → ε − x0;

  ``target`` u⁻ gives the self-consistency targets (the official code's
  EMA parameters, ``bootstrap_ema``), clipped to ±``clip`` as z_t − d·u_1 is
  (the official clip 4); (t, r, 2d) from ``shortcut_times``. The squared
  error is averaged over an example's elements (the official MSE). The
  unconditional case of ``conditional_shortcut_loss``."""
  unlabelled = lambda u: lambda z, r, t, labels: u(z, r, t)
  return conditional_shortcut_loss(
      unlabelled(online), unlabelled(target), x0, None, key,
      denoise_steps=denoise_steps, bootstrap_every=bootstrap_every,
      clip=clip)


def conditional_shortcut_loss(online, target, x0, labels, key, *,
                              num_classes=0, denoise_steps=128,
                              bootstrap_every=8, clip=4.0, label_dropout=0.0,
                              cfg_scale=None):
  """``shortcut_loss`` for a class-conditional u(z, r, t | y), as
  kvfrans/shortcut-models ``targets_shortcut.py`` trains it:

    class dropout: a flow-matching example sees the null class y = K
      (``num_classes``) with probability ``label_dropout`` (the official
      ``class_dropout_prob``), each independently; the self-consistency
      examples keep their labels, in θ's input and in θ⁻'s;
    ``cfg_scale`` s (``bootstrap_cfg``; None: off): the first B_b // log₂M
      self-consistency examples, those of the smallest step 2d = 2/M, take
      both half jumps under classifier-free guidance,
        u_i = u⁻(·, · | ∅) + s·(u⁻(·, · | y) − u⁻(·, · | ∅)),  i = 1, 2,
      z_t − d·u_1 (clipped) between them; the larger steps compose
      unguided conditional half jumps, and the flow-matching targets stay
      ε − x0 (unguided).

  ``online(z, r, t, labels)`` and ``target(...)`` read labels [b] (K the
  null class) of the b examples they are called on; ``labels`` [B] the
  batch's (None for an unconditional u, which ignores them)."""
  t_key, e_key = jax.random.split(key)
  batch = x0.shape[0]
  t, r, step = shortcut_times(t_key, batch, denoise_steps=denoise_steps,
                              bootstrap_every=bootstrap_every)
  boot = batch // bootstrap_every
  e = jax.random.normal(e_key, x0.shape)
  z_t = expand_to(1.0 - t, x0) * x0 + expand_to(t, x0) * e
  zb, tb, half = z_t[:boot], t[:boot], step[:boot] / 2
  yb = None if labels is None else labels[:boot]
  guided = boot // int(round(math.log2(denoise_steps)))  # the 2d = 2/M ones
  if cfg_scale is None:
    jump = lambda z, r, t: target(z, r, t, yb)
  else:
    null = jnp.full((guided,), num_classes, jnp.int32)

    def jump(z, r, t):
      u_c = target(z, r, t, yb)
      u_u = target(z[:guided], r[:guided], t[:guided], null)
      u_g = u_u + cfg_scale * (u_c[:guided] - u_u)
      return jnp.concatenate([u_g, u_c[guided:]])

  u_1 = jump(zb, tb - half, tb)
  z_mid = jnp.clip(zb - expand_to(half, zb) * u_1, -clip, clip)
  u_2 = jump(z_mid, tb - 2 * half, tb - half)
  u_boot = jnp.clip((u_1 + u_2) / 2, -clip, clip)
  u_tgt = jax.lax.stop_gradient(
      jnp.concatenate([u_boot, (e - x0)[boot:]]))
  if labels is not None:
    dropped = jax.random.bernoulli(jax.random.fold_in(key, 1), label_dropout,
                                   (batch,)) & (jnp.arange(batch) >= boot)
    labels = jnp.where(dropped, num_classes, labels)
  return l2(online(z_t, r, t, labels), u_tgt, reduction="mean")


def _all_starts(key, batch_size, ts, skip, num_scales):
  """LCM Alg. 1: n ~ U⟦0, N − 1 − k⟧ (0-based), any of the N − k pairs
  (t_n, t_{n+k}); the indices (n, n + k)."""
  n = sample_index(key, batch_size, ts, num_scales=num_scales - skip + 1)
  return n, n + skip


def _ddim_starts(key, batch_size, ts, skip, num_scales):
  """The official LCM script's draw: the start index s uniform on the
  N/k-point DDIM grid {k − 1, 2k − 1, …, N − 1}, the end max(s − k, 0) (so
  the lowest pair is (t_0, t_{k−1})); the indices (end, s)."""
  del ts
  j = jax.random.randint(key, (batch_size,), 0, num_scales // skip)
  start = (j + 1) * skip - 1
  return jnp.maximum(start - skip, 0), start


# Which pairs (t_n, t_{n+k}) LCD and LCF draw (``lcm.starts``).
SKIP_STARTS = {"all": _all_starts, "ddim": _ddim_starts}


def _skip_pair(key, x0, ts, skip, num_scales, starts="all"):
  """The times (t_n, t_{n+k}) drawn as ``SKIP_STARTS[starts]``, and a noise
  z ~ N(0, I)."""
  index_key, noise_key = jax.random.split(key)
  num_scales = len(ts) if num_scales is None else num_scales
  n, n_skip = SKIP_STARTS[starts](index_key, x0.shape[0], ts, skip, num_scales)
  z = jax.random.normal(noise_key, x0.shape)
  return ts[n], ts[n_skip], z


def latent_consistency_distillation_loss(
    online, target, teacher, x0, key, *, ts, skip=1, process=None,
    solver="ddim", metric=l2, weighting=schedules.uniform_weight,
    num_scales=None, starts="all"):
  """LCM Alg. 1, the per-example LCD loss with skipping-step k = ``skip``.

  z_{t_{n+k}} = α(t_{n+k})·x0 + σ(t_{n+k})·z; ẑ_{t_n} = one ``solver`` step
  (Ψ, DDIM by default) of ``teacher`` from t_{n+k} to t_n; loss =
  λ(t_n, t_{n+k})·d(f_θ(z_{t_{n+k}}, t_{n+k}), f_θ⁻(ẑ_{t_n}, t_n)).

  ``online``, ``target`` and ``teacher`` already carry the condition c and
  the guidance scale w: for the CFG-augmented ODE (LCM eq. 10) the teacher
  is ``solvers.guided_denoiser``. ``ts`` is the ascending N-point grid of
  ``process`` (EDM's VE by default); with k = 1, VE and ``solver=heun`` this
  is ``consistency_distillation_loss`` draw for draw. ``starts`` names the
  pairs drawn (``SKIP_STARTS``): "all" N − k (Alg. 1), or "ddim" the N/k of
  the official script's DDIM grid.
  """
  process = processes.VE() if process is None else process
  step = get_solver(solver)
  if step is solvers.ddim_step:
    step = functools.partial(step, process=process)
  t_cur, t_next, z = _skip_pair(key, x0, ts, skip, num_scales, starts)
  x_next = process.noise(x0, z, t_next)
  x_cur = jax.lax.stop_gradient(step(teacher, x_next, t_next, t_cur))
  return _consistency_pair_loss(online, target, x_next, t_next, x_cur, t_cur,
                                metric, weighting)


def latent_consistency_finetuning_loss(
    online, target, x0, key, *, ts, skip=1, process=None, metric=l2,
    weighting=schedules.uniform_weight, num_scales=None, starts="all"):
  """LCM Alg. 4 (LCF), no teacher: one z for both points,
  loss = λ·d(f_θ(α(t_{n+k})x0 + σ(t_{n+k})z, t_{n+k}),
  f_θ⁻(α(t_n)x0 + σ(t_n)z, t_n)). With k = 1 and VE this is
  ``consistency_training_loss`` (uniform n) draw for draw. ``starts`` as in
  ``latent_consistency_distillation_loss``."""
  process = processes.VE() if process is None else process
  t_cur, t_next, z = _skip_pair(key, x0, ts, skip, num_scales, starts)
  return _consistency_pair_loss(
      online, target, process.noise(x0, z, t_next), t_next,
      process.noise(x0, z, t_cur), t_cur, metric, weighting)


def noise_prediction_loss(denoiser, x0, key, *, process):
  """DDPM's L_simple for the VP teacher of LCM: t ~ U⟦0, T − 1⟧,
  ‖ε̂(z_t, t) − ε‖² with z_t = α(t)·x0 + σ(t)·ε and ε̂ = (z_t − α(t)·D)/σ(t)."""
  t_key, noise_key = jax.random.split(key)
  t = jax.random.randint(t_key, x0.shape[:1], 0,
                         int(process.t_max) + 1).astype(jnp.float32)
  eps = jax.random.normal(noise_key, x0.shape)
  z_t = process.noise(x0, eps, t)
  eps_hat = ((z_t - expand_to(process.alpha(t), x0) * denoiser(z_t, t))
             / expand_to(process.sigma(t), x0))
  return l2(eps_hat, eps)


def gaussian_kl(mean, logvar):
  """KL(N(μ, diag e^logvar) ‖ N(0, I)) = ½·Σ(μ² + e^logvar − 1 − logvar) over
  the non-batch axes → [B] (the VAE's regulariser; LDM's KL autoencoder)."""
  return 0.5 * _sum_non_batch(jnp.square(mean) + jnp.exp(logvar) - 1.0
                              - logvar)


def autoencoder_loss(net, x0, *, metric=l1, kl_weight=1e-6):
  """d(x0, x̂) + β·KL(q(z | x0) ‖ N(0, I)) per example, with ``net(x0)`` →
  (x̂, μ, logvar) decoding a reparametrised z ~ q(z | x0) (LDM §3, without
  its perceptual and GAN terms). Returns (loss, reconstruction, KL), each [B]."""
  x_hat, mean, logvar = net(x0)
  rec = metric(x_hat, x0)
  kl = gaussian_kl(mean, logvar)
  return rec + kl_weight * kl, rec, kl


METRICS = {"l2": l2, "l1": l1, "pseudo_huber": pseudo_huber,
           "l2_norm": l2_norm}

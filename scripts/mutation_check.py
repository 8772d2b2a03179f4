"""Do the math tests fail when a loss is wrong? A mutation check.

    python scripts/mutation_check.py            # every mutation, 2 at a time
    python scripts/mutation_check.py --only=sCM --jobs=1

Each mutation changes one term of one formula in the package (drops it,
doubles it, swaps a norm or a weighting), in a copy of the repository, and
runs the math tests on that copy. A mutation "survives" when every test
still passes: then no test checks that term, and the check exits with 1.
It prints one line per mutation and a summary; the unmutated copy must
pass the same tests first, or nothing is reported.

The mutations cover the losses of CM (CD, CT), iCT, EDM, LCM, ECT, TCM, sCM,
MeanFlow (with its guidance and the linear process) and shortcut models (`cm_jax/losses.py`,
`cm_jax/processes.py`), their weightings, grids and schedules
(`cm_jax/schedules.py`), the preconditioning (`cm_jax/parametrization.py`)
and classifier-free guidance (`cm_jax/solvers.py`). Every `old` text must
occur exactly once in its file, so the list cannot silently go stale.
"""

import argparse
import concurrent.futures
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The math tests: closed forms and formulas written out (no training runs
# and no subprocesses; `-k` leaves out the few command-line tests in them).
# A mutation runs those of its group; the unmutated copy runs them all.
GROUP_TESTS = {
    "CM": ("tests/test_losses.py", "tests/test_schedules.py",
           "tests/test_parametrization.py"),
    "EDM": ("tests/test_losses.py", "tests/test_parametrization.py"),
    "LCM": ("tests/test_lcm.py", "tests/test_losses.py",
            "tests/test_latent.py"),
    "ECT": ("tests/test_ect.py", "tests/test_schedules.py"),
    "sCM": ("tests/test_scm.py", "tests/test_ve_teacher.py",
            "tests/test_losses.py"),
    "TCM": ("tests/test_tcm.py", "tests/test_ect.py"),
    "MF": ("tests/test_meanflow.py", "tests/test_dit.py"),
    "SC": ("tests/test_meanflow.py", "tests/test_shortcut.py"),
}
MATH_TESTS = tuple(sorted(set().union(*GROUP_TESTS.values())))
DESELECT = ("not class_conditional_toy and not starts_as_the_ve_teacher "
            "and not autoencoder_training and not latent_cache and not "
            "plugged_in and not latents_carry and not train_on_latents and "
            "not configs_build and not lcd_cifar10")


@dataclasses.dataclass(frozen=True)
class Mutation:
  group: str  # the method it belongs to (--only)
  name: str
  path: str  # relative to the repository
  old: str
  new: str


L, S = "cm_jax/losses.py", "cm_jax/schedules.py"
P, SOLVERS = "cm_jax/parametrization.py", "cm_jax/solvers.py"
M = Mutation
MUTATIONS = (
    # --- CM / iCT (2023) ---------------------------------------------------
    M("CM", "pair loss: λ dropped", L,
      "  return weighting(t_cur, t_next) * metric(pred, tgt)",
      "  return metric(pred, tgt)"),
    M("CM", "pair loss: λ doubled", L,
      "  return weighting(t_cur, t_next) * metric(pred, tgt)",
      "  return 2 * weighting(t_cur, t_next) * metric(pred, tgt)"),
    M("CM", "pseudo-Huber: − c dropped", L,
      "  return jnp.sqrt(l2(x, y, reduction) + c ** 2) - c",
      "  return jnp.sqrt(l2(x, y, reduction) + c ** 2)"),
    M("CM", "pseudo-Huber: c² doubled", L,
      "  return jnp.sqrt(l2(x, y, reduction) + c ** 2) - c",
      "  return jnp.sqrt(l2(x, y, reduction) + 2 * c ** 2) - c"),
    M("CM", "ℓ2: squares dropped (ℓ1)", L,
      "  return REDUCTIONS[reduction](jnp.square(x - y))",
      "  return REDUCTIONS[reduction](jnp.abs(x - y))"),
    M("CM", "iCT λ = 1/Δσ doubled", S,
      "  return 1.0 / (sigma_next - sigma_i)",
      "  return 2.0 / (sigma_next - sigma_i)"),
    M("CM", "iCT λ: σ_i dropped (1/σ_{i+1})", S,
      "  return 1.0 / (sigma_next - sigma_i)", "  return 1.0 / sigma_next"),
    M("CM", "Karras λ: 1/σ_d² term dropped", S,
      "  return (sigma_i ** 2 + sigma_data ** 2) / (sigma_i * sigma_data) ** 2",
      "  return sigma_i ** 2 / (sigma_i * sigma_data) ** 2"),
    M("CM", "Karras λ: 1/σ² term dropped", S,
      "  return (sigma_i ** 2 + sigma_data ** 2) / (sigma_i * sigma_data) ** 2",
      "  return sigma_data ** 2 / (sigma_i * sigma_data) ** 2"),
    M("CM", "iCT p(i): P_std doubled", S,
      "  cdf = erf((jnp.log(sigmas) - p_mean) / (math.sqrt(2.0) * p_std))",
      "  cdf = erf((jnp.log(sigmas) - p_mean) / (math.sqrt(2.0) * 2 * p_std))"),
    M("CM", "CT target EMA: s0 dropped", S,
      "  return jnp.exp(s0 * math.log(mu0) / jnp.asarray(num_scales, "
      "jnp.float32))",
      "  return jnp.exp(math.log(mu0) / jnp.asarray(num_scales, "
      "jnp.float32))"),
    M("CM", "CT: the target point's noise doubled", L,
      "  x_cur = x0 + expand_to(t_cur, x0) * z",
      "  x_cur = x0 + expand_to(2 * t_cur, x0) * z"),
    M("CM", "boundary c_skip: ε shift dropped", P,
      "  c_skip = sigma_data ** 2 / (shifted ** 2 + sigma_data ** 2)",
      "  c_skip = sigma_data ** 2 / (t ** 2 + sigma_data ** 2)"),
    M("CM", "boundary c_out: σ_d dropped", P,
      "  c_out = sigma_data * shifted / jnp.sqrt(sigma_data ** 2 + t ** 2)",
      "  c_out = shifted / jnp.sqrt(sigma_data ** 2 + t ** 2)"),
    M("EDM", "c_in: σ_d² dropped", P,
      "  c_in = 1.0 / jnp.sqrt(sigma ** 2 + sigma_data ** 2)",
      "  c_in = 1.0 / jnp.sqrt(sigma ** 2)"),
    M("EDM", "c_noise: ¼ doubled", P,
      "  c_noise = 0.25 * jnp.log(sigma)", "  c_noise = 0.5 * jnp.log(sigma)"),
    M("EDM", "DSM λ: 1/σ_d² term dropped", L,
      "  weight = (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2",
      "  weight = sigma ** 2 / (sigma * sigma_data) ** 2"),
    M("EDM", "DSM λ doubled", L,
      "  weight = (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2",
      "  weight = 2 * (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) "
      "** 2"),
    # --- LCM -----------------------------------------------------------------
    M("LCM", "CFG: (1 + w) → w", SOLVERS,
      "    return (1.0 + w_) * cond(x, t) - w_ * uncond(x, t)",
      "    return w_ * cond(x, t) - w_ * uncond(x, t)"),
    M("LCM", "ε-prediction: σ(t) dropped", L,
      "  eps_hat = ((z_t - expand_to(process.alpha(t), x0) * denoiser(z_t, t))"
      "\n             / expand_to(process.sigma(t), x0))",
      "  eps_hat = (z_t - expand_to(process.alpha(t), x0) * denoiser(z_t, t))"),
    M("LCM", "KL: − 1 dropped", L,
      "  return 0.5 * _sum_non_batch(jnp.square(mean) + jnp.exp(logvar) - 1.0",
      "  return 0.5 * _sum_non_batch(jnp.square(mean) + jnp.exp(logvar)"),
    M("LCM", "autoencoder: β dropped", L,
      "  return rec + kl_weight * kl, rec, kl", "  return rec + kl, rec, kl"),
    # --- ECT -----------------------------------------------------------------
    M("ECT", "pair loss: λ dropped", L,
      "  return weighting(r, t) * metric(pred, jax.lax.stop_gradient(tgt))",
      "  return metric(pred, jax.lax.stop_gradient(tgt))"),
    M("ECT", "pair loss: λ doubled", L,
      "  return weighting(r, t) * metric(pred, jax.lax.stop_gradient(tgt))",
      "  return 2 * weighting(r, t) * metric(pred, jax.lax.stop_gradient(tgt))"),
    M("ECT", "r not clamped at 0", L,
      "  r = jnp.maximum(ect_mapping(t, stage, q=q, k=k, b=b,\n"
      "                              ratio_limit=ratio_limit), r_min)",
      "  r = ect_mapping(t, stage, q=q, k=k, b=b, ratio_limit=ratio_limit)"),
    M("ECT", "r = 0: network target instead of x0", L,
      "                  target(x0 + expand_to(r_in, x0) * z, r_in), x0)",
      "                  target(x0 + expand_to(r_in, x0) * z, r_in),\n"
      "                  target(x0, jnp.full_like(t, 0.002)))"),
    M("ECT", "t clipped to [ε, T]", L,
      "    t = jnp.exp(p_mean + p_std * jax.random.normal(t_key, x0.shape[:1]))",
      "    t = jnp.clip(jnp.exp(p_mean + p_std * jax.random.normal(\n"
      "        t_key, x0.shape[:1])), 0.002, 80.0)"),
    M("ECT", "mapping: (1 + k·sigmoid) dropped", L,
      "  return t * (1.0 - decay * (1.0 + k * jax.nn.sigmoid(-b * t)))",
      "  return t * (1.0 - decay)"),
    M("ECT", "snrpk: 1/σ_d² dropped", S,
      "  return 1.0 / sigma_next ** 2 + 1.0 / sigma_data ** 2",
      "  return 1.0 / sigma_next ** 2"),
    M("ECT", "snrpk: at σ_i instead of t", S,
      "  return 1.0 / sigma_next ** 2 + 1.0 / sigma_data ** 2",
      "  return 1.0 / sigma_i ** 2 + 1.0 / sigma_data ** 2"),
    M("ECT", "training with the σ_min shift", "cm_jax/methods/ect.py",
      "        net, d.sigma_data, d.sigma_min if self.train_shift else 0.0)",
      "        net, d.sigma_data, d.sigma_min)"),
    # --- TCM -----------------------------------------------------------------
    M("TCM", "ratio cap dropped", L,
      "      1.0 - jnp.asarray(ratio_limit, jnp.float32))", "      0.0)"),
    M("TCM", "start stage dropped", L,
      "  return jnp.asarray(step, jnp.int32) // stage_steps + start_stage",
      "  return jnp.asarray(step, jnp.int32) // stage_steps"),
    M("TCM", "stage 1: ln t not truncated", L,
      "  if t_range is None:", "  if True:"),
    M("TCM", "truncation: lower bound dropped", L,
      "  lo, hi = cdf(jnp.float32(a)), cdf(jnp.float32(b))",
      "  lo, hi = cdf(jnp.float32(-1e4)), cdf(jnp.float32(b))"),
    M("TCM", "Student-t: a normal law instead", L,
      "  if df is None:", "  if True:"),
    M("TCM", "Student-t CDF: ν/2 → ν", L,
      "      sq < df, jax.scipy.special.betainc(0.5, 0.5 * df, sq / (df + sq)),",
      "      sq < df, jax.scipy.special.betainc(0.5, df, sq / (df + sq)),"),
    M("TCM", "r not clamped at r_min", L,
      "  r = jnp.maximum(mapped, r_min)", "  r = mapped"),
    M("TCM", "boundary examples keep their t", L,
      "  t = jnp.where(boundary, jnp.float32(transition_t + 1e-8), t)",
      "  t = jnp.where(boundary, t, t)"),
    M("TCM", "target: the student below t′ too", L,
      "    return jnp.where(expand_to(sigma >= transition_t, x), student,",
      "    return jnp.where(expand_to(sigma >= 0.0, x), student,"),
    M("TCM", "target: the stage-1 model above t′ too", L,
      "    return jnp.where(expand_to(sigma >= transition_t, x), student,",
      "    return jnp.where(expand_to(sigma > 1e9, x), student,"),
    M("TCM", "boundary weight dropped", L,
      "  scale = jnp.where(boundary, w_boundary * batch / max(num_boundary, 1),",
      "  scale = jnp.where(boundary, batch / max(num_boundary, 1),"),
    M("TCM", "one mean over the batch, not one per part", L,
      "                    batch / num_truncated)", "                    1.0)"),
    M("TCM", "stage-1 model without the student's dropout", "cm_jax/train/step.py",
      "                       (dropout_key if objective.needs.teacher_dropout",
      "                       (None if objective.needs.teacher_dropout"),
    # --- sCM -----------------------------------------------------------------
    M("sCM", "tangent: −cos²t·(σ_d F⁻ − v) dropped", L,
      "  g = (-cos2 * (sigma_data * f_minus - dxdt)\n"
      "       - warmup * (cs * x_t + sigma_data * cs_dfdt))",
      "  g = -warmup * (cs * x_t + sigma_data * cs_dfdt)"),
    M("sCM", "tangent: first term doubled", L,
      "  g = (-cos2 * (sigma_data * f_minus - dxdt)",
      "  g = (-2 * cos2 * (sigma_data * f_minus - dxdt)"),
    M("sCM", "tangent: warm-up r dropped", L,
      "       - warmup * (cs * x_t + sigma_data * cs_dfdt))",
      "       - (cs * x_t + sigma_data * cs_dfdt))"),
    M("sCM", "tangent: cos t·sin t·x_t dropped", L,
      "       - warmup * (cs * x_t + sigma_data * cs_dfdt))",
      "       - warmup * (sigma_data * cs_dfdt))"),
    M("sCM", "tangent: σ_d on dF⁻/dt dropped", L,
      "       - warmup * (cs * x_t + sigma_data * cs_dfdt))",
      "       - warmup * (cs * x_t + cs_dfdt))"),
    M("sCM", "normalisation: + c dropped", L,
      "  return g / expand_to(jnp.sqrt(sq) + c, g)",
      "  return g / expand_to(jnp.sqrt(sq), g)"),
    M("sCM", "normalisation: ℓ2 swapped for RMS", L,
      "  if norm == \"rms\":\n    sq = sq / math.prod(g.shape[1:])",
      "  if True:\n    sq = sq / math.prod(g.shape[1:])"),
    M("sCM", "normalisation: RMS swapped for ℓ2", L,
      "  if norm == \"rms\":\n    sq = sq / math.prod(g.shape[1:])",
      "  if False:\n    sq = sq / math.prod(g.shape[1:])"),
    M("sCM", "prior 1/(σ_d tan t) dropped", L,
      "  prior = 1.0 / (sigma_data * jnp.tan(t)) if prior_weighting else 1.0",
      "  prior = 1.0"),
    M("sCM", "prior doubled", L,
      "  prior = 1.0 / (sigma_data * jnp.tan(t)) if prior_weighting else 1.0",
      "  prior = 2.0 / (sigma_data * jnp.tan(t)) if prior_weighting else 1.0"),
    M("sCM", "prior: σ_d dropped", L,
      "  prior = 1.0 / (sigma_data * jnp.tan(t)) if prior_weighting else 1.0",
      "  prior = 1.0 / jnp.tan(t) if prior_weighting else 1.0"),
    M("sCM", "e^{w_φ} dropped", L,
      "  return (prior * jnp.exp(log_w) / dim * l2(f_theta, f_minus + g)",
      "  return (prior / dim * l2(f_theta, f_minus + g)"),
    M("sCM", "1/D dropped", L,
      "  return (prior * jnp.exp(log_w) / dim * l2(f_theta, f_minus + g)",
      "  return (prior * jnp.exp(log_w) * l2(f_theta, f_minus + g)"),
    M("sCM", "− w_φ dropped", L,
      "  return (prior * jnp.exp(log_w) / dim * l2(f_theta, f_minus + g)\n"
      "          - log_w)",
      "  return (prior * jnp.exp(log_w) / dim * l2(f_theta, f_minus + g))"),
    M("sCM", "− w_φ doubled", L,
      "  return (prior * jnp.exp(log_w) / dim * l2(f_theta, f_minus + g)\n"
      "          - log_w)",
      "  return (prior * jnp.exp(log_w) / dim * l2(f_theta, f_minus + g)\n"
      "          - 2 * log_w)"),
    M("sCM", "proposal: P_std doubled", L,
      "  tau = p_mean + p_std * jax.random.normal(key, (batch_size,))",
      "  tau = p_mean + 2 * p_std * jax.random.normal(key, (batch_size,))"),
    M("sCM", "TrigFlow teacher: 1/σ_d² dropped", L,
      "  return l2(sigma_data * net(x_t / sigma_data, t), v_t) / sigma_data ** 2",
      "  return l2(sigma_data * net(x_t / sigma_data, t), v_t)"),
    M("sCM", "sCD guidance: v_∅ dropped", L,
      "    return v_u + expand_to(w, v_c) * (v_c - v_u)",
      "    return expand_to(w, v_c) * (v_c - v_u)"),
    M("sCM", "sCD guidance: w dropped", L,
      "    return v_u + expand_to(w, v_c) * (v_c - v_u)",
      "    return v_u + (v_c - v_u)"),
    # --- MeanFlow and the linear process ------------------------------------
    M("MF", "target: (t − r)·du/dt dropped", L,
      "  u_tgt = jax.lax.stop_gradient(v - expand_to(t - r, x0) * du_dt)",
      "  u_tgt = jax.lax.stop_gradient(v)"),
    M("MF", "target: (t − r) doubled", L,
      "  u_tgt = jax.lax.stop_gradient(v - expand_to(t - r, x0) * du_dt)",
      "  u_tgt = jax.lax.stop_gradient(v - 2 * expand_to(t - r, x0) * du_dt)"),
    M("MF", "JVP: ∂_t u dropped (t tangent 0)", L,
      "                           (v, jnp.zeros_like(r), jnp.ones_like(t)))",
      "                           (v, jnp.zeros_like(r), jnp.zeros_like(t)))"),
    M("MF", "JVP: v·∂_z u dropped (z tangent 0)", L,
      "                           (v, jnp.zeros_like(r), jnp.ones_like(t)))",
      "                           (0 * v, jnp.zeros_like(r), jnp.ones_like(t)))"),
    M("MF", "JVP: tangents of r and t swapped", L,
      "                           (v, jnp.zeros_like(r), jnp.ones_like(t)))",
      "                           (v, jnp.ones_like(r), jnp.zeros_like(t)))"),
    M("MF", "adaptive weight: + c dropped", L,
      "  return sq_error / jax.lax.stop_gradient((sq_error + c) ** p)",
      "  return sq_error / jax.lax.stop_gradient(sq_error ** p)"),
    M("MF", "adaptive weight: power p dropped", L,
      "  return sq_error / jax.lax.stop_gradient((sq_error + c) ** p)",
      "  return sq_error / jax.lax.stop_gradient(sq_error + c)"),
    M("MF", "times: r = t for the other share", L,
      "  equal = jnp.arange(batch_size) < int(batch_size * (1.0 - r_neq_t))",
      "  equal = jnp.arange(batch_size) < int(batch_size * r_neq_t)"),
    M("MF", "flow matching: target ε − x0 → ε", L,
      "  return l2(velocity(z_t, t), e - x0)",
      "  return l2(velocity(z_t, t), e)"),
    M("MF", "guidance: (1 − ω − κ) → (1 − ω)", L,
      "    guided = w * v + (1.0 - w - k) * v_null(z_t, t) + k * v_cond(z_t, t)",
      "    guided = w * v + (1.0 - w) * v_null(z_t, t) + k * v_cond(z_t, t)"),
    M("MF", "guidance: dropped examples guided too", L,
      "    return jnp.where(expand_to(dropped, v) > 0, v, guided)",
      "    return guided"),
    M("MF", "guidance: t interval ignored", L,
      "    inside = (t >= interval[0]) & (t <= interval[1])",
      "    inside = t >= 0"),
    M("MF", "iMF: V's (t − r) dropped", L,
      "  big_v = u + expand_to(t - r, x0) * jax.lax.stop_gradient(du_dt)",
      "  big_v = u + jax.lax.stop_gradient(du_dt)"),
    M("MF", "iMF: JVP along ε − x0, not the network's v", L,
      "      (v_own, jnp.zeros_like(r), jnp.ones_like(t)), has_aux=True)",
      "      (v, jnp.zeros_like(r), jnp.ones_like(t)), has_aux=True)"),
    M("MF", "iMF: the v head's term dropped", L,
      "  return (adaptive_weight(l2(big_v, v), p=p, c=c)\n"
      "          + adaptive_weight(l2(v_theta, v), p=p, c=c))",
      "  return adaptive_weight(l2(big_v, v), p=p, c=c)"),
    M("MF", "iMF guidance: w = ω outside the interval too", L,
      "  w = jnp.where((t >= t_min) & (t <= t_max), omega, 1.0)",
      "  w = omega"),
    M("MF", "iMF guidance: (1 − 1/w) → (w − 1)", L,
      "  v_g = v + expand_to(1.0 - 1.0 / w, x0) * (v_cond - v_uncond)",
      "  v_g = v + expand_to(w - 1.0, x0) * (v_cond - v_uncond)"),
    M("MF", "iMF guidance: dropped examples keep the guided target", L,
      "  v_g = jax.lax.stop_gradient(jnp.where(expand_to(dropped, x0), v, v_g))",
      "  v_g = jax.lax.stop_gradient(v_g)"),
    M("MF", "iMF guidance: JVP along ε − x0, not v_c", L,
      "      (jax.lax.stop_gradient(v_cond), jnp.zeros_like(r), jnp.ones_like(t)),",
      "      (v, jnp.zeros_like(r), jnp.ones_like(t)),"),
    M("MF", "iMF guidance: u reads the masked w, not ω", L,
      "  guidance = jnp.stack([omega, t_min, t_max], axis=-1)",
      "  guidance = jnp.stack([w, t_min, t_max], axis=-1)"),
    M("MF", "iMF guidance: v_u with the labels", L,
      "  v_uncond = v_head(jnp.ones_like(t), jnp.ones_like(dropped))",
      "  v_uncond = v_head(jnp.ones_like(t), jnp.zeros_like(dropped))"),
    M("MF", "iMF guidance: flow-matching examples keep a drawn interval", L,
      "  return (jnp.where(flow_matching, 0.0, t_min),",
      "  return (t_min,"),
    M("MF", "iMF guidance: V's (t − r) dropped", L,
      "  compound = u + expand_to(t - r, x0) * jax.lax.stop_gradient(du_dt)  # V",
      "  compound = u + jax.lax.stop_gradient(du_dt)  # V"),
    M("MF", "iMF guidance: the v head's term dropped", L,
      "          + adaptive_weight(l2(v_theta, v_g), p=p, c=c))",
      "          + 0.0 * adaptive_weight(l2(v_theta, v_g), p=p, c=c))"),
    M("MF", "iMF guidance: ω uniform, not log-uniform", L,
      "    return top ** u", "    return 1.0 + (top - 1.0) * u"),
    M("MF", "iMF guidance: the network reads ω, not 1 − 1/ω",
      "cm_jax/nn/embeddings.py",
      '  return {"omega": 1.0 - 1.0 / omega, "t_min": t_min, "t_max": t_max}',
      '  return {"omega": omega, "t_min": t_min, "t_max": t_max}'),
    M("SC", "self-consistency: ½ of the second half jump dropped", L,
      "  u_boot = jnp.clip((u_1 + u_2) / 2, -clip, clip)",
      "  u_boot = jnp.clip(u_1, -clip, clip)"),
    M("SC", "self-consistency: midpoint with the whole step", L,
      "  z_mid = jnp.clip(zb - expand_to(half, zb) * u_1, -clip, clip)",
      "  z_mid = jnp.clip(zb - 2 * expand_to(half, zb) * u_1, -clip, clip)"),
    M("SC", "self-consistency: second half from t, not t − d", L,
      "  u_2 = jump(z_mid, tb - 2 * half, tb - half)",
      "  u_2 = jump(z_mid, tb - 2 * half, tb)"),
    M("SC", "times: t off the grid of 2d", L,
      "  t_boot = 1.0 - j * step",
      "  t_boot = 1.0 - j * step / 2"),
    M("SC", "flow matching target ε − x0 → ε", L,
      "      jnp.concatenate([u_boot, (e - x0)[boot:]]))",
      "      jnp.concatenate([u_boot, e[boot:]]))"),
    M("SC", "bootstrap_cfg: s·(u_c − u_u) → (u_c − u_u) (unguided)", L,
      "      u_g = u_u + cfg_scale * (u_c[:guided] - u_u)",
      "      u_g = u_u + (u_c[:guided] - u_u)"),
    M("SC", "bootstrap_cfg: u_u dropped (s·u_c)", L,
      "      u_g = u_u + cfg_scale * (u_c[:guided] - u_u)",
      "      u_g = cfg_scale * u_c[:guided]"),
    M("SC", "bootstrap_cfg: u_u with the labels, not the null class", L,
      "      u_u = target(z[:guided], r[:guided], t[:guided], null)",
      "      u_u = target(z[:guided], r[:guided], t[:guided], yb[:guided])"),
    M("SC", "bootstrap_cfg: every step size guided, not 2d = 2/M", L,
      "  guided = boot // int(round(math.log2(denoise_steps)))  # the 2d = 2/M ones",
      "  guided = boot"),
    M("SC", "bootstrap_cfg: the second half jump unguided", L,
      "  u_2 = jump(z_mid, tb - 2 * half, tb - half)",
      "  u_2 = target(z_mid, tb - 2 * half, tb - half, yb)"),
    M("SC", "class dropout on the self-consistency examples too", L,
      "                                   (batch,)) & (jnp.arange(batch) >= boot)",
      "                                   (batch,))"),
    M("SC", "class dropout: the dropped labels not the null class", L,
      "    labels = jnp.where(dropped, num_classes, labels)",
      "    labels = jnp.where(dropped, 0, labels)"),
    M("SC", "CFG sampling of a flow map: ω dropped", "cm_jax/generate.py",
      "    return u_u + expand_to(scale, u_c) * (u_c - u_u)",
      "    return u_u + (u_c - u_u)"),
    M("MF", "linear: jump (t − r) dropped", "cm_jax/processes.py",
      "      return z - expand_to(t - r, z) * u(z, r, t)",
      "      return z - u(z, r, t)"),
    M("MF", "linear: second time t instead of t − r", "cm_jax/processes.py",
      "      return net(z, self.time_scale * t, c_step=self.time_scale * (t - r),",
      "      return net(z, self.time_scale * t, c_step=self.time_scale * t,"),
    M("MF", "linear: x̂0 = z − v (t dropped)", "cm_jax/processes.py",
      "      return z - expand_to(t, z) * v(z, t)",
      "      return z - v(z, t)"),
)


def _copy_repo(dest):
  """The files git tracks (and the untracked ones it does not ignore)."""
  files = subprocess.run(
      ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
      cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
  for rel in files:
    src = os.path.join(REPO, rel)
    if not os.path.isfile(src):
      continue
    os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
    shutil.copy2(src, os.path.join(dest, rel))


def _pytest(copy, tests):
  """(passed, seconds, last lines) of the math tests run in ``copy``."""
  env = {**os.environ, "PYTHONPATH": copy}  # the copy's cm_jax, not REPO's
  start = time.time()
  run = subprocess.run(
      [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
       "-k", DESELECT, *tests], cwd=copy, env=env, capture_output=True,
      text=True)
  return run.returncode == 0, time.time() - start, run.stdout[-600:]


def _apply(copy, mutation):
  path = os.path.join(copy, mutation.path)
  with open(path, encoding="utf-8") as f:
    text = f.read()
  count = text.count(mutation.old)
  if count != 1:
    raise SystemExit(f"mutation {mutation.name!r}: its text occurs {count} "
                     f"times in {mutation.path} (must be once); update "
                     "scripts/mutation_check.py.")
  with open(path, "w", encoding="utf-8") as f:
    f.write(text.replace(mutation.old, mutation.new))


def _run_one(mutation, tests):
  with tempfile.TemporaryDirectory(prefix="cm_jax_mutant_") as copy:
    _copy_repo(copy)
    _apply(copy, mutation)
    passed, seconds, _ = _pytest(copy, tests)
  return mutation, not passed, seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", default="",
                      help="one group: CM, EDM, LCM, ECT or sCM")
  parser.add_argument("--jobs", type=int, default=2,
                      help="mutations tested at once")
  args = parser.parse_args()
  mutations = [m for m in MUTATIONS if args.only in ("", m.group)]
  if not mutations:
    raise SystemExit(f"No mutations in group {args.only!r}.")
  with tempfile.TemporaryDirectory(prefix="cm_jax_unmutated_") as copy:
    _copy_repo(copy)
    for m in mutations:  # every text is found once, before anything runs
      with open(os.path.join(copy, m.path), encoding="utf-8") as f:
        if f.read().count(m.old) != 1:
          raise SystemExit(f"mutation {m.name!r}: its text does not occur "
                           f"exactly once in {m.path}.")
    passed, seconds, tail = _pytest(copy, MATH_TESTS)
  if not passed:
    raise SystemExit(f"The unmutated tests fail; fix them first:\n{tail}")
  print(f"unmutated: the math tests pass ({seconds:.0f} s)", flush=True)
  survivors = []
  with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
    for mutation, caught, seconds in pool.map(
        lambda m: _run_one(m, GROUP_TESTS[m.group]), mutations):
      print(f"{'caught  ' if caught else 'SURVIVED'} {seconds:5.0f} s  "
            f"{mutation.group:4s} {mutation.name}", flush=True)
      if not caught:
        survivors.append(mutation)
  print(f"{len(mutations) - len(survivors)} of {len(mutations)} mutations "
        "caught by the math tests.")
  if survivors:
    print("Survived (no test checks these terms): " +
          "; ".join(f"{m.group}: {m.name}" for m in survivors))
    sys.exit(1)


if __name__ == "__main__":
  main()

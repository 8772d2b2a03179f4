"""Noise grids, curricula and loss weightings of the consistency-model papers.

Notation: the σ grid is ascending, σ_1 = σ_min = ε < … < σ_N = σ_max = T
(EDM eq. 5; CM §5; iCT Table 1). Code indexes it from 0, so the pair
(σ_i, σ_{i+1}) of the papers is ``(sigmas[n], sigmas[n + 1])`` with
n ∈ {0, …, N − 2}.

Curricula change N during training. To keep one compiled train step, grids are
padded to a fixed ``size`` with σ_max: the padded pairs have zero width, so the
lognormal index distribution gives them probability 0 and the uniform one is
drawn below ``num_scales − 1`` (see ``losses.sample_index``).
"""

import functools
import math

import jax.numpy as jnp
from jax.scipy.special import erf

SIGMA_MIN = 0.002  # ε, EDM / CM
SIGMA_MAX = 80.0  # T
RHO = 7.0
SIGMA_DATA = 0.5


def karras_sigmas(n, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, rho=RHO, *,
                  size=None):
  """EDM eq. 5, ascending: σ_i = (σ_min^{1/ρ} + (i−1)/(N−1)·(σ_max^{1/ρ} − σ_min^{1/ρ}))^ρ.

  Args:
    n: number of grid points N ≥ 2; may be a traced integer when ``size`` is
      given.
    sigma_min, sigma_max, rho: EDM constants.
    size: static length of the result. Entries past N − 1 repeat σ_max.

  Returns:
    float32 [size or n]; the end points are exactly σ_min and σ_max, so the
    boundary condition f(x, ε) = x holds bit-exactly on the grid.
  """
  size = n if size is None else size
  i = jnp.arange(size, dtype=jnp.float32)
  ramp = jnp.minimum(i / (jnp.asarray(n, jnp.float32) - 1.0), 1.0)
  lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
  sigmas = (lo + ramp * (hi - lo)) ** rho
  sigmas = jnp.where(i == 0, sigma_min, sigmas)
  return jnp.where(ramp >= 1.0, sigma_max, sigmas).astype(jnp.float32)


def ct_num_scales(step, total_steps, s0=2, s1=150):
  """CM paper's CT curriculum (§C.3): N(k) = ⌈√(k/K·((s1+1)² − s0²) + s0²) − 1⌉ + 1.

  N(0) = s0 and N(K) = s1 + 1. ``step`` may be traced; the result is int32.
  """
  k = jnp.asarray(step, jnp.float32)
  inner = k / total_steps * ((s1 + 1) ** 2 - s0 ** 2) + s0 ** 2
  return (jnp.ceil(jnp.sqrt(inner) - 1.0) + 1.0).astype(jnp.int32)


def ct_target_ema(num_scales, s0=2, mu0=0.9):
  """CM paper's target EMA schedule: μ(k) = exp(s0·log μ0 / N(k)).

  Follows the paper, so μ(0) = μ0. (The official code divides by N(k) − 1,
  giving μ(0) = μ0^{s0}.)
  """
  return jnp.exp(s0 * math.log(mu0) / jnp.asarray(num_scales, jnp.float32))


def ict_num_scales(step, total_steps, s0=10, s1=1280):
  """iCT Table 1: N(k) = min(s0·2^⌊k/K'⌋, s1) + 1, K' = ⌊K / (log2⌊s1/s0⌋ + 1)⌋.

  With the CIFAR-10 recipe (s0 = 10, s1 = 1280, K = 400,000), K' = 50,000 and
  N goes 11, 21, 41, …, 1281. ``step`` may be traced; the result is int32.
  """
  k_prime = math.floor(total_steps / (math.log2(s1 // s0) + 1))
  doublings = jnp.asarray(step, jnp.int32) // max(k_prime, 1)
  # Clamp the exponent first so 2^doublings cannot overflow int32.
  doublings = jnp.minimum(doublings, int(math.ceil(math.log2(s1 / s0))))
  return jnp.minimum(s0 * 2 ** doublings, s1).astype(jnp.int32) + 1


def ema_decay(step, decay, rampup_ratio=0.0):
  """The sampling EMA's rate at step k (0-based): ``decay``, or with
  ``rampup_ratio`` r > 0 EDM's ramp-up (`training_loop.py`): the half-life,
  h = ln ½ / ln decay steps, is capped at r·k, so
  β_k = 0.5^(1 / min(h, r·k)) and β_0 = 0 (the EMA starts at θ). EDM writes
  it in images, min(h·B, r·k·B) with k·B images seen; B cancels."""
  if rampup_ratio <= 0:
    return decay
  half_life = jnp.log(0.5) / jnp.log(jnp.float32(decay))
  ramp = rampup_ratio * jnp.asarray(step, jnp.float32)
  return jnp.where(ramp > 0, 0.5 ** (1.0 / jnp.minimum(half_life, ramp)), 0.0)


def lognormal_index_probs(sigmas, p_mean=-1.1, p_std=2.0):
  """iCT §3.5: p(i) ∝ erf((log σ_{i+1} − P_mean)/(√2 P_std)) − erf((log σ_i − P_mean)/(√2 P_std)).

  Args:
    sigmas: ascending grid [N] (may be padded with σ_max; padded pairs get 0).

  Returns:
    float32 [N − 1], summing to 1: the probability of the pair (σ_i, σ_{i+1}).
  """
  cdf = erf((jnp.log(sigmas) - p_mean) / (math.sqrt(2.0) * p_std))
  mass = cdf[1:] - cdf[:-1]
  return mass / jnp.sum(mass)


# Weightings λ(σ_i, σ_{i+1}) of the consistency losses; each maps the two
# per-example noise levels [B] to a weight [B].


def uniform_weight(sigma_i, sigma_next):
  """CM paper: λ ≡ 1."""
  del sigma_next
  return jnp.ones_like(sigma_i)


def ict_weight(sigma_i, sigma_next):
  """iCT §3.4: λ(σ_i) = 1 / (σ_{i+1} − σ_i)."""
  return 1.0 / (sigma_next - sigma_i)


def karras_weight(sigma_i, sigma_next, sigma_data=SIGMA_DATA):
  """EDM's λ(σ) = (σ² + σ_d²)/(σ·σ_d)² at σ_i (an option of the CM code)."""
  del sigma_next
  return (sigma_i ** 2 + sigma_data ** 2) / (sigma_i * sigma_data) ** 2


def snrpk_weight(sigma_i, sigma_next, sigma_data=SIGMA_DATA):
  """ECT's ImageNet "snrpk" (locuslab/ect, branch imgnet, ``snrplusk_wt``):
  λ = SNR + k = 1/σ_{i+1}² + 1/σ_d² at the upper point σ_{i+1} = t."""
  del sigma_i
  return 1.0 / sigma_next ** 2 + 1.0 / sigma_data ** 2


WEIGHTINGS = {
    "uniform": uniform_weight,
    "ict": ict_weight,
    "karras": karras_weight,
    "snrpk": snrpk_weight,
}
# The weightings that depend on σ_d (``weighting`` binds it).
_WITH_SIGMA_DATA = (karras_weight, snrpk_weight)


def weighting(fn, sigma_data):
  """λ(σ_i, σ_{i+1}) of a ``WEIGHTINGS`` entry at the run's σ_d."""
  return (functools.partial(fn, sigma_data=sigma_data)
          if fn in _WITH_SIGMA_DATA else fn)

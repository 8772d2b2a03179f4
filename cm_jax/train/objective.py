"""From a config to the consistency-training objective of CM Alg. 3 / iCT.

``make_objective(config)`` resolves every named choice once, outside jit,
through explicit dicts, and returns a pure function

    objective(online, target, x0, key, step) -> (loss [B], aux)

with ``online``/``target`` ConsistencyFns. Inside, N(k) and μ(k) are computed
from the traced step on a σ grid padded to the curriculum's largest N, so a
change of N never recompiles the step.
"""

import dataclasses
import functools
from typing import Callable

import jax.numpy as jnp
import numpy as np

from cm_jax import losses, schedules


def _ict_curriculum(c, total_steps):
  return (functools.partial(schedules.ict_num_scales, total_steps=total_steps,
                            s0=c.s0, s1=c.s1), c.s1 + 1)


def _ct_curriculum(c, total_steps):
  return (functools.partial(schedules.ct_num_scales, total_steps=total_steps,
                            s0=c.s0, s1=c.s1), c.s1 + 1)


def _fixed_curriculum(c, total_steps):
  del total_steps
  return (lambda step: jnp.int32(c.num_scales)), c.num_scales


CURRICULA = {"ict": _ict_curriculum, "ct": _ct_curriculum,
             "fixed": _fixed_curriculum}

TARGET_EMAS = {
    # CM: μ(k) = exp(s0 log μ0 / N(k)).
    "adaptive": lambda c, s0: functools.partial(schedules.ct_target_ema, s0=s0,
                                                mu0=c.mu0),
    # CD (μ fixed) and iCT (μ = 0, i.e. θ⁻ = stopgrad θ).
    "fixed": lambda c, s0: (lambda num_scales: jnp.float32(c.mu)),
}


def resolve(table, name, field):
  """table[name], or a one-line error naming the field and the valid choices."""
  if name not in table:
    raise ValueError(f"Unknown {field}={name!r}; valid: {', '.join(sorted(table))}"
                     f" (set --config.{field}=...).")
  return table[name]


def make_metric(loss_config, example_shape):
  """d(·,·) by name; pseudo-Huber's c defaults to iCT's 0.00054·√d."""
  name = loss_config.metric
  if name == "lpips":
    raise ValueError("loss.metric='lpips' needs the Flax LPIPS network, which "
                     "this version does not ship yet; use "
                     "--config.loss.metric=pseudo_huber (iCT) or l2.")
  metric = resolve(losses.METRICS, name, "loss.metric")
  if name == "pseudo_huber":
    c = loss_config.huber_c
    if c is None or c <= 0:
      c = losses.ict_huber_c(int(np.prod(example_shape)))
    metric = functools.partial(metric, c=c)
  return metric


@dataclasses.dataclass(frozen=True)
class ConsistencyTraining:
  """CT / iCT with every choice resolved (a static, hashable closure)."""

  num_scales_fn: Callable
  max_scales: int
  target_mu_fn: Callable
  metric: Callable
  weighting: Callable
  lognormal: tuple[float, float] | None  # (P_mean, P_std), or None = uniform
  sigma_min: float
  sigma_max: float
  rho: float

  def sigmas(self, num_scales):
    """The padded ascending grid for N = ``num_scales`` (EDM eq. 5)."""
    return schedules.karras_sigmas(num_scales, self.sigma_min, self.sigma_max,
                                   self.rho, size=self.max_scales)

  def __call__(self, online, target, x0, key, step):
    num_scales = self.num_scales_fn(step)
    sigmas = self.sigmas(num_scales)
    index_probs = (None if self.lognormal is None else
                   schedules.lognormal_index_probs(sigmas, *self.lognormal))
    loss = losses.consistency_training_loss(
        online, target, x0, key, sigmas=sigmas, index_probs=index_probs,
        metric=self.metric, weighting=self.weighting, num_scales=num_scales)
    aux = {"num_scales": num_scales, "target_mu": self.target_mu_fn(num_scales)}
    return loss, aux


def make_objective(config, example_shape):
  """The consistency-training objective named by ``config``."""
  if config.method != "ct":
    raise ValueError(f"Unknown method={config.method!r}; valid: ct "
                     "(consistency training: CM Alg. 3 and iCT).")
  cur = config.curriculum
  num_scales_fn, max_scales = resolve(CURRICULA, cur.name, "curriculum.name")(
      cur, config.train.num_steps)
  target_mu_fn = resolve(TARGET_EMAS, config.target.ema, "target.ema")(
      config.target, cur.get("s0", 2))
  loss = config.loss
  sampling = resolve({"uniform": None, "lognormal": (loss.p_mean, loss.p_std)},
                     loss.index_sampling, "loss.index_sampling")
  d = config.diffusion
  return ConsistencyTraining(
      num_scales_fn=num_scales_fn, max_scales=int(max_scales),
      target_mu_fn=target_mu_fn, metric=make_metric(loss, example_shape),
      weighting=resolve(schedules.WEIGHTINGS, loss.weighting, "loss.weighting"),
      lognormal=sampling, sigma_min=d.sigma_min, sigma_max=d.sigma_max,
      rho=d.rho)

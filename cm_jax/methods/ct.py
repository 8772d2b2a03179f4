"""CT and iCT: consistency training (CM Alg. 3; Song & Dhariwal 2023).

The grid, curriculum N(k), target EMA μ(k), metric d and weighting λ are the
``curriculum``, ``target`` and ``loss`` groups every consistency method
shares (``base.consistency_parts``); iCT's index law is lognormal
(``loss.index_sampling``, ``loss.p_mean``, ``loss.p_std``: these two are
iCT's alone; the continuous-time methods and the diffusion model draw their
times from their own groups' ``p_mean``, ``p_std``).
"""

import dataclasses

from cm_jax import losses, registry, schedules
from cm_jax.methods.base import (ConsistencyLoss, Needs, check_ve,
                                 consistency_parts)


@dataclasses.dataclass(frozen=True)
class ConsistencyTraining(ConsistencyLoss):
  """CM Alg. 3; iCT with lognormal p(i), λ = 1/Δσ, pseudo-Huber, μ = 0."""

  needs = Needs()
  lognormal: tuple[float, float] | None = None  # (P_mean, P_std); None: uniform

  @classmethod
  def from_config(cls, config, example_shape):
    check_ve(config)
    loss = config.loss
    lognormal = registry.lookup(
        {"uniform": None, "lognormal": (loss.p_mean, loss.p_std)},
        loss.index_sampling, "loss.index_sampling")
    return cls(lognormal=lognormal,
               **consistency_parts(config, example_shape))

  def __call__(self, online, target, x0, key, step, teacher=None):
    del teacher
    num_scales = self.num_scales_fn(step)
    sigmas = self.sigmas(num_scales)
    index_probs = (None if self.lognormal is None else
                   schedules.lognormal_index_probs(sigmas, *self.lognormal))
    loss = losses.consistency_training_loss(
        self.diffusion.consistency_fn(online),
        self.diffusion.consistency_fn(target), x0, key, sigmas=sigmas,
        index_probs=index_probs, metric=self.metric, weighting=self.weighting,
        num_scales=num_scales)
    return loss, self.schedule_metrics(num_scales)

"""CT and iCT (CM Alg. 3; Song & Dhariwal 2023) and CD (CM Alg. 2)."""

import dataclasses

from cm_jax import losses, registry, schedules, solvers
from cm_jax.train.objectives.base import (ConsistencyLoss, Needs, check_ve,
                                          check_uniform_index,
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


@dataclasses.dataclass(frozen=True)
class ConsistencyDistillation(ConsistencyLoss):
  """CM Alg. 2: one teacher ODE step (Heun by default) from t_{n+1} to t_n."""

  # A teacher trained without EDM's augmentation lacks the student's
  # augment-label input, which sees no labels in CD (a no-op).
  needs = Needs(teacher=("edm",), teacher_what="a trained EDM teacher",
                teacher_in_step=True, init_from_teacher="option",
                student_may_add=("augment_dim",))
  solver: str = "heun"

  @classmethod
  def from_config(cls, config, example_shape):
    check_ve(config)
    check_uniform_index(config, "method=cd (CM Alg. 2)")
    solver = config.teacher.solver
    registry.lookup(solvers.SOLVERS, solver, "teacher.solver")
    return cls(solver=solver, **consistency_parts(config, example_shape))

  def __call__(self, online, target, x0, key, step, teacher=None):
    num_scales = self.num_scales_fn(step)
    loss = losses.consistency_distillation_loss(
        self.diffusion.consistency_fn(online),
        self.diffusion.consistency_fn(target), self.diffusion.denoiser(teacher),
        x0, key, sigmas=self.sigmas(num_scales), solver=self.solver,
        metric=self.metric, weighting=self.weighting, num_scales=num_scales)
    return loss, self.schedule_metrics(num_scales)

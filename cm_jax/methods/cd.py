"""CD: consistency distillation from a diffusion teacher (CM Alg. 2)."""

import dataclasses

from cm_jax import losses, registry, solvers
from cm_jax.methods.base import (ConsistencyLoss, Needs, check_uniform_index,
                                 check_ve, consistency_parts)


@dataclasses.dataclass(frozen=True)
class ConsistencyDistillation(ConsistencyLoss):
  """CM Alg. 2: one teacher ODE step (Heun by default) from t_{n+1} to t_n."""

  # A teacher trained without EDM's augmentation lacks the student's
  # augment-label input, which sees no labels in CD (a no-op).
  needs = Needs(teacher=("diffusion",), teacher_what="a trained EDM teacher",
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

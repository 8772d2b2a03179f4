"""CT and iCT (CM Alg. 3; Song & Dhariwal 2023), CD (CM Alg. 2) and ECT
(Geng et al. 2024)."""

import dataclasses
from typing import Callable

import jax.numpy as jnp

from cm_jax import (losses, parametrization, processes, registry, schedules,
                    solvers)
from cm_jax.train.objectives.base import (ConsistencyLoss, Needs, check_ve,
                                          check_uniform_index,
                                          consistency_parts, make_metric,
                                          make_weighting)


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


@dataclasses.dataclass(frozen=True)
class EasyConsistencyTraining:
  """ECT (Geng et al. 2024, "Consistency Models Made Easy"): continuous-time
  consistency training with the mapping r(t) of stage s = ⌊k / stage_steps⌋
  (``losses.ect_mapping``), θ⁻ = stopgrad θ. With ``teacher.workdir`` it
  tunes a trained EDM run, starting from its EMA weights (ECT's "consistency
  tuning"); with it empty it trains from scratch.

  Like the authors' ``ECMPrecond`` (locuslab/ect ``training/networks.py``),
  f_θ trains with EDM's plain c_skip(t), c_out(t) and shifts them by σ_min
  (CM eq. 5) only at evaluation, where f is the process's consistency
  function; ``ect.train_shift`` uses the shifted ones in training too."""

  needs = Needs(teacher=("edm",),
                teacher_what="a trained EDM run (ECT tunes its EMA weights)",
                init_from_teacher="always", same_process_as_teacher=True,
                teacher_optional=True)
  q: float
  k: float
  b: float
  stage_steps: int
  p_mean: float
  p_std: float
  metric: Callable
  weighting: Callable
  train_shift: bool
  diffusion: processes.VE

  @classmethod
  def from_config(cls, config, example_shape):
    check_ve(config)
    ect = config.ect
    if not ect.q > 1:
      raise ValueError(f"ect.q={ect.q} must be > 1 (Δt shrinks by q per "
                       "stage; ECT: 2); set --config.ect.q=2.")
    if ect.stage_steps < 1:
      raise ValueError(f"ect.stage_steps={ect.stage_steps} must be ≥ 1; set "
                       "--config.ect.stage_steps=...")
    return cls(q=float(ect.q), k=float(ect.k), b=float(ect.b),
               stage_steps=int(ect.stage_steps),
               p_mean=float(config.loss.p_mean),
               p_std=float(config.loss.p_std),
               metric=make_metric(config.loss, example_shape),
               weighting=make_weighting(config),
               train_shift=bool(ect.train_shift),
               diffusion=processes.make_process(config))

  def consistency_fn(self, net):
    """f_θ in training: EDM's c_skip, c_out (ECMPrecond in training mode),
    or with ``train_shift`` the process's shifted ones."""
    d = self.diffusion
    return parametrization.consistency_fn(
        net, d.sigma_data, d.sigma_min if self.train_shift else 0.0)

  def __call__(self, online, target, x0, key, step, teacher=None):
    del teacher
    stage = losses.ect_stage(step, self.stage_steps)
    loss = losses.easy_consistency_training_loss(
        self.consistency_fn(online), self.consistency_fn(target), x0, key,
        stage=stage, q=self.q, k=self.k, b=self.b, p_mean=self.p_mean,
        p_std=self.p_std, metric=self.metric, weighting=self.weighting)
    return loss, {"target_mu": jnp.float32(0.0), "ect_stage": stage}

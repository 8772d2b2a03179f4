"""Latent consistency models (Luo et al. 2023): LCD (LCM Alg. 1) and LCF
(LCM Alg. 4), on the VP process (or VE) with w ~ U[w_min, w_max]."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections

from cm_jax import losses, registry, solvers
from cm_jax.methods.base import (ConsistencyLoss, Needs, check_uniform_index,
                                 consistency_parts)


GROUP = "lcm"  # config.lcm


def config():
  """config.lcm: LCM's skipping step, start times and guidance range."""
  c = ml_collections.ConfigDict()
  c.skip = 20  # lcd, lcf: skipping step k, pairs (t_n, t_{n+k}) (LCM: 20).
  # lcd, lcf: the pairs drawn: all (LCM Alg. 1: n ~ U, any of the N − k) |
  # ddim (the official script: t_{n+k} on the N/k-point DDIM grid k − 1,
  # 2k − 1, …, N − 1, t_n = t_{n+k−k} clamped at t_0).
  c.starts = "all"
  c.w_min = 2.0  # lcd, lcf: w ~ U[w_min, w_max] (LCM paper: [2, 14]).
  c.w_max = 14.0
  return c


def sample_guidance(key, batch_size, w_min, w_max):
  """w ~ U[w_min, w_max] per example (LCM Alg. 1)."""
  return jax.random.uniform(key, (batch_size,), jnp.float32, w_min, w_max)


def lcm_parts(config, example_shape):
  """The fields LCD and LCF share, checked."""
  lcm = config.lcm
  if lcm.skip < 1:
    raise ValueError(f"lcm.skip must be ≥ 1, got {lcm.skip}.")
  if not lcm.w_min <= lcm.w_max:
    raise ValueError(f"Need lcm.w_min ≤ lcm.w_max, got [{lcm.w_min}, "
                     f"{lcm.w_max}].")
  if config.curriculum.name != "fixed":
    raise ValueError("LCM uses one N-point grid: set "
                     "--config.curriculum.name=fixed (and num_scales=N).")
  if config.curriculum.num_scales <= lcm.skip:
    raise ValueError(f"lcm.skip={lcm.skip} needs curriculum.num_scales > "
                     f"{lcm.skip}, got {config.curriculum.num_scales}.")
  registry.lookup(losses.SKIP_STARTS, lcm.starts, "lcm.starts")
  if lcm.starts == "ddim" and config.curriculum.num_scales % lcm.skip:
    raise ValueError("lcm.starts=ddim draws from the N/k-point DDIM grid: "
                     "curriculum.num_scales must be a multiple of lcm.skip "
                     f"(LCM: 1000 = 50·20), got {config.curriculum.num_scales}"
                     f" and {lcm.skip}.")
  check_uniform_index(config, "LCM (Alg. 1, 4)")
  return dict(skip=int(lcm.skip), starts=str(lcm.starts),
              w_min=float(lcm.w_min),
              w_max=float(lcm.w_max),
              w_condition=bool(config.model.w_embedding),
              **consistency_parts(config, example_shape))


@dataclasses.dataclass(frozen=True)
class LatentConsistencyDistillation(ConsistencyLoss):
  """LCM Alg. 1: LCD through the CFG-augmented PF-ODE (LCM eq. 10).

  w ~ U[w_min, w_max] per example; the teacher step is Ψ (DDIM) with
  D̃ = (1 + w)·D(·, c) − w·D(·, ∅) from t_{n+k} to t_n (skipping-step
  k = ``skip``), the pairs drawn as ``starts`` (``losses.SKIP_STARTS``);
  f_θ and f_θ⁻ see w as an input when ``w_condition``. The train step hands
  the teacher as the pair (φ(·, c), φ(·, ∅)).
  """

  needs = Needs(teacher=("diffusion",), teacher_what="a trained EDM teacher",
                teacher_in_step=True, guided_teacher=True,
                init_from_teacher="option", student_may_add=("w_embedding",),
                same_process_as_teacher=True, guidance_input=True)
  skip: int = 1
  starts: str = "all"
  solver: str = "ddim"
  w_min: float = 0.0
  w_max: float = 0.0
  w_condition: bool = False

  @classmethod
  def from_config(cls, config, example_shape):
    solver = config.teacher.solver
    registry.lookup(solvers.SOLVERS, solver, "teacher.solver")
    if solver == "heun" and config.process != "ve":
      raise ValueError("teacher.solver=heun is written for the VE process; "
                       "use --config.teacher.solver=ddim (LCM) for "
                       "process=vp.")
    return cls(solver=solver, **lcm_parts(config, example_shape))

  def _with_w(self, net, w):
    return functools.partial(net, w=w if self.w_condition else None)

  def __call__(self, online, target, x0, key, step, teacher=None):
    w_key, loss_key = jax.random.split(key)
    w = sample_guidance(w_key, x0.shape[0], self.w_min, self.w_max)
    num_scales = self.num_scales_fn(step)
    d = self.diffusion
    teacher_cond, teacher_uncond = teacher
    loss = losses.latent_consistency_distillation_loss(
        d.consistency_fn(self._with_w(online, w)),
        d.consistency_fn(self._with_w(target, w)),
        solvers.guided_denoiser(d.denoiser(teacher_cond),
                                d.denoiser(teacher_uncond), w),
        x0, loss_key, ts=self.sigmas(num_scales), skip=self.skip, process=d,
        solver=self.solver, metric=self.metric, weighting=self.weighting,
        num_scales=num_scales, starts=self.starts)
    return loss, self.schedule_metrics(num_scales)


@dataclasses.dataclass(frozen=True)
class LatentConsistencyFinetuning(LatentConsistencyDistillation):
  """LCM Alg. 4 (LCF): no teacher network; it starts from a trained LCM
  (``init.workdir``). The skip-k pair shares one noise z, and w is drawn
  only as the network's input, so a trained LCM keeps its w."""

  needs = Needs(teacher=("lcd", "lcf"),
                teacher_what="a trained LCM (a run of method=lcd or lcf)",
                init_from_teacher="always", same_process_as_teacher=True,
                guidance_input=True)

  @classmethod
  def from_config(cls, config, example_shape):
    return cls(**lcm_parts(config, example_shape))

  def __call__(self, online, target, x0, key, step, teacher=None):
    del teacher
    w_key, loss_key = jax.random.split(key)
    w = sample_guidance(w_key, x0.shape[0], self.w_min, self.w_max)
    num_scales = self.num_scales_fn(step)
    d = self.diffusion
    loss = losses.latent_consistency_finetuning_loss(
        d.consistency_fn(self._with_w(online, w)),
        d.consistency_fn(self._with_w(target, w)), x0, loss_key,
        ts=self.sigmas(num_scales), skip=self.skip, process=d,
        metric=self.metric, weighting=self.weighting, num_scales=num_scales,
        starts=self.starts)
    return loss, self.schedule_metrics(num_scales)

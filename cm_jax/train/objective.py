"""From a config to the training objective: CT/iCT, CD or the EDM teacher.

``make_objective(config, example_shape)`` resolves every named choice once,
outside jit, through explicit dicts, and returns a pure function

    objective(online, target, x0, key, step, teacher=None) -> (loss [B], aux)

of raw networks ``net(x_in, c_noise) -> F`` (θ, θ⁻ and the teacher φ); the
objective applies the preconditioning it needs (``Diffusion``). N(k) and μ(k)
are computed from the traced step on a σ grid padded to the curriculum's
largest N, so a change of N never recompiles the step.
"""

import dataclasses
import functools
from typing import Callable

import jax.numpy as jnp
import numpy as np

from cm_jax import losses, parametrization, schedules, solvers
from cm_jax.nn import lpips


# A curriculum maps (config.curriculum, K) to (N(k) as a function of the
# traced step k, the largest N it reaches).


def _growing(num_scales):
  """N(k) growing from s0 to s1 + 1 over the run (CM §C.3 or iCT Table 1)."""
  def make(c, total_steps):
    return (functools.partial(num_scales, total_steps=total_steps, s0=c.s0,
                              s1=c.s1), c.s1 + 1)
  return make


def _fixed(c, total_steps):
  del total_steps
  return (lambda step: jnp.int32(c.num_scales)), c.num_scales


CURRICULA = {"ict": _growing(schedules.ict_num_scales),
             "ct": _growing(schedules.ct_num_scales), "fixed": _fixed}

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
  if name == "lpips":  # CM: VGG16 LPIPS on 224×224, weights from a local file
    return lpips.load_lpips(loss_config.lpips_weights)
  metric = resolve(losses.METRICS, name, "loss.metric")
  if name == "pseudo_huber":
    c = loss_config.huber_c
    if c is None or c <= 0:
      c = losses.ict_huber_c(int(np.prod(example_shape)))
    metric = functools.partial(metric, c=c)
  return metric


@dataclasses.dataclass(frozen=True)
class Diffusion:
  """EDM's constants: σ_min = ε, σ_max = T, ρ and σ_data."""

  sigma_min: float
  sigma_max: float
  rho: float
  sigma_data: float

  def consistency_fn(self, net):
    return parametrization.consistency_fn(net, self.sigma_data, self.sigma_min)

  def denoiser(self, net):
    return parametrization.edm_denoiser(net, self.sigma_data)


@dataclasses.dataclass(frozen=True)
class ConsistencyLoss:
  """The parts CT and CD share: the grid schedule N(k), μ(k), d and λ."""

  num_scales_fn: Callable
  max_scales: int
  target_mu_fn: Callable
  metric: Callable
  weighting: Callable
  diffusion: Diffusion

  def sigmas(self, num_scales):
    """The ascending grid for N = ``num_scales``, padded to ``max_scales``."""
    d = self.diffusion
    return schedules.karras_sigmas(num_scales, d.sigma_min, d.sigma_max, d.rho,
                                   size=self.max_scales)


@dataclasses.dataclass(frozen=True)
class ConsistencyTraining(ConsistencyLoss):
  """CM Alg. 3; iCT with lognormal p(i), λ = 1/Δσ, pseudo-Huber, μ = 0."""

  lognormal: tuple[float, float] | None = None  # (P_mean, P_std); None: uniform

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
    return loss, {"num_scales": num_scales,
                  "target_mu": self.target_mu_fn(num_scales)}


@dataclasses.dataclass(frozen=True)
class ConsistencyDistillation(ConsistencyLoss):
  """CM Alg. 2: one teacher ODE step (Heun by default) from t_{n+1} to t_n."""

  solver: str = "heun"

  def __call__(self, online, target, x0, key, step, teacher=None):
    num_scales = self.num_scales_fn(step)
    loss = losses.consistency_distillation_loss(
        self.diffusion.consistency_fn(online),
        self.diffusion.consistency_fn(target), self.diffusion.denoiser(teacher),
        x0, key, sigmas=self.sigmas(num_scales), solver=self.solver,
        metric=self.metric, weighting=self.weighting, num_scales=num_scales)
    return loss, {"num_scales": num_scales,
                  "target_mu": self.target_mu_fn(num_scales)}


@dataclasses.dataclass(frozen=True)
class DenoisingScoreMatching:
  """The EDM teacher (EDM eq. 8, lognormal σ). No target network: μ = 0."""

  p_mean: float
  p_std: float
  diffusion: Diffusion

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, step, teacher
    loss = losses.denoising_score_matching_loss(
        self.diffusion.denoiser(online), x0, key, p_mean=self.p_mean,
        p_std=self.p_std, sigma_data=self.diffusion.sigma_data)
    return loss, {"target_mu": jnp.float32(0.0)}


def _consistency_parts(config, example_shape):
  cur = config.curriculum
  num_scales_fn, max_scales = resolve(CURRICULA, cur.name, "curriculum.name")(
      cur, config.train.num_steps)
  return dict(
      num_scales_fn=num_scales_fn, max_scales=int(max_scales),
      target_mu_fn=resolve(TARGET_EMAS, config.target.ema, "target.ema")(
          config.target, cur.get("s0", 2)),
      metric=make_metric(config.loss, example_shape),
      weighting=resolve(schedules.WEIGHTINGS, config.loss.weighting,
                        "loss.weighting"),
      diffusion=Diffusion(**config.diffusion))


def _ct(config, example_shape):
  loss = config.loss
  lognormal = resolve({"uniform": None, "lognormal": (loss.p_mean, loss.p_std)},
                      loss.index_sampling, "loss.index_sampling")
  return ConsistencyTraining(lognormal=lognormal,
                             **_consistency_parts(config, example_shape))


def _cd(config, example_shape):
  if config.loss.index_sampling != "uniform":
    raise ValueError("method=cd draws n uniformly (CM Alg. 2); set "
                     "--config.loss.index_sampling=uniform.")
  solver = config.teacher.solver
  resolve(solvers.SOLVERS, solver, "teacher.solver")
  return ConsistencyDistillation(solver=solver,
                                 **_consistency_parts(config, example_shape))


def _edm(config, example_shape):
  del example_shape
  return DenoisingScoreMatching(p_mean=config.loss.p_mean,
                                p_std=config.loss.p_std,
                                diffusion=Diffusion(**config.diffusion))


METHODS = {"ct": _ct, "cd": _cd, "edm": _edm}


def make_objective(config, example_shape):
  """The objective of ``config.method``: ct (CM Alg. 3, iCT), cd (CM Alg. 2)
  or edm (the diffusion teacher)."""
  return resolve(METHODS, config.method, "method")(config, example_shape)

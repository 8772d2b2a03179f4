"""From a config to the training objective: CT/iCT, CD, LCD, LCF, the teacher
or the autoencoder of latent models.

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

import jax
import jax.numpy as jnp
import numpy as np

from cm_jax import losses, processes, schedules, solvers
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


# EDM's VE process (σ_min = ε, σ_max = T, ρ, σ_data); the name CM objectives
# and callers have always used. ``processes.VP`` is LCM's DDPM process.
Diffusion = processes.VE


@dataclasses.dataclass(frozen=True)
class ConsistencyLoss:
  """The parts CT and CD share: the grid schedule N(k), μ(k), d and λ."""

  num_scales_fn: Callable
  max_scales: int
  target_mu_fn: Callable
  metric: Callable
  weighting: Callable
  diffusion: Diffusion  # the noise process (VE or VP)

  def sigmas(self, num_scales):
    """The ascending grid for N = ``num_scales``, padded to ``max_scales``."""
    return self.diffusion.grid(num_scales, size=self.max_scales)


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


@dataclasses.dataclass(frozen=True)
class NoisePrediction:
  """The VP (DDPM, ε-prediction) teacher that LCM distils. μ = 0."""

  diffusion: processes.VP

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, step, teacher
    loss = losses.noise_prediction_loss(self.diffusion.denoiser(online), x0,
                                        key, process=self.diffusion)
    return loss, {"target_mu": jnp.float32(0.0)}


def sample_guidance(key, batch_size, w_min, w_max):
  """w ~ U[w_min, w_max] per example (LCM Alg. 1)."""
  return jax.random.uniform(key, (batch_size,), jnp.float32, w_min, w_max)


@dataclasses.dataclass(frozen=True)
class LatentConsistencyDistillation(ConsistencyLoss):
  """LCM Alg. 1: LCD through the CFG-augmented PF-ODE (LCM eq. 10).

  w ~ U[w_min, w_max] per example; the teacher step is Ψ (DDIM) with
  D̃ = (1 + w)·D(·, c) − w·D(·, ∅) from t_{n+k} to t_n (skipping-step
  k = ``skip``); f_θ and f_θ⁻ see w as an input when ``w_condition``. The
  train step hands the teacher as the pair (φ(·, c), φ(·, ∅)).
  """

  skip: int = 1
  solver: str = "ddim"
  w_min: float = 0.0
  w_max: float = 0.0
  w_condition: bool = False
  guided = True  # the train step passes (conditional, unconditional) teachers

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
        num_scales=num_scales)
    return loss, {"num_scales": num_scales,
                  "target_mu": self.target_mu_fn(num_scales)}


@dataclasses.dataclass(frozen=True)
class LatentConsistencyFinetuning(LatentConsistencyDistillation):
  """LCM Alg. 4 (LCF): no teacher; the skip-k pair shares one noise z, and w
  is drawn only as the network's input, so a trained LCM keeps its w."""

  guided = False

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
        metric=self.metric, weighting=self.weighting, num_scales=num_scales)
    return loss, {"num_scales": num_scales,
                  "target_mu": self.target_mu_fn(num_scales)}


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
      diffusion=processes.make_process(config))


def _check_ve(config):
  if config.get("process", "ve") != "ve":
    raise ValueError(f"method={config.method} runs on EDM's VE process (CM "
                     "Alg. 2–3); set --config.process=ve, or use method=lcd "
                     "or lcf for the VP process.")


def _ct(config, example_shape):
  _check_ve(config)
  loss = config.loss
  lognormal = resolve({"uniform": None, "lognormal": (loss.p_mean, loss.p_std)},
                      loss.index_sampling, "loss.index_sampling")
  return ConsistencyTraining(lognormal=lognormal,
                             **_consistency_parts(config, example_shape))


@dataclasses.dataclass(frozen=True)
class AutoencoderLoss:
  """The KL autoencoder of latent models (LDM §3): d(x, x̂) + β·KL. ``online``
  is the KLAutoencoder's training pass (its reparametrisation noise comes
  from the step's dropout key); no target network: μ = 0."""

  metric: Callable
  kl_weight: float

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, key, step, teacher
    loss, rec, kl = losses.autoencoder_loss(
        lambda x: online(x, None), x0, metric=self.metric,
        kl_weight=self.kl_weight)
    return loss, {"target_mu": jnp.float32(0.0), "rec": rec.mean(),
                  "kl": kl.mean()}


def _ae(config, example_shape):
  if config.model.name != "autoencoder":
    raise ValueError("method=ae trains the KL autoencoder; set "
                     "--config.model.name=autoencoder.")
  if config.loss.metric not in ("l1", "l2"):
    raise ValueError(f"method=ae reconstructs with loss.metric=l1 or l2, got "
                     f"{config.loss.metric!r}; set --config.loss.metric=l1.")
  if config.loss.kl_weight < 0:
    raise ValueError(f"loss.kl_weight must be ≥ 0, got "
                     f"{config.loss.kl_weight}.")
  return AutoencoderLoss(metric=make_metric(config.loss, example_shape),
                         kl_weight=float(config.loss.kl_weight))


def _cd(config, example_shape):
  _check_ve(config)
  if config.loss.index_sampling != "uniform":
    raise ValueError("method=cd draws n uniformly (CM Alg. 2); set "
                     "--config.loss.index_sampling=uniform.")
  solver = config.teacher.solver
  resolve(solvers.SOLVERS, solver, "teacher.solver")
  return ConsistencyDistillation(solver=solver,
                                 **_consistency_parts(config, example_shape))


def _edm(config, example_shape):
  del example_shape
  process = processes.make_process(config)
  if isinstance(process, processes.VP):  # LCM's ε-prediction teacher
    return NoisePrediction(diffusion=process)
  return DenoisingScoreMatching(p_mean=config.loss.p_mean,
                                p_std=config.loss.p_std, diffusion=process)


def _lcm_parts(config, example_shape):
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
  if config.loss.index_sampling != "uniform":
    raise ValueError("LCM draws n uniformly (LCM Alg. 1, 4); set "
                     "--config.loss.index_sampling=uniform.")
  return dict(skip=int(lcm.skip), w_min=float(lcm.w_min),
              w_max=float(lcm.w_max),
              w_condition=bool(config.model.get("w_embedding", False)),
              **_consistency_parts(config, example_shape))


def _lcd(config, example_shape):
  solver = config.teacher.solver
  resolve(solvers.SOLVERS, solver, "teacher.solver")
  if solver == "heun" and config.get("process", "ve") != "ve":
    raise ValueError("teacher.solver=heun is written for the VE process; "
                     "use --config.teacher.solver=ddim (LCM) for process=vp.")
  return LatentConsistencyDistillation(solver=solver,
                                       **_lcm_parts(config, example_shape))


def _lcf(config, example_shape):
  return LatentConsistencyFinetuning(**_lcm_parts(config, example_shape))


METHODS = {"ct": _ct, "cd": _cd, "edm": _edm, "lcd": _lcd, "lcf": _lcf,
           "ae": _ae}


def make_objective(config, example_shape):
  """The objective of ``config.method``: ct (CM Alg. 3, iCT), cd (CM Alg. 2),
  edm (the diffusion teacher, VE or VP), lcd (LCM Alg. 1), lcf (LCM
  Alg. 4) or ae (the autoencoder of latent models)."""
  return resolve(METHODS, config.method, "method")(config, example_shape)

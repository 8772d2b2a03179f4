"""What every objective shares: its declaration of needs, the curricula N(k),
the target schedules μ(k), the metric d and the consistency-loss parts.

An objective is a frozen dataclass, callable as

    objective(online, target, x0, key, step, teacher=None) -> (loss [B], aux)

on raw networks ``net(x_in, c_noise) -> F`` (θ, θ⁻ and the teacher φ); it
applies the preconditioning of its noise process itself. ``aux`` holds at
least ``target_mu`` (μ(k) of θ⁻ ← μθ⁻ + (1 − μ)θ). Its class attribute
``needs`` (a ``Needs``) says what it asks of the loop and the modes, which
read it and never branch on method names. N(k) and μ(k) are computed from
the traced step on a σ grid padded to the curriculum's largest N, so a
change of N never recompiles the step.
"""

import dataclasses
import functools
from typing import Callable

import jax.numpy as jnp
import numpy as np

from cm_jax import losses, processes, registry, schedules
from cm_jax.nn import lpips

# How a trained model of each objective is sampled (``cm_jax.generate``).
SAMPLER_KINDS = ("consistency", "diffusion", "flow_map", "reconstruct")


@dataclasses.dataclass(frozen=True)
class Needs:
  """What an objective asks of the loop and the modes.

  Attributes:
    teacher: methods whose run the step's teacher or the start may be
      (``run_field`` names it); () = none.
    teacher_what: how errors name that run ("a trained EDM teacher").
    teacher_in_step: the train step evaluates φ (CD, LCD); otherwise the
      teacher run only provides starting weights (LCF).
    teacher_dropout: φ runs with θ's dropout key (TCM: the stage-1 model
      draws the student's dropout masks); otherwise without dropout.
    guided_teacher: φ is handed to the objective as the CFG pair
      (φ(·, c), φ(·, ∅)) (LCM eq. 10).
    init_from_teacher: "never", "option" (``teacher.init_student``: the CM
      paper's choice for CD) or "always" (LCF starts from the trained LCM).
    student_may_add: model fields the student may add over the teacher's
      network, parameters that start as no-ops (LCD: LCM's w embedding).
    same_process_as_teacher: the teacher must share the noise process.
    label_dropout: train with ``diffusion_model.label_dropout`` (a CFG
      diffusion teacher).
    guidance_input: the network may take LCM's guidance scale w as an input
      (``model.w_embedding``).
    guidance_interval_input: the network may take iMF's guidance scale ω
      and interval [t_min, t_max] as inputs (``model.guidance_inputs``).
    sampler: one of ``SAMPLER_KINDS``: consistency (CM Alg. 1, LCM Alg. 3),
      diffusion (EDM's ODE sampler, DDIM, flow matching's Euler), flow_map
      (jumps z_r = z_t − (t − r)·u, MeanFlow eq. 12) or reconstruct
      (autoencoders).
    forward_mode: the loss takes JVPs through the network (sCM's tangent);
      otherwise the step traces GroupNorm's fused reverse-only backward
      (``cm_jax.nn.group_norm.fused_backward``).
    teacher_optional: the run (``init.workdir``) may be empty (ECT: tuning
      a diffusion run, or training from scratch).
    network: the one ``model.name`` the method trains, which no other method
      trains ("" = any denoising network).
  """

  teacher: tuple[str, ...] = ()
  teacher_what: str = ""
  teacher_in_step: bool = False
  teacher_dropout: bool = False
  guided_teacher: bool = False
  init_from_teacher: str = "never"
  student_may_add: tuple[str, ...] = ()
  same_process_as_teacher: bool = False
  label_dropout: bool = False
  guidance_input: bool = False
  guidance_interval_input: bool = False
  sampler: str = "consistency"
  forward_mode: bool = False
  teacher_optional: bool = False
  network: str = ""

  @property
  def run_field(self):
    """The config field that names the ``teacher`` run: teacher.workdir for
    a teacher the step evaluates (CD, LCD, sCD, TCM), init.workdir for a run θ
    only starts from (ECT, sCT: tuning; LCF: the LCM)."""
    return "teacher.workdir" if self.teacher_in_step else "init.workdir"


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


def make_metric(loss_config, example_shape):
  """d(·,·) by name, summed or averaged over an example's elements
  (``loss.reduction``); pseudo-Huber's c defaults to iCT's 0.00054·√d
  (sum) or the official LCM script's 0.001 per element (mean)."""
  name, reduction = loss_config.metric, loss_config.reduction
  registry.lookup(losses.REDUCTIONS, reduction, "loss.reduction")
  if name == "lpips":  # CM: VGG16 LPIPS on 224×224
    if reduction != "sum":
      raise ValueError("loss.metric=lpips is already a per-image average; "
                       "set --config.loss.reduction=sum.")
    return lpips.load_lpips(loss_config.lpips_weights)
  metric = functools.partial(
      registry.lookup(losses.METRICS, name, "loss.metric"),
      reduction=reduction)
  if name == "pseudo_huber":
    c = loss_config.huber_c
    if c is None or c <= 0:
      c = (losses.LCM_HUBER_C if reduction == "mean"
           else losses.ict_huber_c(int(np.prod(example_shape))))
    metric = functools.partial(metric, c=c)
  return metric


@dataclasses.dataclass(frozen=True)
class ConsistencyLoss:
  """The parts CT, CD, LCD and LCF share: the grid schedule N(k), μ(k), d
  and λ, on a noise process (VE or VP)."""

  num_scales_fn: Callable
  max_scales: int
  target_mu_fn: Callable
  metric: Callable
  weighting: Callable
  diffusion: processes.VE | processes.VP

  def sigmas(self, num_scales):
    """The ascending grid for N = ``num_scales``, padded to ``max_scales``."""
    return self.diffusion.grid(num_scales, size=self.max_scales)

  def schedule_metrics(self, num_scales):
    return {"num_scales": num_scales,
            "target_mu": self.target_mu_fn(num_scales)}


def consistency_parts(config, example_shape):
  """The ``ConsistencyLoss`` fields of ``config``, every name resolved."""
  cur = config.curriculum
  num_scales_fn, max_scales = registry.lookup(
      CURRICULA, cur.name, "curriculum.name")(cur, config.train.num_steps)
  return dict(
      num_scales_fn=num_scales_fn, max_scales=int(max_scales),
      target_mu_fn=registry.lookup(TARGET_EMAS, config.target.ema,
                                   "target.ema")(config.target, cur.s0),
      metric=make_metric(config.loss, example_shape),
      weighting=make_weighting(config),
      diffusion=processes.make_process(config))


def make_weighting(config):
  """λ(σ_i, σ_{i+1}) named by ``loss.weighting``, at the run's σ_d."""
  return schedules.weighting(
      registry.lookup(schedules.WEIGHTINGS, config.loss.weighting,
                      "loss.weighting"), config.diffusion.sigma_data)


# iCT's P_mean, P_std of the lognormal p(i) (iCT §3.5): loss.p_mean/p_std.
ICT_LOGNORMAL = (-1.1, 2.0)


def own_lognormal(config, group):
  """(P_mean, P_std) of the lognormal time law in ``config[group]``, the
  method's own; a one-line error if loss.p_mean/p_std (iCT's index law,
  which this method does not read) were changed instead."""
  loss = (config.loss.p_mean, config.loss.p_std)
  if tuple(loss) != ICT_LOGNORMAL:
    raise ValueError(
        f"method={config.method} draws its times from {group}.p_mean/p_std;"
        f" loss.p_mean/p_std={list(loss)} are iCT's index law, which it does "
        f"not read: set --config.{group}.p_mean=... and --config.{group}."
        f"p_std=... instead.")
  return float(config[group].p_mean), float(config[group].p_std)


def check_ve(config):
  """CM Alg. 2–3 are written for EDM's VE process."""
  if config.process != "ve":
    raise ValueError(f"method={config.method} runs on EDM's VE process (CM "
                     "Alg. 2–3); set --config.process=ve, or use method=lcd "
                     "or lcf for the VP process.")


def check_uniform_index(config, what):
  if config.loss.index_sampling != "uniform":
    raise ValueError(f"{what} draws n uniformly; set "
                     "--config.loss.index_sampling=uniform.")

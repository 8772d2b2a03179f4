"""The diffusion teachers that CD, LCD and sCD distil: EDM's denoiser (VE),
the DDPM ε-prediction network of LCM (VP), sCM's TrigFlow model and flow
matching on the linear process. No target network: μ = 0."""

import dataclasses

import jax.numpy as jnp
import ml_collections

from cm_jax import losses, processes
from cm_jax.methods.base import Needs, own_lognormal

GROUP = "diffusion_model"  # config.diffusion_model (config.diffusion: σ's)


def config():
  """config.diffusion_model: the time law of the diffusion loss and the
  label dropout of a conditional one (for classifier-free guidance)."""
  c = ml_collections.ConfigDict()
  # ln σ ~ N(p_mean, p_std²) (EDM §5: −1.2, 1.2); on TrigFlow of
  # σ = σ_d·tan t (sCM's teacher: EDM's settings); on the linear process of
  # σ = t/(1 − t), i.e. logit t ~ N(p_mean, p_std²), flow matching's
  # logit-normal (SD3: 0, 1; MeanFlow: −0.4, 1.0); DDPM's ε-loss draws its
  # steps uniformly.
  c.p_mean = -1.2
  c.p_std = 1.2
  # A conditional teacher: p(label → null, context → 0), for CFG.
  c.label_dropout = 0.1
  return c


# Conditional teachers train with label dropout, for classifier-free guidance.
TEACHER_NEEDS = Needs(label_dropout=True, sampler="diffusion")


class _LognormalTimes:
  """``from_config`` of the losses that draw ln σ (TrigFlow: of σ_d·tan t)
  ~ N(diffusion_model.p_mean, p_std²)."""

  @classmethod
  def from_config(cls, config, process):
    p_mean, p_std = own_lognormal(config, GROUP)
    return cls(p_mean=p_mean, p_std=p_std, diffusion=process)


@dataclasses.dataclass(frozen=True)
class DenoisingScoreMatching(_LognormalTimes):
  """The EDM teacher (EDM eq. 8, lognormal σ)."""

  needs = TEACHER_NEEDS
  p_mean: float
  p_std: float
  diffusion: processes.VE

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, step, teacher
    loss = losses.denoising_score_matching_loss(
        self.diffusion.denoiser(online), x0, key, p_mean=self.p_mean,
        p_std=self.p_std, sigma_data=self.diffusion.sigma_data)
    return loss, {"target_mu": jnp.float32(0.0)}


@dataclasses.dataclass(frozen=True)
class NoisePrediction:
  """The VP (DDPM, ε-prediction) teacher that LCM distils."""

  needs = TEACHER_NEEDS
  diffusion: processes.VP

  @classmethod
  def from_config(cls, config, process):
    del config
    return cls(diffusion=process)

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, step, teacher
    loss = losses.noise_prediction_loss(self.diffusion.denoiser(online), x0,
                                        key, process=self.diffusion)
    return loss, {"target_mu": jnp.float32(0.0)}


@dataclasses.dataclass(frozen=True)
class TrigFlowDiffusion(_LognormalTimes):
  """The TrigFlow diffusion teacher (``losses.trigflow_diffusion_loss``):
  method=diffusion with process=trigflow."""

  needs = TEACHER_NEEDS
  p_mean: float
  p_std: float
  diffusion: processes.TrigFlow

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, step, teacher
    d = self.diffusion
    loss = losses.trigflow_diffusion_loss(
        d.velocity_net(online), x0, key, p_mean=self.p_mean, p_std=self.p_std,
        sigma_data=d.sigma_data)
    return loss, {"target_mu": jnp.float32(0.0)}


@dataclasses.dataclass(frozen=True)
class FlowMatching(_LognormalTimes):
  """Flow matching on the linear process (``losses.flow_matching_loss``;
  logit t ~ N(p_mean, p_std²), ln σ of σ = t/(1 − t)): method=diffusion
  with process=linear, the flow-matching teacher."""

  needs = TEACHER_NEEDS
  p_mean: float
  p_std: float
  diffusion: processes.Linear

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, step, teacher
    loss = losses.flow_matching_loss(
        self.diffusion.velocity(online), x0, key, p_mean=self.p_mean,
        p_std=self.p_std)
    return loss, {"target_mu": jnp.float32(0.0)}


# The diffusion loss of each kind of network prediction (``prediction`` of
# the process: EDM's x̂0, DDPM's ε, TrigFlow's velocity, flow matching's v).
LOSSES = {"x0": DenoisingScoreMatching, "epsilon": NoisePrediction,
          "velocity": TrigFlowDiffusion, "flow_velocity": FlowMatching}


class DiffusionTeacher:
  """method=diffusion: the diffusion loss of the process's network prediction:
  EDM's objective (x̂0, VE), DDPM's ε-prediction (VP), TrigFlow's flow
  matching (velocity, sCM §2.1), flow matching (v = ε − x0, linear)."""

  needs = TEACHER_NEEDS

  @staticmethod
  def from_config(config, example_shape):
    del example_shape
    process = processes.make_process(config)
    return LOSSES[process.prediction].from_config(config, process)

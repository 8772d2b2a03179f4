"""The diffusion teachers that CD, LCD and sCD distil: EDM's denoiser (VE),
the DDPM ε-prediction network of LCM (VP) and sCM's TrigFlow model. No
target network: μ = 0."""

import dataclasses

import jax.numpy as jnp

from cm_jax import losses, processes
from cm_jax.train.objectives.base import Needs
from cm_jax.train.objectives.continuous import TrigFlowDiffusion

# Conditional teachers train with label dropout, for classifier-free guidance.
TEACHER_NEEDS = Needs(label_dropout=True, sampler="diffusion")


@dataclasses.dataclass(frozen=True)
class DenoisingScoreMatching:
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

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, step, teacher
    loss = losses.noise_prediction_loss(self.diffusion.denoiser(online), x0,
                                        key, process=self.diffusion)
    return loss, {"target_mu": jnp.float32(0.0)}


class DiffusionTeacher:
  """method=edm: EDM's objective on the VE process, ε-prediction on VP,
  TrigFlow's flow matching (sCM §2.1) on TrigFlow."""

  needs = TEACHER_NEEDS

  @staticmethod
  def from_config(config, example_shape):
    del example_shape
    process = processes.make_process(config)
    if isinstance(process, processes.VP):
      return NoisePrediction(diffusion=process)
    if isinstance(process, processes.TrigFlow):  # sCM's teacher
      return TrigFlowDiffusion(p_mean=config.loss.p_mean,
                               p_std=config.loss.p_std, diffusion=process)
    return DenoisingScoreMatching(p_mean=config.loss.p_mean,
                                  p_std=config.loss.p_std, diffusion=process)

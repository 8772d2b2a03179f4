"""The KL autoencoder of latent models (LDM §3): d(x, x̂) + β·KL."""

import dataclasses
from typing import Callable

import jax.numpy as jnp

from cm_jax import losses
from cm_jax.methods.base import Needs, make_metric


@dataclasses.dataclass(frozen=True)
class AutoencoderLoss:
  """``online`` is the KLAutoencoder's training pass (its reparametrisation
  noise comes from the step's dropout key); no target network: μ = 0."""

  needs = Needs(sampler="reconstruct", network="autoencoder")
  metric: Callable
  kl_weight: float

  @classmethod
  def from_config(cls, config, example_shape):
    if config.model.name != "autoencoder":
      raise ValueError("method=ae trains the KL autoencoder; set "
                       "--config.model.name=autoencoder.")
    if config.loss.metric not in ("l1", "l2"):
      raise ValueError(f"method=ae reconstructs with loss.metric=l1 or l2, "
                       f"got {config.loss.metric!r}; set "
                       "--config.loss.metric=l1.")
    if config.loss.kl_weight < 0:
      raise ValueError(f"loss.kl_weight must be ≥ 0, got "
                       f"{config.loss.kl_weight}.")
    return cls(metric=make_metric(config.loss, example_shape),
               kl_weight=float(config.loss.kl_weight))

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, key, step, teacher
    loss, rec, kl = losses.autoencoder_loss(
        lambda x: online(x, None), x0, metric=self.metric,
        kl_weight=self.kl_weight)
    return loss, {"target_mu": jnp.float32(0.0), "rec": rec.mean(),
                  "kl": kl.mean()}

"""From a config to the training objective, by ``config.method``.

Adding a method: its loss in ``cm_jax/losses.py``, one objective here (a
frozen dataclass with ``needs``, ``from_config`` and ``__call__``; see
``base.py``), its name in ``METHODS``, one config, and tests.
"""

from cm_jax import registry
from cm_jax.train.objectives.autoencoder import AutoencoderLoss
from cm_jax.train.objectives.base import (CURRICULA, SAMPLER_KINDS,
                                          TARGET_EMAS, ConsistencyLoss, Needs,
                                          make_metric)
from cm_jax.train.objectives.consistency import (ConsistencyDistillation,
                                                 ConsistencyTraining,
                                                 EasyConsistencyTraining)
from cm_jax.train.objectives.continuous import (
    SimplifiedConsistencyDistillation, SimplifiedConsistencyTraining)
from cm_jax.train.objectives.diffusion import (DenoisingScoreMatching,
                                               DiffusionTeacher,
                                               NoisePrediction)
from cm_jax.train.objectives.latent import (LatentConsistencyDistillation,
                                            LatentConsistencyFinetuning,
                                            sample_guidance)

# config.method → a class with ``needs`` and ``from_config(config,
# example_shape)`` → the objective.
METHODS = {
    "ct": ConsistencyTraining,  # CM Alg. 3, iCT
    "cd": ConsistencyDistillation,  # CM Alg. 2
    "ect": EasyConsistencyTraining,  # ECT (Geng et al. 2024)
    "sct": SimplifiedConsistencyTraining,  # sCM Alg. 1 (Lu & Song 2024)
    "scd": SimplifiedConsistencyDistillation,  # sCM Alg. 1, distillation
    "edm": DiffusionTeacher,  # EDM eq. 8 (VE) / DDPM ε (VP) / TrigFlow v
    "lcd": LatentConsistencyDistillation,  # LCM Alg. 1
    "lcf": LatentConsistencyFinetuning,  # LCM Alg. 4
    "ae": AutoencoderLoss,  # the KL autoencoder of latent models
}


def make_objective(config, example_shape):
  """The objective of ``config.method``, every named choice resolved."""
  method = registry.lookup(METHODS, config.method, "method")
  return method.from_config(config, example_shape)


def needs_of(method):
  """The ``Needs`` of ``method`` (a name), without building its objective."""
  return registry.lookup(METHODS, method, "method").needs

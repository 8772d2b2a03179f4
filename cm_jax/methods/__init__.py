"""The methods, one module each, and their registry (``config.method``).

A method's module holds its objective (a frozen dataclass with ``needs``,
``from_config`` and ``__call__``; see ``base.py``), which calls the pure
losses of ``cm_jax/losses.py``, and, where it has settings of its own, its
config group (``GROUP`` and ``config()``, the paper's defaults, which
``configs/base.py`` declares in every config) and ``configure(c, ...)``, the
paper's recipe of it that recipes call. Adding a method: its module here,
its name in ``METHODS``, its loss in ``losses.py``, its recipes and tests
(docs/design.md, "Adding a method").
"""

from cm_jax import registry
from cm_jax import checkpoint
from cm_jax.methods import (ae, cd, ct, diffusion, ect, lcm, meanflow, scm,
                            shortcut, tcm)
from cm_jax.methods.base import Needs

# config.method → a class with ``needs`` and ``from_config(config,
# example_shape)`` → the objective.
METHODS = {
    "ct": ct.ConsistencyTraining,  # CM Alg. 3, iCT
    "cd": cd.ConsistencyDistillation,  # CM Alg. 2
    "ect": ect.EasyConsistencyTraining,  # ECT (Geng et al. 2024)
    # TCM's stage 2 (Lee et al. 2025); its stage 1 is a run of method=ect.
    "tcm": tcm.TruncatedConsistencyTraining,
    "sct": scm.SimplifiedConsistencyTraining,  # sCM Alg. 1 (Lu & Song 2024)
    "scd": scm.SimplifiedConsistencyDistillation,  # sCM Alg. 1, distillation
    # The diffusion model (the teacher): EDM eq. 8 (VE) / DDPM ε (VP) /
    # TrigFlow's flow matching (sCM §2.1), by the process's prediction.
    "diffusion": diffusion.DiffusionTeacher,
    "lcd": lcm.LatentConsistencyDistillation,  # LCM Alg. 1
    "lcf": lcm.LatentConsistencyFinetuning,  # LCM Alg. 4
    "ae": ae.AutoencoderLoss,  # the KL autoencoder of latent models
    # Flow maps u(z, r, t) on the linear process.
    "meanflow": meanflow.MeanFlow,  # MeanFlow Alg. 1 (Geng et al. 2025)
    "imf": meanflow.ImprovedMeanFlow,  # improved MeanFlow (Geng, Lu et al.)
    "shortcut": shortcut.ShortcutModel,  # shortcut models (Frans et al. 2025)
}

# The method modules with a config group of their own, in config order.
CONFIG_MODULES = (lcm, ect, tcm, scm, diffusion, meanflow, shortcut)


def config_groups():
  """{group name: its ConfigDict of defaults} of every method module."""
  return {module.GROUP: module.config() for module in CONFIG_MODULES}


def lookup(name):
  """The objective class of the method ``name``; a one-line error for an
  unknown name, or for a name a method had before (runs saved under it
  still read: ``checkpoint.RENAMED_METHODS``)."""
  if name in checkpoint.RENAMED_METHODS:
    new = checkpoint.RENAMED_METHODS[name]
    raise ValueError(f"method={name} is now method={new}; set "
                     f"--config.method={new}.")
  return registry.lookup(METHODS, name, "method")


def make_objective(config, example_shape):
  """The objective of ``config.method``, every named choice resolved."""
  return lookup(config.method).from_config(config, example_shape)


def needs_of(method):
  """The ``Needs`` of ``method`` (a name), without building its objective."""
  return lookup(method).needs


def with_sampler(kind):
  """The method names whose models are sampled as ``kind``."""
  return [name for name, method in METHODS.items()
          if method.needs.sampler == kind]

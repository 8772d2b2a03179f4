"""Networks F_θ. Every model is called the same way:

  model.apply({"params": params}, x, c_noise, labels=None, w=None,
              context=None, train=False, rngs={"dropout": key})
      → float32 array of x's shape

x: [B, H, W, C] images (UNet) or [B, D] vectors (MLP); c_noise [B]: the already
preconditioned noise input (EDM: ¼·ln σ); labels: int32 [B] when num_classes > 0
(num_classes = null class; None = all null); w: float32 [B], LCM's guidance
scale, required iff w_embedding; context: float32 [B, context_dim], any
per-example embedding vector, when context_dim > 0 (the zero vector = the null
context; None = all null); train switches dropout on.

The autoencoder of latent models (`model.name = "autoencoder"`, method=ae)
takes the same call and returns (x̂, μ, logvar); see `autoencoder.py`.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from cm_jax import registry

from cm_jax.nn.autoencoder import KLAutoencoder
from cm_jax.nn.mlp import MLP
from cm_jax.nn.unet import UNet

MODELS = {"unet": UNet, "mlp": MLP, "autoencoder": KLAutoencoder}


def model_fields(cls) -> list[str]:
  """The config fields a model accepts (its dataclass fields)."""
  return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name")]


def get_model(model_config) -> nn.Module:
  """Builds the network named by `model_config.name` from the other fields."""
  kwargs = dict(model_config.to_dict() if hasattr(model_config, "to_dict") else model_config)
  name = kwargs.pop("name", None)
  cls = registry.lookup(MODELS, name, "model.name")
  valid = model_fields(cls)
  unknown = sorted(set(kwargs) - set(valid))
  if unknown:
    raise ValueError(f"Unknown field(s) {', '.join('model.' + k for k in unknown)} for "
                     f"model {name!r}; valid fields: {', '.join(valid)}.")
  for key, value in kwargs.items():
    if isinstance(value, list):  # command-line overrides may give lists
      kwargs[key] = tuple(value)
  if isinstance(kwargs.get("dtype"), str):  # "bfloat16" in configs
    kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
  return cls(**kwargs)


def model_defaults(name):
  """{field: default} of the network named ``name`` (what a config that
  does not set a field implies)."""
  cls = MODELS[name]
  return {f.name: f.default for f in dataclasses.fields(cls)
          if f.init and f.name not in ("parent", "name")
          and f.default is not dataclasses.MISSING}


def network(model, params, labels=None, dropout_key=None, *, context=None,
            augment_labels=None):
  """The raw net(x_in, c_noise, w=None) → F of ``model`` at ``params``;
  ``labels`` None is the null class, ``context`` [B, D] None the null (zero)
  context; ``w`` is LCM's guidance scale [B] (models with w_embedding);
  ``augment_labels`` [B, 9] those of EDM's augmentation (models with
  augment_dim; None = no transform); dropout on iff a key is given.
  ``return_weight=True`` returns (F, w_φ) of a model with
  ``adaptive_weight`` (sCM)."""
  extra = {} if augment_labels is None else {"augment_labels": augment_labels}

  def net(x, c_noise, w=None, return_weight=False):
    rngs = None if dropout_key is None else {"dropout": dropout_key}
    return model.apply({"params": params}, x, c_noise, labels, w, context,
                       train=dropout_key is not None, rngs=rngs,
                       return_weight=return_weight, **extra)
  return net


def dummy_inputs(model, example_shape, batch_size=1):
  """Inputs that trace ``model`` once: (x, c_noise, labels, w). A model with
  ``context_dim`` > 0 traces with context None, the null context, which
  builds the same parameters as a real one."""
  x = jnp.zeros((batch_size, *example_shape), jnp.float32)
  c_noise = jnp.zeros((batch_size,), jnp.float32)
  labels = (jnp.zeros((batch_size,), jnp.int32)
            if getattr(model, "num_classes", 0) else None)
  w = (jnp.zeros((batch_size,), jnp.float32)
       if getattr(model, "w_embedding", False) else None)
  return x, c_noise, labels, w

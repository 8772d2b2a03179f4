"""Networks F_θ. Every model is called the same way:

  model.apply({"params": params}, x, cond, train=False,
              rngs={"dropout": key}) → float32 array of x's shape

x: [B, H, W, C] images (UNet, DiT, ImfDiT) or [B, D] vectors (MLP); cond: a ``Condition``
(``embeddings.py``), one pytree of what the network is conditioned on: c_noise
[B], the already preconditioned noise input (EDM: ¼·ln σ), and optionally
labels, w (LCM's guidance scale), a context vector and EDM's augmentation
labels; train switches dropout on.

The autoencoder of latent models (`model.name = "autoencoder"`, method=ae)
takes the same call and returns (x̂, μ, logvar); see `autoencoder.py`.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from cm_jax import registry

from cm_jax.nn.autoencoder import KLAutoencoder
from cm_jax.nn.dit import DiT
from cm_jax.nn.embeddings import Condition
from cm_jax.nn.imf_dit import ImfDiT
from cm_jax.nn.mlp import MLP
from cm_jax.nn.unet import UNet

MODELS = {"unet": UNet, "mlp": MLP, "dit": DiT, "imf_dit": ImfDiT,
          "autoencoder": KLAutoencoder}


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


def network(model, params, cond=None, dropout_key=None):
  """The raw net(x, c_noise, w=None) → F of ``model`` at ``params``,
  conditioned on ``cond`` (a ``Condition`` whose c_noise and w each call
  sets; None: unconditional, the null class and context, no augmentation);
  ``w`` is LCM's guidance scale [B] (models with w_embedding), further
  keywords set other ``Condition`` fields; dropout on iff a key is given.
  ``return_weight=True`` returns (F, w_φ) of a model with
  ``adaptive_weight`` (sCM); ``return_v=True`` returns (u, v) of a model
  with iMF's auxiliary v head. ``net.condition`` is ``cond``: an objective
  that guides with its own network (MeanFlow) reads the labels there and
  calls ``net(..., labels=...)`` with others."""
  given = Condition() if cond is None else cond

  def net(x, c_noise, w=None, return_weight=False, return_v=False,
          **inputs):
    rngs = None if dropout_key is None else {"dropout": dropout_key}
    heads = {"return_v": True} if return_v else {}  # iMF's (u, v)
    return model.apply({"params": params}, x,
                       given.replace(c_noise=c_noise, w=w, **inputs),
                       train=dropout_key is not None, rngs=rngs,
                       return_weight=return_weight, **heads)
  net.condition = given
  return net


def dummy_inputs(model, example_shape, batch_size=1):
  """Inputs that trace ``model`` once: (x, cond), cond a ``Condition`` of
  c_noise, c_step (a ``two_time`` model), labels, w and iMF's guidance
  (unguided: ω = 1 over [0, 1]). A model with ``context_dim`` > 0 traces with
  context None, the null context, which builds the same parameters as a real
  one."""
  x = jnp.zeros((batch_size, *example_shape), jnp.float32)
  c_noise = jnp.zeros((batch_size,), jnp.float32)
  labels = (jnp.zeros((batch_size,), jnp.int32)
            if getattr(model, "num_classes", 0) else None)
  w = (jnp.zeros((batch_size,), jnp.float32)
       if getattr(model, "w_embedding", False) else None)
  c_step = c_noise if getattr(model, "two_time", False) else None
  guidance = (jnp.tile(jnp.array([[1.0, 0.0, 1.0]]), (batch_size, 1))
              if getattr(model, "guidance_inputs", False) else None)
  return x, Condition(c_noise=c_noise, c_step=c_step, labels=labels, w=w,
                      guidance=guidance)

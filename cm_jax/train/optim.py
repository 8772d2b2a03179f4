"""Optimizers by name (RAdam for CM/iCT, Adam for the EDM teacher, AdamW
for shortcut models)."""

import functools

import optax

from cm_jax import registry

OPTIMIZERS = {"radam": optax.radam, "adam": optax.adam,
              # Decoupled weight decay (Loshchilov & Hutter 2019) on every
              # parameter, as optax.adamw with no mask (shortcut models).
              "adamw": optax.adamw}


def learning_rate_schedule(optim_config):
  """Constant lr, after an optional linear warm-up (EDM's teacher uses one)."""
  if optim_config.warmup_steps > 0:
    return optax.linear_schedule(0.0, optim_config.lr, optim_config.warmup_steps)
  return optax.constant_schedule(optim_config.lr)


def make_optimizer(optim_config):
  """The optax transformation named by ``optim_config.name``."""
  make = registry.lookup(OPTIMIZERS, optim_config.name, "optim.name")
  if optim_config.name == "adamw":
    make = functools.partial(make, weight_decay=optim_config.weight_decay)
  elif optim_config.weight_decay:
    raise ValueError(f"optim.weight_decay={optim_config.weight_decay} is "
                     f"read by optim.name=adamw only, not {optim_config.name}"
                     "; set --config.optim.name=adamw or optim.weight_decay=0.")
  tx = make(learning_rate_schedule(optim_config), b1=optim_config.b1,
            b2=optim_config.b2, eps=optim_config.eps)
  if optim_config.grad_clip > 0:
    tx = optax.chain(optax.clip_by_global_norm(optim_config.grad_clip), tx)
  return tx

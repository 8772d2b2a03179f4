"""Typed keys for one batch or one per example.

A sampler's key is either one key (noise of the whole batch from it) or a key
per example, shape [B]: then example i's noise depends on its own key alone,
so samples are a function of (seed, sample index) and do not change with the
batch size or the device count (as EDM's per-seed generators).
"""

import jax
import jax.numpy as jnp


def per_example(key, start, num):
  """Keys fold_in(key, i) of examples i = start … start + num − 1, [num]."""
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(
      start + jnp.arange(num))


def normal(key, shape):
  """N(0, I) of ``shape`` from one key, or from a key per example ([B])."""
  if key.ndim == 0:
    return jax.random.normal(key, shape)
  return jax.vmap(lambda k: jax.random.normal(k, shape[1:]))(key)


def split(key, num=2):
  """``jax.random.split`` of one key, or of each key per example: [num, B]."""
  if key.ndim == 0:
    return jax.random.split(key, num)
  return jnp.swapaxes(jax.vmap(lambda k: jax.random.split(k, num))(key), 0, 1)

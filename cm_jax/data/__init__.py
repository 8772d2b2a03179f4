"""Data sources (digits, toy2d, npz, images, tfds, latents) and deterministic
sharded iterators.

  source = get_source(config.data)          # Random access, numpy batches.
  it = make_iterator(config.data, global_batch_size=512, seed=0)
  batch = next(it)                          # {"x": float32, "y": int32}
"""

from cm_jax.data.base import ArraySource, Batch, Source
from cm_jax.data.iterator import DataIterator, make_iterator
from cm_jax.data.sources import (TfdsSource, describe, get_source,
                                  ignored_resolution)
from cm_jax.data.toy2d import GaussianMixtureSource

__all__ = [
    "ArraySource",
    "Batch",
    "DataIterator",
    "GaussianMixtureSource",
    "Source",
    "TfdsSource",
    "describe",
    "get_source",
    "ignored_resolution",
    "make_iterator",
]

"""Deterministic, resumable, host-sharded batches over a `Source`.

Batches are a pure function of (seed, position). Global batch p holds the
items [p·B, (p+1)·B) of an endless stream that visits every example once per
epoch, epoch e in the order `np.random.default_rng([seed, e]).permutation(N)`.
A batch that straddles an epoch boundary takes the end of one epoch and the
start of the next: nothing is dropped. Each host reads only its contiguous
slice of the global batch; flips are drawn over the whole global batch, so the
data do not depend on the number of hosts. Resuming needs only `position`.
"""

from typing import Any

import jax
import numpy as np

from cm_jax.data.base import Batch, Source
from cm_jax.data.sources import as_config, get_source


class DataIterator:
  """Yields this host's part (a dict of numpy arrays) of each global batch."""

  def __init__(self, source: Source, global_batch_size: int, *, seed: int,
               random_flip: bool = False, process_index: int = 0,
               process_count: int = 1, position: int = 0):
    if global_batch_size % process_count:
      raise ValueError(f"global_batch_size={global_batch_size} must be "
                       f"divisible by the process count ({process_count}).")
    if random_flip and not source.is_image:
      raise ValueError("random_flip needs image data; set "
                       "--config.data.random_flip=False.")
    self.source = source
    self.global_batch_size = global_batch_size
    self.seed = seed
    self.random_flip = random_flip
    self.position = position
    local = global_batch_size // process_count
    self._host_slice = slice(process_index * local, (process_index + 1) * local)
    self._permutations: dict[int, np.ndarray] = {}

  def __iter__(self) -> "DataIterator":
    return self

  def __next__(self) -> Batch:
    batch = self.batch_at(self.position)
    self.position += 1
    return batch

  def get_state(self) -> dict[str, int]:
    return {"position": self.position}

  def set_state(self, state: dict[str, Any]):
    self.position = int(state["position"])

  def batch_at(self, position: int) -> Batch:
    """This host's part of global batch `position`; does not advance."""
    indices = self._global_indices(position)[self._host_slice]
    batch = self.source.get(indices)
    if self.random_flip:
      flip = self._global_flips(position)[self._host_slice]
      x = batch["x"]
      batch["x"] = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
    return batch

  def _global_indices(self, position: int) -> np.ndarray:
    """Example indices [B] of global batch `position` (see the module doc)."""
    size = self.global_batch_size
    stream = position * size + np.arange(size)
    epochs, offsets = np.divmod(stream, self.source.num_examples)
    indices = np.empty_like(stream)
    for epoch in np.unique(epochs):
      in_epoch = epochs == epoch
      indices[in_epoch] = self._permutation(int(epoch))[offsets[in_epoch]]
    return indices

  def _permutation(self, epoch: int) -> np.ndarray:
    """Epoch `epoch`'s order. Keeps two: with B ≤ N a batch spans ≤ 2 epochs."""
    if epoch not in self._permutations:
      if len(self._permutations) == 2:
        del self._permutations[min(self._permutations)]
      rng = np.random.default_rng([self.seed, epoch])
      self._permutations[epoch] = rng.permutation(self.source.num_examples)
    return self._permutations[epoch]

  def _global_flips(self, position: int) -> np.ndarray:
    """Which of the global batch's examples to flip horizontally, [B] bool."""
    rng = np.random.default_rng([self.seed, position, 1])
    return rng.random(self.global_batch_size) < 0.5


def make_iterator(data_config: Any, global_batch_size: int, seed: int,
                  position: int = 0) -> DataIterator:
  """The iterator over `data_config`'s source for this JAX process."""
  data_config = as_config(data_config)
  return DataIterator(
      get_source(data_config), global_batch_size, seed=seed,
      random_flip=data_config.random_flip,
      process_index=jax.process_index(), process_count=jax.process_count(),
      position=position)

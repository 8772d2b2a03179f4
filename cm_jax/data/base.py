"""The `Source` interface and `ArraySource`, the in-memory source.

A source is random access: `get(indices)` returns one batch of numpy arrays,
"x" float32 (images NHWC in [-1, 1]; 2-D points as raw coordinates) and, for
labelled data, "y" int32 [B].
"""

import dataclasses
from typing import Protocol

import numpy as np

Batch = dict[str, np.ndarray]


class Source(Protocol):
  """Random-access examples: what `DataIterator` reads."""

  @property
  def num_examples(self) -> int: ...

  @property
  def example_shape(self) -> tuple[int, ...]: ...  # (32, 32, 3) or (2,).

  @property
  def num_classes(self) -> int: ...  # 0 when unlabelled.

  @property
  def is_image(self) -> bool: ...

  def get(self, indices: np.ndarray) -> Batch: ...


def uint8_to_float(images: np.ndarray) -> np.ndarray:
  """Maps uint8 pixels to float32 in [-1, 1] as x / 127.5 - 1."""
  return images.astype(np.float32) / 127.5 - 1.0


def make_batch(x: np.ndarray, y: np.ndarray | None) -> Batch:
  """A batch dict; uint8 images become float32 in [-1, 1]."""
  x = uint8_to_float(x) if x.dtype == np.uint8 else x.astype(np.float32)
  return {"x": x} if y is None else {"x": x, "y": y.astype(np.int32)}


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class ArraySource:
  """Examples held in memory.

  Attributes:
    x: uint8 images [N, H, W, C], or float vectors [N, D] (e.g. 2-D points).
    y: integer labels [N], or None when unlabelled.
    num_classes: number of label values; 0 when unlabelled.
  """

  x: np.ndarray
  y: np.ndarray | None = None
  num_classes: int = 0

  def __post_init__(self):
    if self.x.ndim == 4 and self.x.dtype != np.uint8:
      raise ValueError(f"Images must be uint8 [N,H,W,C], got {self.x.dtype}.")
    if self.y is not None and self.y.shape != self.x.shape[:1]:
      raise ValueError(
          f"Labels must have shape [{len(self.x)}], got {self.y.shape}.")

  @property
  def num_examples(self) -> int:
    return len(self.x)

  @property
  def example_shape(self) -> tuple[int, ...]:
    return tuple(self.x.shape[1:])

  @property
  def is_image(self) -> bool:
    return self.x.ndim == 4

  def get(self, indices: np.ndarray) -> Batch:
    y = None if self.y is None else self.y[indices]
    return make_batch(self.x[indices], y)

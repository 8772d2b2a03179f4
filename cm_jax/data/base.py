"""The `Source` interface and `ArraySource`, the in-memory source.

A source is random access: `get(indices)` returns one batch of numpy arrays,
"x" float32 (images NHWC in [-1, 1]; 2-D points as raw coordinates), for
labelled data "y" int32 [B], and for data with a per-example conditioning
vector (a text or CLIP embedding, any vector) "context" float32 [B, D].
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

  @property
  def context_dim(self) -> int: ...  # D of batch["context"]; 0 when none.

  def get(self, indices: np.ndarray) -> Batch: ...


def uint8_to_float(images: np.ndarray) -> np.ndarray:
  """Maps uint8 pixels to float32 in [-1, 1] as x / 127.5 - 1."""
  return images.astype(np.float32) / 127.5 - 1.0


def make_batch(x: np.ndarray, y: np.ndarray | None,
               context: np.ndarray | None = None) -> Batch:
  """A batch dict; uint8 images become float32 in [-1, 1]."""
  x = uint8_to_float(x) if x.dtype == np.uint8 else x.astype(np.float32)
  batch = {"x": x}
  if y is not None:
    batch["y"] = y.astype(np.int32)
  if context is not None:
    batch["context"] = context.astype(np.float32)
  return batch


def check_context(context: np.ndarray | None, num: int, name: str):
  """A one-line error unless ``context`` is None or a float array [num, D]."""
  if context is None:
    return
  if (context.ndim != 2 or len(context) != num or not context.shape[1]
      or not np.issubdtype(context.dtype, np.floating)):
    raise ValueError(f"{name} must be a float array [N, D] = [{num}, D], got "
                     f"{context.dtype} {list(context.shape)}.")


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class ArraySource:
  """Examples held in memory.

  Attributes:
    x: uint8 images [N, H, W, C], or float vectors [N, D] (e.g. 2-D points).
    y: integer labels [N], or None when unlabelled.
    num_classes: number of label values; 0 when unlabelled.
    context: per-example conditioning vectors float [N, D], or None.
  """

  x: np.ndarray
  y: np.ndarray | None = None
  num_classes: int = 0
  context: np.ndarray | None = None

  def __post_init__(self):
    if self.x.ndim == 4 and self.x.dtype != np.uint8:
      raise ValueError(f"Images must be uint8 [N,H,W,C], got {self.x.dtype}.")
    if self.y is not None and self.y.shape != self.x.shape[:1]:
      raise ValueError(
          f"Labels must have shape [{len(self.x)}], got {self.y.shape}.")
    check_context(self.context, len(self.x), "context")

  @property
  def num_examples(self) -> int:
    return len(self.x)

  @property
  def example_shape(self) -> tuple[int, ...]:
    return tuple(self.x.shape[1:])

  @property
  def is_image(self) -> bool:
    return self.x.ndim == 4

  @property
  def context_dim(self) -> int:
    return 0 if self.context is None else self.context.shape[1]

  def get(self, indices: np.ndarray) -> Batch:
    y = None if self.y is None else self.y[indices]
    context = None if self.context is None else self.context[indices]
    return make_batch(self.x[indices], y, context)

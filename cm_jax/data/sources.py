"""Data sources named by `config.data.source`, resolved through one dict.

Each reads its fields of `config.data` (all declared in configs/base.py):
- digits: scikit-learn's bundled 8×8 handwritten digits (no download),
  bilinearly resized to `resolution`, 1 channel, labels 0–9.
- toy2d: 2-D point sets, scaled to std `sigma_data` when `standardize`
  (samples decode back to data units), see `toy2d.py`.
- npz: the file at `path` with `x_<split>` uint8 [N, H, W, C], optional
  integer `y_<split>` [N] and optional float `context_<split>` [N, D] (any
  conditioning vector per example, e.g. a text embedding); `split` is "train"
  or "test"; `num_classes` (0: the labels' max + 1).
- images: the folder or .zip at `path` in EDM's dataset_tool layout (image
  files, optional dataset.json labels), decoded per batch, each image
  `resolution`×`resolution`; `num_classes` as npz; see `images.py`.
- tfds: `name`, `split`, `data_dir` through `tfds.data_source`: random access
  to ArrayRecord files, decoded per batch; needs tensorflow-datasets but not
  TensorFlow, and is imported only when used. Sets whose images are not all
  one square size (lsun/bedroom, lsun/cat, ...) are center-cropped and
  resized to `resolution` as ADM does (`images.center_crop`); square ones
  (cifar10, imagenet_resized/64x64) are served as stored.
- latents: images encoded once by an autoencoder (`ae_workdir`, a method=ae
  run, or a plug-in `autoencoder`), cached and scaled to unit variance; see
  `latents.py`.
"""

import difflib
import os
import zipfile
from typing import Any, Callable

import ml_collections
import numpy as np
from PIL import Image

from cm_jax import registry
from cm_jax.data.base import (ArraySource, Batch, Source, check_context,
                              make_batch)
from cm_jax.data.images import center_crop, images_source
from cm_jax.data.toy2d import toy2d_source

TFDS_IMAGE_KEY = "image"
TFDS_LABEL_KEY = "label"


def digits_source(config: Any) -> ArraySource:
  """sklearn digits, gray levels 0..16 mapped to uint8 0..255."""
  from sklearn.datasets import load_digits

  digits = load_digits()
  images = np.round(digits.images * (255 / 16)).astype(np.uint8)
  size = config.resolution
  if size != images.shape[1]:
    images = np.stack([_resize(image, size) for image in images])
  return ArraySource(x=images[..., None], y=digits.target, num_classes=10)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
  resized = Image.fromarray(image).resize((size, size), Image.BILINEAR)
  return np.asarray(resized)


def npz_source(config: Any) -> ArraySource:
  """Arrays `x_<split>`, optional `y_<split>` and optional `context_<split>`
  of the file at `path`."""
  path, split = config.path, config.split
  if not os.path.isfile(path):
    raise FileNotFoundError(f"npz data file {path!r} not found; set "
                            "--config.data.path=/path/to/data.npz")
  try:
    with np.load(path, allow_pickle=False) as arrays:
      if f"x_{split}" not in arrays:
        raise ValueError(f"{path} has no array 'x_{split}' (it has "
                         f"{', '.join(arrays.files)}); check "
                         "--config.data.split.")
      x = arrays[f"x_{split}"]
      y = arrays[f"y_{split}"] if f"y_{split}" in arrays else None
      context = (arrays[f"context_{split}"] if f"context_{split}" in arrays
                 else None)
  except (OSError, EOFError, zipfile.BadZipFile, ValueError) as e:
    if str(e).startswith(path):  # ours, above
      raise
    raise ValueError(f"Cannot read the npz data file {path}: "
                     f"{type(e).__name__}: {e} (truncated or not an .npz?); "
                     "rewrite it with numpy.savez or fix --config.data.path."
                     ) from e
  _check_npz_arrays(x, y, f"{path}: x_{split}")
  check_context(context, len(x), f"{path}: context_{split}")
  if y is None:
    return ArraySource(x=x, context=context)
  num_classes = config.num_classes or int(y.max()) + 1
  if y.min() < 0 or y.max() >= num_classes:
    raise ValueError(
        f"{path}: y_{split} holds labels {int(y.min())} … {int(y.max())}, "
        f"outside [0, {num_classes}) (data.num_classes={config.num_classes}"
        f"{'' if config.num_classes else ': the max + 1'}); fix the labels "
        "or --config.data.num_classes.")
  return ArraySource(x=x, y=y, num_classes=num_classes, context=context)


def _check_npz_arrays(x: np.ndarray, y: np.ndarray | None, name: str):
  if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"{name} must be uint8 [N,H,W,C] with C = 1 or 3, got "
                     f"{x.dtype} {list(x.shape)}.")
  if not len(x):
    raise ValueError(f"{name} holds no examples (shape {list(x.shape)}).")
  if y is not None and (y.shape != x.shape[:1]
                        or not np.issubdtype(y.dtype, np.integer)):
    raise ValueError(f"{name}: labels must be integer [{len(x)}], got "
                     f"{y.dtype} {list(y.shape)}.")


class TfdsSource:
  """A tfds data set through `tfds.data_source`: random access, lazy decoding.

  Reads the "image" feature (uint8 [H, W, C]) and, when present, "label".
  Images of a set that is not stored at one square size (the feature's shape
  holds None or H ≠ W; LSUN's) are center-cropped to `resolution` as ADM's
  `center_crop_arr` (the CM paper's LSUN preprocessing); square sets are
  served as stored, whatever `resolution` says.
  """

  def __init__(self, name: str, split: str = "train",
               data_dir: str | None = None, download: bool = False,
               resolution: int | None = None):
    try:
      import tensorflow_datasets as tfds
    except ImportError as e:
      raise ImportError("The tfds source needs tensorflow-datasets; install it "
                        "or use --config.data.source=npz.") from e
    builder = _tfds_builder(tfds, name, data_dir)
    if not download and not builder.is_prepared():
      where = data_dir or "the tfds default data_dir"
      raise FileNotFoundError(
          f"tfds {name!r} is not prepared in {where}; prepare it once with "
          f"`tfds build {name} --data_dir=DIR` and pass "
          "--config.data.data_dir=DIR, allow --config.data.download=True, or "
          "use --config.data.source=npz.")
    self._data = tfds.data_source(name, split=split, data_dir=data_dir,
                                  download=download)
    features = self._data.dataset_info.features
    self.num_classes = (features[TFDS_LABEL_KEY].num_classes
                        if TFDS_LABEL_KEY in features else 0)
    height, width, _ = features[TFDS_IMAGE_KEY].shape
    self.crop_to = None  # the side images are cropped to; None: as stored
    if None in (height, width) or height != width:  # LSUN: (None, None)
      if not resolution:
        raise ValueError(f"tfds {name!r} is center-cropped to "
                         "data.resolution; set --config.data.resolution=R.")
      self.crop_to = resolution
    # From a decoded example, as the feature's shape may hold None.
    self.example_shape = tuple(self.get(np.zeros(1, int))["x"].shape[1:])
    self.is_image = True
    self.context_dim = 0  # tfds features carry no context vectors

  @property
  def num_examples(self) -> int:
    return len(self._data)

  def get(self, indices: np.ndarray) -> Batch:
    # Record by record: `tfds.testing.mock_data` breaks the batched
    # `__getitems__`, and decoding dominates the cost anyway.
    examples = [self._data[int(i)] for i in indices]
    x = np.stack([self._image(example) for example in examples])
    y = None
    if self.num_classes:
      y = np.array([example[TFDS_LABEL_KEY] for example in examples])
    return make_batch(x, y)

  def _image(self, example) -> np.ndarray:
    image = np.asarray(example[TFDS_IMAGE_KEY])
    side = self.crop_to
    if side is None or image.shape[:2] == (side, side):
      return image
    return center_crop(image, side)


def _tfds_builder(tfds, name: str, data_dir: str | None):
  """`tfds.builder(name)`; an unknown data set or config is a one-line error
  naming the closest registered names, not tfds' catalogue of every set."""
  try:
    return tfds.builder(name, data_dir=data_dir)
  except ValueError as e:  # DatasetNotFoundError is one
    dataset, _, config = name.split(":")[0].partition("/")
    registered = tfds.list_builders(with_community_datasets=False)
    if dataset not in registered:
      candidates, what = registered, dataset
    else:
      configs = getattr(tfds.builder_cls(dataset), "BUILDER_CONFIGS", [])
      candidates = [f"{dataset}/{c.name}" for c in configs]
      if not config or f"{dataset}/{config}" in candidates:
        raise  # not an unknown name: tfds' own error
      what = f"{dataset}/{config}"
    close = difflib.get_close_matches(what, candidates, n=5, cutoff=0.5)
    hint = (f"the closest: {', '.join(close)}" if close
            else "none is close")
    raise ValueError(
        f"tfds has no data set {name!r} ({hint}); set --config.data.name to a "
        "registered name (`tfds.list_builders()`), or use --config.data."
        "source=images for a folder or .zip of images.") from None


def tfds_source(config: Any) -> TfdsSource:
  return TfdsSource(config.name, split=config.split,
                    data_dir=config.data_dir or None,  # "": tfds' default
                    download=config.download, resolution=config.resolution)


def latents_source(config: Any) -> Source:
  from cm_jax.data import latents  # loads a checkpoint: imported when used
  return latents.latents_source(config, get_source)


_SOURCES: dict[str, Callable[[Any], Source]] = {
    "digits": digits_source,
    "toy2d": toy2d_source,
    "npz": npz_source,
    "images": images_source,
    "tfds": tfds_source,
    "latents": latents_source,
}


# What a data config saved before configs/base.py declared every field (a
# checkpoint's, e.g. an autoencoder run's images) implies for the fields it
# lacks: the values the code then assumed (toy2d points were not scaled).
IMPLIED = {"resolution": 16, "path": "", "split": "train", "num_classes": 0,
           "name": "gmm", "data_dir": "", "download": False,
           "random_flip": False, "num_examples": 65_536, "seed": 0,
           "num_modes": 8, "radius": 1.0, "std": 0.05, "context_dim": 0,
           "context_noise": 0.0, "ae_workdir": "", "autoencoder": "",
           "latent_cache": "", "standardize": False, "sigma_data": 0.5}


def as_config(data_config: Any) -> ml_collections.ConfigDict:
  """`data_config` as a ConfigDict: a run's `config.data`, or the plain dict
  of the same fields that a checkpoint stores (missing fields ``IMPLIED``)."""
  if isinstance(data_config, ml_collections.ConfigDict):
    return data_config
  return ml_collections.ConfigDict({**IMPLIED, **dict(data_config)})


def describe(data_config: Any, source: Source) -> str:
  """One line naming the data a run reads: source, where from, how many
  examples of which shape, labels and conditioning."""
  c = as_config(data_config)
  origin = {"npz": f" {c.path} (x_{c.split})",
            "images": f" {c.path}",
            "tfds": f" {c.name} ({c.split})",
            "toy2d": f" {c.name}",
            "latents": f" of {c.ae_workdir or c.autoencoder}"}.get(c.source, "")
  labels = (f", {source.num_classes} classes" if source.num_classes
            else ", unlabelled")
  context = (f", a {source.context_dim}-vector context per example"
             if source.context_dim else "")
  return (f"Data: {c.source}{origin}, {source.num_examples:,} examples of "
          f"shape {tuple(source.example_shape)}{labels}{context}.")


def ignored_resolution(data_config: Any, source: Source) -> str | None:
  """A warning when `data.resolution` (which the digits resize to, images
  check and tfds crops non-square sets to) differs from the side of the
  images the npz source serves as stored."""
  c = as_config(data_config)
  if c.source != "npz" or not source.is_image:
    return None
  side = source.example_shape[0]
  if side == c.resolution:
    return None
  return (f"data.resolution={c.resolution} is not applied to npz data: "
          f"{c.path} holds {side}×{side} images and the network is built "
          f"for them (resize the file to train at another resolution).")


def get_source(data_config: Any) -> Source:
  """The source named by `data_config.source`, built from its other fields."""
  data_config = as_config(data_config)
  make = registry.lookup(_SOURCES, data_config.source, "data.source")
  return make(data_config)

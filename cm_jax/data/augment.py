"""EDM's non-leaky augmentation pipeline (Karras et al. 2022, App. F.2), in JAX.

Each training image is flipped and geometrically transformed with
probability p, and the network is told what was done: the 9 augmentation
labels enter its embedding (`model.augment_dim` = 9), so the transformed
images teach it without leaking into samples, which are drawn with the labels
at zero (no transform). The pipeline is NVlabs/edm `training/augment.py`
(`AugmentPipe`, from StyleGAN2-ADA) at the settings of EDM's CIFAR-10 runs
(`train.py`: p = 0.12, xflip = 1e8, yflip = scale = rotate_frac = aniso =
translate_frac = 1); its colour transforms are not used there and are not
ported.

Labels, in EDM's order (all zero for the identity):
  x-flip ∈ {0, 1}, y-flip ∈ {0, 1}, scale w_s (s = 2^(0.2·w_s)),
  rotation (cos θ − 1, sin θ), anisotropy (w_a·cos φ, w_a·sin φ)
  (stretch 2^(0.2·w_a) along φ), translation (t_x, t_y) in units of
  0.125·image size.

The geometric part is EDM's: reflect-pad, 2× upsample with the Symlet-6
filter, one bilinear warp by the composed inverse transform G⁻¹, 2×
downsample with the same filter, crop. One difference, for static shapes
under jit: EDM pads each batch by the margin its transforms need (at most
W − 1, H − 1); here every batch is padded by that largest margin. Where the
batch's own margin already covers what the warp reads, the two agree; the
warp reads padding only for strong zoom-outs and large shifts.
"""

import jax
import jax.numpy as jnp
import numpy as np

AUGMENT_DIM = 9  # the labels below

# Symlet-6 low-pass filter (orthonormal: Σh = √2, Σ h[k]·h[k + 2m] = δ_m), the
# standard table (PyWavelets `sym6` dec_lo), which EDM's pipe uses.
SYM6 = np.asarray([
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057,
    -0.048311742585633, 0.4910559419267466, 0.787641141030194,
    0.3379294217276218, -0.07263752278646252, -0.021060292512300564,
    0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
], np.float32)

# EDM train.py, CIFAR-10: probability multipliers and spreads (AugmentPipe).
EDM_CIFAR10 = dict(xflip=1e8, yflip=1.0, scale=1.0, rotate_frac=1.0,
                   aniso=1.0, translate_frac=1.0)
SCALE_STD, ROTATE_FRAC_MAX, ANISO_STD = 0.2, 1.0, 0.2
ANISO_ROTATE_PROB, TRANSLATE_FRAC_STD = 0.5, 0.125


def augment(key, x, p, xflip=1e8, yflip=1.0, scale=1.0, rotate_frac=1.0,
            aniso=1.0, translate_frac=1.0):
  """(x', labels [N, 9]) for images x [N, H, W, C]: EDM's AugmentPipe.

  Each transform applies to an example with probability min(1, mult·p)
  (``mult`` its argument; 0 disables it and keeps its labels at zero), drawn
  per example from ``key``.
  """
  n, h, w, _ = x.shape
  keys = iter(jax.random.split(key, 14))
  uniform = lambda *shape: jax.random.uniform(next(keys), shape or (n,))
  normal = lambda *shape: jax.random.normal(next(keys), shape or (n,))
  chosen = lambda mult: uniform() < mult * p  # per example

  labels = []
  for mult, axis in ((xflip, 2), (yflip, 1)):  # pixel blitting
    flip = jnp.where(chosen(mult), jax.random.bernoulli(next(keys), 0.5, (n,)),
                     False)
    x = jnp.where(flip[:, None, None, None], jnp.flip(x, axis), x)
    labels.append(flip.astype(jnp.float32))

  g_inv = jnp.broadcast_to(jnp.eye(3), (n, 3, 3))
  w_s = jnp.where(chosen(scale), normal(), 0.0)  # isotropic scale
  s = jnp.exp2(w_s * SCALE_STD)
  g_inv = g_inv @ _scale(1 / s, 1 / s)
  labels.append(w_s)

  theta = (uniform() * 2 - 1) * np.pi * ROTATE_FRAC_MAX  # rotation
  theta = jnp.where(chosen(rotate_frac), theta, 0.0)
  g_inv = g_inv @ _rotate(theta)
  labels += [jnp.cos(theta) - 1, jnp.sin(theta)]

  w_a, phi = normal(), (uniform() * 2 - 1) * np.pi  # anisotropic scale
  w_a = jnp.where(chosen(aniso), w_a, 0.0)
  phi = jnp.where(uniform() < ANISO_ROTATE_PROB, phi, 0.0)
  s_a = jnp.exp2(w_a * ANISO_STD)
  g_inv = g_inv @ _rotate(-phi) @ _scale(1 / s_a, s_a) @ _rotate(phi)
  labels += [w_a * jnp.cos(phi), w_a * jnp.sin(phi)]

  t = normal(2, n)  # translation, in units of TRANSLATE_FRAC_STD·size
  t = jnp.where(chosen(translate_frac)[None], t, 0.0)
  g_inv = g_inv @ _translate(-t[0] * w * TRANSLATE_FRAC_STD,
                             -t[1] * h * TRANSLATE_FRAC_STD)
  labels += [t[0], t[1]]

  if any(m > 0 for m in (scale, rotate_frac, aniso, translate_frac)):
    x = warp(x, g_inv)
  return x, jnp.stack(labels, axis=1)


def from_config(augment_config):
  """(key, x) → (x', labels) at ``config.augment``, or None when p = 0."""
  fields = dict(augment_config)
  p = fields.pop("p")
  if p <= 0:
    return None
  return lambda key, x: augment(key, x, p, **fields)


def warp(x, g_inv):
  """x [N, H, W, C] resampled at G⁻¹ [N, 3, 3] applied to each output pixel
  (coordinates in pixels about the image centre): EDM's "execute geometric
  transformations" with the Symlet-6 2× up/down-sampling around a bilinear
  warp, and reflect padding by (H − 1, W − 1)."""
  n, h, w, c = x.shape
  margin = len(SYM6) // 4  # EDM's Hz_pad
  x = jnp.pad(x, ((0, 0), (h - 1, h - 1), (w - 1, w - 1), (0, 0)),
              mode="reflect")
  x = _upsample(_upsample(x, 2), 1)
  # G⁻¹ in the 2× grid: pixel (i, j) of the upsampled image sits at
  # (2i + ½, 2j + ½) of the original's doubled coordinates.
  g_inv = _scale(2, 2) @ g_inv @ _scale(0.5, 0.5)
  g_inv = _translate(-0.5, -0.5) @ g_inv @ _translate(0.5, 0.5)
  out_h, out_w = 2 * (h + 2 * margin), 2 * (w + 2 * margin)
  x = _bilinear(x, g_inv, out_h, out_w)
  x = _downsample(_downsample(x, 2), 1)
  return x[:, margin:-margin, margin:-margin]


def _matrix(rows, n):
  """[n, 3, 3] from rows of scalars or [n] arrays."""
  return jnp.stack([jnp.stack([jnp.broadcast_to(jnp.asarray(v, jnp.float32), (n,))
                               for v in row], -1) for row in rows], -2)


def _size(*args):
  return max([np.shape(a)[0] if np.ndim(a) else 1 for a in args])


def _scale(sx, sy):
  return _matrix(((sx, 0, 0), (0, sy, 0), (0, 0, 1)), _size(sx, sy))


def _translate(tx, ty):
  return _matrix(((1, 0, tx), (0, 1, ty), (0, 0, 1)), _size(tx, ty))


def _rotate(theta):
  """Rotation by θ (EDM's rotate2d); rotate2d_inv(θ) = rotate2d(−θ)."""
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  return _matrix(((cos, -sin, 0), (sin, cos, 0), (0, 0, 1)), _size(theta))


def _depthwise(x, taps, axis, stride, pad):
  """Σ_k taps[k]·x[stride·i + k − pad] along ``axis`` (1 = H, 2 = W), zero
  padding: torch's conv2d with a per-channel 1-D kernel."""
  c = x.shape[-1]
  shape = (len(taps), 1) if axis == 1 else (1, len(taps))
  kernel = jnp.asarray(np.tile(np.reshape(taps, shape)[:, :, None, None],
                               (1, 1, 1, c)), x.dtype)
  strides = (stride, 1) if axis == 1 else (1, stride)
  padding = ((pad, pad), (0, 0)) if axis == 1 else ((0, 0), (pad, pad))
  return jax.lax.conv_general_dilated(
      x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=c)


def _upsample(x, axis):
  """2× along ``axis``: zeros between samples (2L − 1 of them), then the
  reversed filter with padding (len + 1)//2, giving 2L samples."""
  z = jnp.stack([x, jnp.zeros_like(x)], axis=axis + 1)
  z = z.reshape(x.shape[:axis] + (2 * x.shape[axis],) + x.shape[axis + 1:])
  z = jax.lax.slice_in_dim(z, 0, z.shape[axis] - 1, axis=axis)
  return _depthwise(z, SYM6[::-1], axis, 1, (len(SYM6) + 1) // 2)


def _downsample(x, axis):
  """½× along ``axis``: the filter at stride 2, padding (len − 1)//2."""
  return _depthwise(x, SYM6, axis, 2, (len(SYM6) - 1) // 2)


def _bilinear(x, g_inv, out_h, out_w):
  """torch's grid_sample(bilinear, zeros, align_corners=False) on the grid
  affine_grid(G⁻¹) of an out_h × out_w output, in pixel units: output pixel
  (i, j) at centred (j − (out_w − 1)/2, i − (out_h − 1)/2) reads the input
  at G⁻¹ of it, shifted back by the input's (W − 1)/2, (H − 1)/2."""
  n, in_h, in_w, _ = x.shape
  jj, ii = np.meshgrid(np.arange(out_w) - (out_w - 1) / 2,
                       np.arange(out_h) - (out_h - 1) / 2)
  grid = np.stack([jj, ii, np.ones_like(jj)], -1).astype(np.float32)  # [h, w, 3]
  src = jnp.einsum("nab,hwb->nhwa", g_inv[:, :2], grid)
  u = src[..., 0] + (in_w - 1) / 2
  v = src[..., 1] + (in_h - 1) / 2
  u0, v0 = jnp.floor(u), jnp.floor(v)
  out = 0.0
  for dv in (0, 1):
    for du in (0, 1):
      ui, vi = u0 + du, v0 + dv
      weight = (1 - jnp.abs(u - ui)) * (1 - jnp.abs(v - vi))
      inside = (ui >= 0) & (ui <= in_w - 1) & (vi >= 0) & (vi <= in_h - 1)
      ui = jnp.clip(ui, 0, in_w - 1).astype(jnp.int32)
      vi = jnp.clip(vi, 0, in_h - 1).astype(jnp.int32)
      pixels = jax.vmap(lambda img, r, q: img[r, q])(x, vi, ui)  # [n, h, w, c]
      out = out + jnp.where(inside, weight, 0.0)[..., None] * pixels
  return out


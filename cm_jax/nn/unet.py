"""NCSN++ / DDPM++ UNet for NHWC images (Song et al. 2021; Karras et al. 2022).

Follows EDM's `SongUNet` (NVlabs/edm `training/networks.py`), itself a port of
score_sde's NCSN++ (`models/ncsnpp.py`), with the CM CIFAR-10 choices:
- BigGAN-style resampling: up/down happen inside residual blocks (score_sde
  `ResnetBlockBigGAN`, EDM `UNetBlock(up/down=True)`), not via separate convs;
  `resample_filter` (1, 3, 3, 1) is NCSN++'s FIR kernel, (1, 1) DDPM++'s box.
- `residual_input`: NCSN++'s progressive "residual" input pyramid (EDM
  `encoder_type="residual"`), its downsample computed as the official JAX
  NCSN++'s `conv_downsample_2d` (`DownsampleConv`); off for DDPM++.
- Residual sums scaled by 1/√2 (`skip_rescale`), GroupNorm with
  min(32, C/4) groups and eps 1e-6, SiLU, one attention head.
- The last conv of each block and the output conv are initialised near zero
  (EDM `init_zero`: xavier-uniform × 1e-5; score_sde `init_scale=0.`).
Not ported: NCSN++'s progressive output path (CM uses "none") and
score_sde's σ-scaling of the output (preconditioning lives in
`cm_jax.parametrization`).
"""

from typing import Any, Optional

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

from cm_jax.nn.embeddings import ConditionEmbedding, with_adaptive_weight
from cm_jax.nn.group_norm import GroupNorm

XAVIER = nn.initializers.xavier_uniform()
NEAR_ZERO = nn.initializers.variance_scaling(1e-10, "fan_avg", "uniform")  # EDM init_zero
ATTN_INIT = nn.initializers.variance_scaling(0.2, "fan_avg", "uniform")  # EDM init_attn
# A Python float: JAX treats it as weakly typed, so x·SQRT_HALF keeps x's dtype.
# np.sqrt(0.5) is a strongly typed float64 scalar and would promote a bfloat16
# residual stream to float32.
SQRT_HALF = float(np.sqrt(0.5))


def resample(x, filt, direction):
  """2× FIR up/down-sampling of NHWC x with the separable kernel filt ⊗ filt.

  EDM `Conv2d` with kernel 0 (depthwise, normalised kernel): "down" is a
  stride-2 filter, "up" its transposed conv with the kernel × 4. With
  filt = (1, 1) these are 2×2 average pooling and nearest upsampling.
  Computed per axis as sums of shifted (strided) slices, which XLA fuses
  into one loop: the same numbers as the depthwise conv (``_resample_conv``)
  up to float rounding, several times faster on CPU, forward and backward.
  """
  if direction not in ("down", "up"):
    return x
  f = np.asarray(filt, np.float64)
  f = f / f.sum()
  one_axis = _fir_down if direction == "down" else _fir_up
  return one_axis(one_axis(x, f, 1), f, 2)


def _fir_down(x, f, axis):
  """y[i] = Σ_k f[k]·x[2i + k − p] along ``axis`` (zero padding p)."""
  pad = (len(f) - 1) // 2
  return _fir(x, f, axis, pad, pad, stride=2)


def _fir(x, f, axis, pad_lo, pad_hi, stride=1):
  """y[i] = Σ_k f[k]·xp[stride·i + k], xp = x zero-padded by (pad_lo,
  pad_hi) along ``axis``: the FIR correlation, as sums of strided slices."""
  size = len(f)
  n_out = (x.shape[axis] + pad_lo + pad_hi - size) // stride + 1
  xp = _pad(x, axis, pad_lo, pad_hi)
  return sum(float(f[k]) * jax.lax.slice_in_dim(
      xp, k, k + stride * (n_out - 1) + 1, stride=stride, axis=axis)
             for k in range(size))


def _fir_up(x, f, axis):
  """The transpose of ``_fir_down`` × 2 per axis: the conv of the 2×
  zero-upsampled x with 2f (padding size − 1 − p), phase by phase:
  y[2i + r] = Σ_{k: r + k − e even} 2f[k]·x[i + (r + k − e)/2]."""
  size, pad, n = len(f), (len(f) - 1) // 2, x.shape[axis]
  edge = size - 1 - pad
  n_out = 2 * n + 2 * edge - size
  phases = []
  for r in (0, 1):
    m = (n_out - r + 1) // 2
    taps = [(k, (r + k - edge) // 2) for k in range(size)
            if (r + k - edge) % 2 == 0]
    lo = max(0, -min(o for _, o in taps))
    hi = max(0, m - 1 + max(o for _, o in taps) - (n - 1))
    xp = _pad(x, axis, lo, hi)
    phases.append(sum(2.0 * float(f[k]) * jax.lax.slice_in_dim(
        xp, o + lo, o + lo + m, axis=axis) for k, o in taps))
  if phases[1].shape[axis] < phases[0].shape[axis]:  # odd n_out
    phases[1] = _pad(phases[1], axis, 0, 1)
  y = jnp.stack(phases, axis=axis + 1)
  y = y.reshape(x.shape[:axis] + (2 * phases[0].shape[axis],)
                + x.shape[axis + 1:])
  return jax.lax.slice_in_dim(y, 0, n_out, axis=axis)


def _pad(x, axis, lo, hi):
  widths = [(0, 0)] * x.ndim
  widths[axis] = (lo, hi)
  return jnp.pad(x, widths) if lo or hi else x


def _resample_conv(x, filt, direction):
  """``resample`` as EDM writes it, a depthwise (transposed) conv; the
  reference the tests hold ``resample`` to."""
  f = np.asarray(filt, np.float32)
  k = np.outer(f, f) / f.sum() ** 2
  size, pad, ch = len(f), (len(f) - 1) // 2, x.shape[-1]
  kernel = jnp.asarray(np.tile(k[:, :, None, None], (1, 1, 1, ch)), x.dtype)
  conv = lambda kern, **kw: jax.lax.conv_general_dilated(
      x, kern, dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=ch, **kw)
  if direction == "down":
    return conv(kernel, window_strides=(2, 2), padding=[(pad, pad)] * 2)
  if direction == "up":
    edge = size - 1 - pad
    return conv(kernel * 4, window_strides=(1, 1), padding=[(edge, edge)] * 2,
                lhs_dilation=(2, 2))
  return x


class DownsampleConv(nn.Module):
  """NCSN++'s progressive-input downsampling: the official JAX NCSN++'s
  `layerspp.Downsample(with_conv=True, fir=True)`, i.e. StyleGAN2's
  `conv_downsample_2d` (openai/consistency_models_cifar10
  `jcm/models/up_or_down_sampling.py`), then the bias.

  x is zero-padded by p = (len(filt) − 2) + 2 split as (⌈p/2⌉, ⌊p/2⌋) (2 on
  each side for NCSN++'s (1, 3, 3, 1)), blurred at stride 1 with the
  normalised filt ⊗ filt, and convolved (3×3, stride 2, VALID); the bias is
  added after. Its parameters are those of the `nn.Conv` it replaced
  (``kernel`` [3, 3, C_in, C_out], ``bias``), so checkpoints keep their
  layout. Interior pixels equal conv-then-FIR-down; the first and last rows
  and columns do not (the conv no longer pads with zeros before the blur).
  """

  features: int
  resample_filter: Any = (1, 3, 3, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", XAVIER, (3, 3, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    f = np.asarray(self.resample_filter, np.float64)
    f = f / f.sum()
    p = len(f) - 2 + 2  # (FIR size − factor) + (conv size − 1)
    x = _fir(_fir(x, f, 1, (p + 1) // 2, p // 2), f, 2, (p + 1) // 2, p // 2)
    x = jax.lax.conv_general_dilated(
        x, kernel, window_strides=(2, 2), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return x + bias


def group_norm(x, dtype, name, silu=False):
  """GroupNorm with min(32, C/4) groups and eps 1e-6 (then SiLU if ``silu``)."""
  return GroupNorm(min(32, x.shape[-1] // 4), 1e-6, silu, dtype, name=name)(x)


class SelfAttention(nn.Module):
  """Single-head spatial self-attention (score_sde `AttnBlockpp`, EDM UNetBlock)."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    qkv = nn.Conv(3 * c, (1, 1), kernel_init=ATTN_INIT, dtype=self.dtype,
                  name="qkv")(group_norm(x, self.dtype, "norm"))
    q, k, v = jnp.split(qkv.reshape(b, h * w, 1, 3 * c), 3, axis=-1)
    out = jax.nn.dot_product_attention(q, k, v).reshape(b, h, w, c)
    return nn.Conv(c, (1, 1), kernel_init=NEAR_ZERO, dtype=self.dtype, name="proj")(out)


class ResBlock(nn.Module):
  """BigGAN-style residual block with embedding input (EDM `UNetBlock`).

  h = conv1(dropout(SiLU(GN(conv0(resample(SiLU(GN(x)))) + Dense(emb)))))
  x ← (h + skip(x))·s, then x ← (x + attn(x))·s, with s = 1/√2 if skip_rescale.
  """
  out_ch: int
  resample: Optional[str] = None  # None | "up" | "down"
  attention: bool = False
  dropout: float = 0.0
  skip_scale: float = 1.0
  resample_filter: tuple = (1, 3, 3, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, emb, train):
    conv = lambda ch, size, init, name: nn.Conv(
        ch, (size, size), kernel_init=init, dtype=self.dtype, name=name)
    h = group_norm(x, self.dtype, "norm0", silu=True)
    h = conv(self.out_ch, 3, XAVIER, "conv0")(resample(h, self.resample_filter, self.resample))
    h += nn.Dense(self.out_ch, kernel_init=XAVIER, dtype=self.dtype,
                  name="affine")(emb)[:, None, None, :]
    h = group_norm(h, self.dtype, "norm1", silu=True)
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = conv(self.out_ch, 3, NEAR_ZERO, "conv1")(h)
    if self.resample or x.shape[-1] != self.out_ch:
      x = conv(self.out_ch, 1, XAVIER, "skip")(resample(x, self.resample_filter, self.resample))
    x = (x + h) * self.skip_scale
    if self.attention:
      x = (x + SelfAttention(self.dtype, name="attn")(x)) * self.skip_scale
    return x


class UNet(nn.Module):
  """NCSN++ (defaults) / DDPM++ UNet. Defaults = CM/EDM CIFAR-10 (≈56M params).

  __call__(x [B,H,W,C], cond (a ``Condition``: c_noise [B], labels, w,
  context, augment_labels), train=False, return_weight=False)
  → F(x) float32 with x's shape (with return_weight, (F, w_φ(c_noise))).
  Per resolution level i (res = H / 2^i):
  encoder: conv (i = 0) or down-block, then num_res_blocks blocks with
  ch·ch_mult[i] channels; decoder: two mid blocks (i = last) or up-block, then
  num_res_blocks + 1 blocks, each taking one encoder skip.
  """
  ch: int = 128  # base channels, NCSN++ "nf"
  ch_mult: tuple = (2, 2, 2)
  num_res_blocks: int = 4
  attn_resolutions: tuple = (16,)
  dropout: float = 0.0
  embedding: str = "fourier"  # "fourier" (NCSN++) | "positional" (DDPM++)
  fourier_scale: float = 16.0  # CM: 16, iCT: 0.02
  num_classes: int = 0  # > 0: class-conditional, label num_classes = null
  w_embedding: bool = False  # LCM: guidance scale w as an input (`w`)
  context_dim: int = 0  # > 0: a per-example context vector [B, D] as an input
  augment_dim: int = 0  # > 0: EDM's augmentation labels [B, D] as an input
  adaptive_weight: bool = False  # sCM: also the weighting w_φ(c_noise)
  two_time: bool = False  # flow maps: also embed cond.c_step (t − r)
  guidance_inputs: bool = False  # iMF: cond.guidance (ω, t_min, t_max)
  # Noise embedding width ch·this (EDM's channel_mult_noise); None: 2
  # (NCSN++'s Fourier features), 1 (DDPM++'s positional embedding).
  channel_mult_noise: Optional[int] = None
  # iMF: an auxiliary v head (its own output GroupNorm and conv);
  # return_v=True returns (u, v).
  v_head: bool = False
  resample_filter: tuple = (1, 3, 3, 1)  # NCSN++ FIR; DDPM++: (1, 1)
  residual_input: bool = True  # NCSN++ progressive_input="residual"
  skip_rescale: bool = True
  out_channels: Optional[int] = None  # default: x's channels
  dtype: Any = jnp.float32  # compute dtype; params stay float32

  @nn.compact
  def __call__(self, x, cond, train=False, return_weight=False,
               return_v=False):
    # NCSN++ Fourier features have 2·nf channels, DDPM++ positional nf.
    noise_dim = self.ch * (self.channel_mult_noise or (
        2 if self.embedding == "fourier" else 1))
    emb = ConditionEmbedding(noise_dim, 4 * self.ch, self.embedding, self.fourier_scale,
                             self.num_classes, self.w_embedding, self.dtype,
                             context_dim=self.context_dim,
                             two_time=self.two_time,
                             guidance_inputs=self.guidance_inputs,
                             augment_dim=self.augment_dim,
                             name="embed")(cond)
    emb = nn.silu(emb)
    h, skips = self._encoder(x.astype(self.dtype), emb, train)
    h = self._decoder(h, skips, emb, train, x.shape[1])
    out = self._output(h, x.shape[-1], "out")
    out = with_adaptive_weight(self, out, cond.c_noise, return_weight,
                               self.ch)
    if return_v and not self.v_head:
      raise ValueError("return_v needs model.v_head=True (iMF's auxiliary "
                       "v head).")
    if not self.v_head or not (return_v or self.is_initializing()):
      return out
    v = self._output(h, x.shape[-1], "v_out")  # iMF's v head: its own output
    return (out, v) if return_v else out

  def _output(self, h, channels, prefix):
    h = group_norm(h, self.dtype, f"{prefix}_norm", silu=True)
    out = nn.Conv(self.out_channels or channels, (3, 3), kernel_init=NEAR_ZERO,
                  dtype=self.dtype, name=f"{prefix}_conv")(h)
    return out.astype(jnp.float32)

  def _block(self, out_ch, name, **kw):
    return ResBlock(out_ch, dropout=self.dropout, resample_filter=self.resample_filter,
                    skip_scale=SQRT_HALF if self.skip_rescale else 1.0,
                    dtype=self.dtype, name=name, **kw)

  def _encoder(self, x, emb, train):
    """Returns the bottom activation and the skips, lowest resolution last."""
    aux, h, skips = x, x, []
    for level, mult in enumerate(self.ch_mult):
      res = x.shape[1] >> level
      if level == 0:
        h = nn.Conv(self.ch, (3, 3), kernel_init=XAVIER, dtype=self.dtype, name="in_conv")(h)
      else:
        h = self._block(h.shape[-1], f"enc{res}_down", resample="down")(h, emb, train)
        if self.residual_input:  # NCSN++ progressive_input="residual":
          # aux ← (h + conv_downsample_2d(aux))/√2
          aux = DownsampleConv(h.shape[-1], self.resample_filter,
                               dtype=self.dtype, name=f"enc{res}_aux")(aux)
          h = aux = (h + aux) * SQRT_HALF
      skips.append(h)
      for i in range(self.num_res_blocks):
        h = self._block(self.ch * mult, f"enc{res}_block{i}",
                        attention=res in self.attn_resolutions)(h, emb, train)
        skips.append(h)
    return h, skips

  def _decoder(self, h, skips, emb, train, image_res):
    for level, mult in reversed(list(enumerate(self.ch_mult))):
      res = image_res >> level
      if level == len(self.ch_mult) - 1:  # middle: attention block, then a plain one
        h = self._block(h.shape[-1], f"mid{res}_0", attention=True)(h, emb, train)
        h = self._block(h.shape[-1], f"mid{res}_1")(h, emb, train)
      else:
        h = self._block(h.shape[-1], f"dec{res}_up", resample="up")(h, emb, train)
      for i in range(self.num_res_blocks + 1):
        attn = i == self.num_res_blocks and res in self.attn_resolutions
        h = jnp.concatenate([h, skips.pop()], axis=-1)
        h = self._block(self.ch * mult, f"dec{res}_block{i}", attention=attn)(h, emb, train)
    return h

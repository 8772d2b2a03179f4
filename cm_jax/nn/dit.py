"""DiT, the Diffusion Transformer (Peebles & Xie 2023, "Scalable Diffusion
Models with Transformers"), in Flax, with MeanFlow's second time embedder.

x [B, H, W, C] → patches of p×p → tokens [B, T, D] + fixed 2-D sin-cos
position embeddings → ``depth`` blocks with adaLN-Zero conditioning on
c = emb(t) (+ emb(t − r), a flow map's second time) (+ emb(label)) → the
final adaLN layer → unpatchify. As facebookresearch/DiT ``models.py``:
- the time embedder: 256 sinusoidal frequencies [cos, sin] with
  max_period 10000, then Linear → SiLU → Linear, weights N(0, 0.02²);
- the label table has num_classes + 1 rows (the last is the null class of
  classifier-free guidance), N(0, 0.02²); label dropout is the train
  step's (``diffusion_model.label_dropout``), not the network's;
- a block: LayerNorm (no affine, ε = 1e-6), modulate, multi-head attention
  (fused qkv with bias), gate; LayerNorm, modulate, MLP (GELU, tanh), gate;
  the six modulations from SiLU → Linear, zero-initialised (adaLN-Zero);
- every other Linear is Xavier-uniform with zero bias, the patch embedding
  too (as a Linear on the flattened patch), the output layer zero.
With ``two_time`` a second time embedder reads ``cond.c_step`` and its
output is added to c (Gsunshine/meanflow ``models_dit.py``: c = t + h + y).
Attention runs through ``jax.nn.dot_product_attention`` (XLA), so the
network is JVP-ready like every network here.
"""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cm_jax.nn.embeddings import check_guidance, guidance_features

XAVIER = nn.initializers.xavier_uniform()
ZERO = nn.initializers.zeros
NORMAL_002 = nn.initializers.normal(0.02)

# (depth, hidden size, heads) of DiT's sizes (Peebles & Xie, Table 1; M:
# MeanFlow's, Gsunshine/meanflow models_dit.py).
SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "M": (16, 1024, 16),
         "L": (24, 1024, 16), "XL": (28, 1152, 16)}


def timestep_frequencies(t, dim=256, max_period=10_000.0):
  """GLIDE's / DiT's [cos(t·f), sin(t·f)], f_i = max_period^(−i/half)."""
  half = dim // 2
  freqs = np.exp(-np.log(max_period) * np.arange(half) / half)
  args = t.astype(jnp.float32)[:, None] * jnp.asarray(freqs, jnp.float32)
  return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def sincos_position_embedding(dim, grid):
  """MAE's / DiT's fixed 2-D embedding [grid², dim] of a grid×grid token
  map in row-major order: the first dim/2 channels encode the column, the
  last dim/2 the row, each [sin(p·ω), cos(p·ω)] with ω_i = 10000^(−i/(dim/4))."""
  quarter = dim // 4
  omega = 1.0 / 10_000 ** (np.arange(quarter, dtype=np.float64) / quarter)

  def one_axis(pos):
    out = np.outer(pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)

  rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
  return np.concatenate([one_axis(cols.astype(np.float64)),
                         one_axis(rows.astype(np.float64))],
                        axis=1).astype(np.float32)


def patchify(x, p):
  """[B, H, W, C] → [B, (H/p)·(W/p), p·p·C]: row-major p×p patches, each
  flattened (p_row, p_col, C), as DiT's patch embedding reads them."""
  b, height, width, channels = x.shape
  return x.reshape(b, height // p, p, width // p, p, channels).transpose(
      0, 1, 3, 2, 4, 5).reshape(b, (height // p) * (width // p),
                                p * p * channels)


def unpatchify(h, p, height, width):
  """``patchify``'s inverse: [B, (H/p)·(W/p), p·p·C] → [B, H, W, C]."""
  b, _, features = h.shape
  channels = features // (p * p)
  return h.reshape(b, height // p, width // p, p, p, channels).transpose(
      0, 1, 3, 2, 4, 5).reshape(b, height, width, channels)


def check_inputs(name, x, cond, patch_size, num_classes, guidance_inputs,
                 return_weight):
  """One-line errors for what a transformer here does not take: sCM's
  w_φ head, non-square images or sides not a multiple of the patch, labels
  without classes, guidance inputs given iff read, and the UNet's w,
  context and augmentation labels."""
  if return_weight:
    raise ValueError(f"model.name={name} has no adaptive-weight head; set "
                     "--config.model.name=unet for sCM's w_φ.")
  if x.ndim != 4 or x.shape[1] != x.shape[2] or x.shape[1] % patch_size:
    raise ValueError(f"model.name={name} takes square images [B, H, H, C] "
                     f"with H a multiple of model.patch_size={patch_size}; "
                     f"got {list(x.shape)}.")
  if cond.labels is not None and num_classes == 0:
    raise ValueError("labels given but model.num_classes = 0; set "
                     "num_classes > 0.")
  check_guidance(cond.guidance, guidance_inputs)
  for field in ("w", "context", "augment_labels"):
    if getattr(cond, field) is not None:
      raise ValueError(f"model.name={name} takes no {field} input; use "
                       "model.name=unet for it.")


def modulate(x, shift, scale):
  return x * (1.0 + scale[:, None]) + shift[:, None]


class TimestepEmbedder(nn.Module):
  """t [B] → Linear(SiLU(Linear(frequencies))) [B, hidden_size]."""
  hidden_size: int
  frequency_dim: int = 256
  dtype: Any = jnp.float32
  kernel_init: Any = NORMAL_002  # DiT's; iMF's scales with the fan-in

  @nn.compact
  def __call__(self, t):
    h = nn.Dense(self.hidden_size, kernel_init=self.kernel_init,
                 dtype=self.dtype, name="mlp0")(
                     timestep_frequencies(t, self.frequency_dim))
    return nn.Dense(self.hidden_size, kernel_init=self.kernel_init,
                    dtype=self.dtype, name="mlp2")(nn.silu(h))


class Attention(nn.Module):
  """timm's ``Attention`` (qkv with bias, softmax(q·kᵀ/√d)·v, proj)."""
  num_heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, n, d = x.shape
    qkv = nn.Dense(3 * d, kernel_init=XAVIER, dtype=self.dtype,
                   name="qkv")(x)
    q, k, v = jnp.split(qkv.reshape(b, n, 3, self.num_heads,
                                    d // self.num_heads), 3, axis=2)
    out = jax.nn.dot_product_attention(q[:, :, 0], k[:, :, 0], v[:, :, 0])
    return nn.Dense(d, kernel_init=XAVIER, dtype=self.dtype,
                    name="proj")(out.reshape(b, n, d))


def _layer_norm(name):
  return nn.LayerNorm(epsilon=1e-6, use_bias=False, use_scale=False,
                      dtype=jnp.float32, name=name)


class DiTBlock(nn.Module):
  """adaLN-Zero block (DiT Fig. 3)."""
  hidden_size: int
  num_heads: int
  mlp_ratio: float = 4.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, c):
    mod = nn.Dense(6 * self.hidden_size, kernel_init=ZERO, dtype=self.dtype,
                   name="adaLN_modulation")(nn.silu(c))
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
        jnp.split(mod, 6, axis=-1))
    h = modulate(_layer_norm("norm1")(x), shift_msa, scale_msa)
    x = x + gate_msa[:, None] * Attention(self.num_heads, self.dtype,
                                          name="attn")(h.astype(self.dtype))
    h = modulate(_layer_norm("norm2")(x), shift_mlp, scale_mlp)
    h = nn.Dense(int(self.hidden_size * self.mlp_ratio), kernel_init=XAVIER,
                 dtype=self.dtype, name="fc1")(h.astype(self.dtype))
    h = nn.Dense(self.hidden_size, kernel_init=XAVIER, dtype=self.dtype,
                 name="fc2")(nn.gelu(h, approximate=True))
    return x + gate_mlp[:, None] * h


class DiT(nn.Module):
  """DiT-{S, B, L, XL}/{2, 4, 8} (``SIZES``, ``patch_size``), called as
  every network here: ``model.apply(params, x, cond, train)`` with x
  [B, H, W, C] (H = W, a multiple of the patch) and a ``Condition``: its
  c_noise (the time input, as the process scales it), c_step
  (``two_time``), labels (``num_classes`` > 0; None = the null class)."""
  patch_size: int = 2
  hidden_size: int = 1152
  depth: int = 28
  num_heads: int = 16
  mlp_ratio: float = 4.0
  num_classes: int = 0  # > 0: class-conditional, label num_classes = null
  two_time: bool = False  # flow maps: a second time embedder for c_step
  # iMF: cond.guidance (ω, t_min, t_max) through three time embedders of
  # 1 − 1/ω, t_min and t_max, added to c (imfDiT's omega, cfg_t_start and
  # cfg_t_end embedders, there added to in-context tokens).
  guidance_inputs: bool = False
  frequency_dim: int = 256  # sinusoidal frequencies of the time embedders
  # iMF: an auxiliary v head, this many blocks and a final layer beside the
  # last as many of ``depth`` (imfDiT's aux_head_depth); return_v=True
  # returns (u, v). 0: none.
  v_head_depth: int = 0
  out_channels: Optional[int] = None  # default: x's channels
  dtype: Any = jnp.float32  # compute dtype; params stay float32

  @nn.compact
  def __call__(self, x, cond, train=False, return_weight=False,
               return_v=False):
    del train  # DiT has no dropout
    self._check(x, cond, return_weight)
    b, height = x.shape[:2]
    d = self.hidden_size
    h = nn.Dense(d, kernel_init=XAVIER, dtype=self.dtype, name="x_embedder")(
        patchify(x, self.patch_size).astype(self.dtype))
    h = h + jnp.asarray(sincos_position_embedding(
        d, height // self.patch_size))[None]
    c = TimestepEmbedder(d, self.frequency_dim, self.dtype,
                         name="t_embedder")(cond.c_noise)
    if self.two_time:
      c = c + TimestepEmbedder(d, self.frequency_dim, self.dtype,
                               name="h_embedder")(cond.c_step)
    if self.guidance_inputs:
      for name, value in guidance_features(cond.guidance).items():
        c = c + TimestepEmbedder(d, self.frequency_dim, self.dtype,
                                 name=f"{name}_embedder")(value)
    if self.num_classes > 0:
      labels = cond.labels
      if labels is None:  # unconditional: the null class
        labels = jnp.full((b,), self.num_classes, jnp.int32)
      c = c + nn.Embed(self.num_classes + 1, d, embedding_init=NORMAL_002,
                       name="y_embedder")(labels)
    shared = self.depth - self.v_head_depth
    for i in range(shared):
      h = DiTBlock(d, self.num_heads, self.mlp_ratio, self.dtype,
                   name=f"block{i}")(h, c)
    trunk = h
    for i in range(shared, self.depth):
      h = DiTBlock(d, self.num_heads, self.mlp_ratio, self.dtype,
                   name=f"block{i}")(h, c)
    out = self._final(h, c, x.shape, "final")
    if return_v and not self.v_head_depth:
      raise ValueError("return_v needs model.v_head_depth > 0 (iMF's "
                       "auxiliary v head).")
    if not self.v_head_depth or not (return_v or self.is_initializing()):
      return out
    v = trunk
    for i in range(shared, self.depth):
      v = DiTBlock(d, self.num_heads, self.mlp_ratio, self.dtype,
                   name=f"v_block{i}")(v, c)
    v = self._final(v, c, x.shape, "v_final")
    return (out, v) if return_v else out

  def _final(self, h, c, shape, prefix):
    """adaLN, LayerNorm, Linear to patches, unpatchify."""
    _, height, width, channels = shape
    p, d = self.patch_size, self.hidden_size
    shift, scale = jnp.split(nn.Dense(
        2 * d, kernel_init=ZERO, dtype=self.dtype,
        name=f"{prefix}_adaLN_modulation")(nn.silu(c)), 2, axis=-1)
    h = modulate(_layer_norm(f"{prefix}_norm")(h), shift, scale)
    out_ch = self.out_channels or channels
    h = nn.Dense(p * p * out_ch, kernel_init=ZERO, dtype=self.dtype,
                 name=f"{prefix}_linear")(h.astype(self.dtype))
    return unpatchify(h, p, height, width).astype(jnp.float32)

  def _check(self, x, cond, return_weight):
    check_inputs("dit", x, cond, self.patch_size, self.num_classes,
                 self.guidance_inputs, return_weight)
    if self.two_time and cond.c_step is None:
      raise ValueError("model.two_time=True (a flow map u(z, r, t)) needs "
                       "cond.c_step, its second time; call it through the "
                       "linear process (process=linear).")

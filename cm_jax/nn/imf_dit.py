"""iMF's in-context DiT (Geng, Lu et al. 2025, "Improved Mean Flows", §4
and App. A; Lyy-iiis/imeanflow ``models/imfDiT.py``), in Flax.

Unlike DiT's adaLN-Zero, every condition enters as tokens prepended to the
image's: a learned group of tokens per condition, each token of a group
plus that condition's embedding,

  [class (8) | 1 − 1/ω (4) | t_min (2) | t_max (2) | time (4) | patches]

(the group sizes are the official ones; a network without labels or
guidance inputs has no such group). The blocks are a modern transformer's:
RMSNorm, multi-head attention with RMS-normalised queries and keys and
1-D rotary position embeddings (RoPE, Su et al. 2021) over the whole
sequence, a SwiGLU MLP (Shazeer 2020) of width ⌊8/3·D⌋, no biases, and
each residual branch scaled by a learned vector initialised at zero. The
first depth − ``v_head_depth`` blocks are shared; two heads of
``v_head_depth`` blocks and their final layers (RMSNorm → Linear, zero)
give u and iMF's auxiliary v.

The only time input is h = t − r (``cond.c_step``): iMF conditions on the
interval, not on t, after Sun et al. 2025 ("Is Noise Conditioning
Necessary for Denoising Generative Models?"), so u(z, t, t) is a v that
does not know t. ``two_time=False`` reads t (``cond.c_noise``) instead, a
network of one time.

Initialisation, as the official ``TorchLinear`` and embedders: each Linear
N(0, (c/√fan_in)²) with c = ``weight_init`` (0.32) in the blocks and
``embedding_init`` (1.0) in the embedders, zero biases; the tokens
N(0, (``token_init``/√D)²); the label table N(0, (1/√D)²); the patch
embedding Xavier-uniform (the official convolution's fan); the final layers
zero.
"""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cm_jax.nn.dit import (XAVIER, ZERO, TimestepEmbedder, check_inputs,
                           patchify, unpatchify)
from cm_jax.nn.embeddings import guidance_features

# (depth, hidden size, heads) of iMF's sizes, each patch 2 with an 8-block
# v head (imfDiT.py ``imfDiT_B_2`` … ``imfDiT_XL_2``; iMF Table 5).
SIZES = {"B": (12, 768, 12), "M": (24, 768, 12), "L": (32, 1024, 16),
         "XL": (48, 1024, 16)}


def scaled_normal(c):
  """N(0, (c/√fan_in)²), the official ``scaled_variance`` init."""
  return nn.initializers.variance_scaling(c * c, "fan_in", "normal")


def rms_norm(x, scale, eps=1e-6):
  """x/√(mean(x²) + ε)·scale over the last axis."""
  x32 = x.astype(jnp.float32)
  normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + eps)
  return normed.astype(x.dtype) * scale


class RMSNorm(nn.Module):
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
    return rms_norm(x, scale, self.eps)


def rope_angles(seq_len, head_dim, theta=10_000.0):
  """θ_{m,i} = m·theta^(−2i/d), [seq_len, d/2]: the angle of pair i at
  position m (RoPE, Su et al. 2021, eq. 15)."""
  freqs = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
  return np.outer(np.arange(seq_len, dtype=np.float64), freqs).astype(
      np.float32)


def apply_rope(x, angles):
  """Rotates each pair (x_2i, x_2i+1) of x [B, N, heads, d] by the angle of
  its position: (x_2i cos θ − x_2i+1 sin θ, x_2i sin θ + x_2i+1 cos θ)."""
  cos = jnp.asarray(np.cos(angles))[None, :, None]
  sin = jnp.asarray(np.sin(angles))[None, :, None]
  x32 = x.astype(jnp.float32)
  even, odd = x32[..., 0::2], x32[..., 1::2]
  rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], -1)
  return rotated.reshape(x.shape).astype(x.dtype)


def _dense(features, c, dtype, name, use_bias=False):
  return nn.Dense(features, use_bias=use_bias, kernel_init=scaled_normal(c),
                  dtype=dtype, name=name)


class RoPEAttention(nn.Module):
  """softmax(RoPE(norm(q))·RoPE(norm(k))ᵀ/√d)·v, q, k, v and the output
  Linear without bias."""
  num_heads: int
  weight_init: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, angles):
    b, n, d = x.shape
    head = d // self.num_heads
    q, k, v = (_dense(d, self.weight_init, self.dtype, name)(x).reshape(
        b, n, self.num_heads, head) for name in ("q", "k", "v"))
    q = apply_rope(RMSNorm(name="q_norm")(q), angles)
    k = apply_rope(RMSNorm(name="k_norm")(k), angles)
    out = jax.nn.dot_product_attention(q, k, v)
    return _dense(d, self.weight_init, self.dtype, "out")(out.reshape(b, n, d))


class SwiGLU(nn.Module):
  """w2(SiLU(w1·x) ⊙ w3·x) (Shazeer 2020), no biases."""
  hidden: int
  weight_init: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    gate = _dense(self.hidden, self.weight_init, self.dtype, "w1")(x)
    value = _dense(self.hidden, self.weight_init, self.dtype, "w3")(x)
    return _dense(x.shape[-1], self.weight_init, self.dtype, "w2")(
        nn.silu(gate) * value)


class Block(nn.Module):
  """x + γ_a ⊙ attn(norm(x)), then + γ_m ⊙ mlp(norm(x)); γ from zero."""
  num_heads: int
  mlp_ratio: float
  weight_init: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, angles):
    d = x.shape[-1]
    attn_scale = self.param("attn_scale", ZERO, (d,))
    mlp_scale = self.param("mlp_scale", ZERO, (d,))
    x = x + attn_scale * RoPEAttention(
        self.num_heads, self.weight_init, self.dtype, name="attn")(
            RMSNorm(name="norm1")(x), angles)
    mlp = SwiGLU(int(d * self.mlp_ratio), self.weight_init, self.dtype,
                 name="mlp")
    return x + mlp_scale * mlp(RMSNorm(name="norm2")(x))


class ImfDiT(nn.Module):
  """iMF's DiT (``SIZES``; B/2 … XL/2), called as every network here:
  ``model.apply(params, x, cond, train, return_v=False)`` with x
  [B, H, W, C] (H = W, a multiple of the patch) and a ``Condition``: c_step
  (h = t − r; c_noise with ``two_time=False``), labels (``num_classes`` >
  0; None = the null class), guidance (``guidance_inputs``: ω, t_min,
  t_max). return_v=True returns (u, v), the v head's output beside u."""
  patch_size: int = 2
  hidden_size: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_ratio: float = 8 / 3
  num_classes: int = 0  # > 0: class-conditional, label num_classes = null
  # True: the time input is h = t − r (c_step) alone, iMF's; False: t.
  two_time: bool = True
  guidance_inputs: bool = False  # iMF: ω, t_min, t_max as token groups
  v_head_depth: int = 8  # blocks of each head (official aux_head_depth)
  # Tokens per condition group (official num_class_tokens, num_time_tokens,
  # num_cfg_tokens, num_interval_tokens: each of t_min and t_max).
  class_tokens: int = 8
  time_tokens: int = 4
  guidance_tokens: int = 4
  interval_tokens: int = 2
  token_init: float = 1.0
  embedding_init: float = 1.0
  weight_init: float = 0.32
  rope_theta: float = 10_000.0
  frequency_dim: int = 256
  out_channels: Optional[int] = None  # default: x's channels
  dtype: Any = jnp.float32  # compute dtype; params stay float32

  @nn.compact
  def __call__(self, x, cond, train=False, return_weight=False,
               return_v=False):
    del train  # no dropout
    self._check(x, cond, return_weight, return_v)
    b = x.shape[0]
    d = self.hidden_size
    tokens = nn.Dense(d, kernel_init=XAVIER, dtype=self.dtype,
                      name="x_embedder")(
                          patchify(x, self.patch_size).astype(self.dtype))
    prefix = [self._group(name, count, value)
              for name, count, value in self._conditions(cond, b)]
    seq = jnp.concatenate([*prefix, tokens], axis=1)
    angles = rope_angles(seq.shape[1], d // self.num_heads, self.rope_theta)
    shared = self.depth - self.v_head_depth
    for i in range(shared):
      seq = self._block(f"block{i}")(seq, angles)
    u = seq
    for i in range(shared, self.depth):
      u = self._block(f"u_block{i}")(u, angles)
    n_prefix = seq.shape[1] - tokens.shape[1]
    out = self._final(u[:, n_prefix:], x.shape, "u_final")
    if not self.v_head_depth or not (return_v or self.is_initializing()):
      return out
    v = seq
    for i in range(shared, self.depth):
      v = self._block(f"v_block{i}")(v, angles)
    v = self._final(v[:, n_prefix:], x.shape, "v_final")
    return (out, v) if return_v else out

  def _conditions(self, cond, batch):
    """(group name, token count, embedder input or labels) in sequence
    order: class, ω, t_min, t_max, time (imfDiT ``_build_sequence``)."""
    groups = []
    if self.num_classes > 0:
      labels = cond.labels
      if labels is None:  # unconditional: the null class
        labels = jnp.full((batch,), self.num_classes, jnp.int32)
      groups.append(("class", self.class_tokens, labels))
    if self.guidance_inputs:
      g = guidance_features(cond.guidance)
      groups += [("omega", self.guidance_tokens, g["omega"]),
                 ("t_min", self.interval_tokens, g["t_min"]),
                 ("t_max", self.interval_tokens, g["t_max"])]
    time = cond.c_step if self.two_time else cond.c_noise
    groups.append(("time", self.time_tokens, time))
    return groups

  def _group(self, name, count, value):
    """The group's learned tokens [count, D] plus its embedding [B, D]."""
    d = self.hidden_size
    tokens = self.param(f"{name}_tokens", nn.initializers.normal(
        self.token_init / np.sqrt(d)), (count, d))
    if name == "class":
      emb = nn.Embed(self.num_classes + 1, d, embedding_init=nn.initializers
                     .normal(self.embedding_init / np.sqrt(d)),
                     name="y_embedder")(value)
    else:
      emb = TimestepEmbedder(d, self.frequency_dim, self.dtype,
                             kernel_init=scaled_normal(self.embedding_init),
                             name=f"{name}_embedder")(value)
    return (tokens[None] + emb[:, None]).astype(self.dtype)

  def _block(self, name):
    return Block(self.num_heads, self.mlp_ratio, self.weight_init,
                 self.dtype, name=name)

  def _final(self, h, shape, prefix):
    """RMSNorm, Linear to patches (zero), unpatchify."""
    _, height, width, channels = shape
    p = self.patch_size
    out_ch = self.out_channels or channels
    h = RMSNorm(name=f"{prefix}_norm")(h)
    h = nn.Dense(p * p * out_ch, kernel_init=ZERO, dtype=self.dtype,
                 name=f"{prefix}_linear")(h)
    return unpatchify(h, p, height, width).astype(jnp.float32)

  def _check(self, x, cond, return_weight, return_v):
    check_inputs("imf_dit", x, cond, self.patch_size, self.num_classes,
                 self.guidance_inputs, return_weight)
    if not 0 <= self.v_head_depth <= self.depth:
      raise ValueError(f"model.v_head_depth={self.v_head_depth} must be in "
                       f"[0, model.depth={self.depth}] (iMF: 8).")
    if return_v and not self.v_head_depth:
      raise ValueError("return_v needs model.v_head_depth > 0 (iMF's "
                       "auxiliary v head).")
    if self.two_time and cond.c_step is None:
      raise ValueError("model.two_time=True reads h = t − r (cond.c_step); "
                       "call it through the linear process (process=linear)"
                       ", or set model.two_time=False to read t.")

"""MLP for low-dimensional data (the 2-D toy sets), same interface as the UNet."""

from typing import Any, Optional

import jax.numpy as jnp
import flax.linen as nn

from cm_jax.nn.embeddings import ConditionEmbedding, with_adaptive_weight

XAVIER = nn.initializers.xavier_uniform()


class MLP(nn.Module):
  """x [B, D] → F(x) [B, D]: `depth` hidden layers of width `hidden`, SiLU.

  Each hidden layer adds a Dense projection of the condition embedding
  (noise, label, context, w) to its pre-activation, as the UNet blocks do. The output
  layer is initialised near zero, like the UNet's.
  """
  hidden: int = 256
  depth: int = 4
  embedding: str = "fourier"  # "fourier" | "positional"
  fourier_scale: float = 16.0
  num_classes: int = 0  # > 0: class-conditional, label num_classes = null
  w_embedding: bool = False  # LCM: guidance scale w as an input (`w`)
  context_dim: int = 0  # > 0: a per-example context vector [B, D] as an input
  adaptive_weight: bool = False  # sCM: also the weighting w_φ(c_noise)
  two_time: bool = False  # flow maps: also embed cond.c_step (t − r)
  guidance_inputs: bool = False  # iMF: cond.guidance (ω, t_min, t_max)
  # iMF: an auxiliary v head (the last hidden layer and the output, twice);
  # return_v=True returns (u, v).
  v_head: bool = False
  dropout: float = 0.0
  out_dim: Optional[int] = None  # default: x's width
  dtype: Any = jnp.float32  # compute dtype; params stay float32

  @nn.compact
  def __call__(self, x, cond, train=False, return_weight=False,
               return_v=False):
    emb = ConditionEmbedding(self.hidden, self.hidden, self.embedding, self.fourier_scale,
                             self.num_classes, self.w_embedding, self.dtype,
                             context_dim=self.context_dim,
                             two_time=self.two_time,
                             guidance_inputs=self.guidance_inputs,
                             name="embed")(cond)
    emb = nn.silu(emb)
    dense = lambda width, name, init=XAVIER: nn.Dense(
        width, kernel_init=init, dtype=self.dtype, name=name)
    near_zero = nn.initializers.variance_scaling(1e-10, "fan_avg", "uniform")

    def layer(h, prefix, i):
      h = nn.silu(dense(self.hidden, f"{prefix}layer{i}")(h)
                  + dense(self.hidden, f"{prefix}emb{i}")(emb))
      return nn.Dropout(self.dropout, deterministic=not train)(h)

    h = dense(self.hidden, "in")(x.astype(self.dtype))
    shared = self.depth - (1 if self.v_head else 0)
    for i in range(shared):
      h = layer(h, "", i)
    trunk = h
    for i in range(shared, self.depth):  # the u branch of a v_head model
      h = layer(h, "", i)
    out = dense(self.out_dim or x.shape[-1], "out", near_zero)(h)
    out = with_adaptive_weight(self, out.astype(jnp.float32), cond.c_noise,
                               return_weight, self.hidden)
    if not self.v_head:
      if return_v:
        raise ValueError("return_v needs model.v_head=True (iMF's auxiliary "
                         "v head).")
      return out
    if not (return_v or self.is_initializing()):
      return out
    # iMF's auxiliary head: its own last layer and output, from the trunk.
    v = dense(self.out_dim or x.shape[-1], "v_out", near_zero)(
        layer(trunk, "v_", shared))
    return (out, v.astype(jnp.float32)) if return_v else out

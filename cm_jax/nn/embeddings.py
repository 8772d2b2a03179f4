"""The conditioning of a network and its embedding.

``Condition`` is everything a network is conditioned on, one pytree: the
already preconditioned noise input c_noise (EDM's 0.25·ln σ), and optionally
a flow map's second time c_step, a class label, a per-example context vector, LCM's guidance scale w and EDM's
augmentation labels. A new input is one new field, which networks ignore
until one uses it. `ConditionEmbedding`, shared by every network, maps a
``Condition`` to one vector that the blocks consume.
"""

from typing import Any
import zlib

import flax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

from cm_jax import registry

# LCM embeds the guidance scale as sinusoidal(1000·w) (`guidance_scale_embedding`
# in the LCM training script), so w in [2, 14] spans the usual frequency range.
W_EMBEDDING_SCALE = 1000.0


class GaussianFourierProjection(nn.Module):
  """[sin(2π W c), cos(2π W c)], W ~ N(0, scale²) fixed (NCSN++, score_sde).

  The official JAX NCSN++ (openai/consistency_models_cifar10
  `jcm/models/layerspp.py`, from score_sde) draws W as an entry of `params`
  and wraps it in stop_gradient, so it is never trained but rides in every
  checkpoint and optimizer state. Here W is a constant seeded by the module's
  name (`fourier_frequencies`): the same function of c, nothing in `params`
  for an optimizer or weight decay to touch. NumPy's legacy RandomState
  stream is frozen across versions, so W never changes. To load official
  weights, compare their W with ``fourier_frequencies`` (or copy these into
  theirs, as scripts/compare_official_ncsnpp.py does).
  Scale 16 for CM's NCSN++, 0.02 for iCT. Output width `dim`: dim/2 sines, dim/2 cosines.
  """
  dim: int
  scale: float = 16.0

  @nn.compact
  def __call__(self, c):
    w = jnp.asarray(fourier_frequencies(self.dim, self.scale, self.name))
    proj = 2 * np.pi * c.astype(jnp.float32)[:, None] * w[None, :]
    return jnp.concatenate([jnp.sin(proj), jnp.cos(proj)], axis=-1)


def fourier_frequencies(dim, scale, name):
  """The dim/2 frequencies W of the GaussianFourierProjection called
  ``name`` (float32): scale·N(0, 1), drawn from a stream seeded by the name."""
  rng = np.random.RandomState(zlib.crc32((name or "").encode()))
  return (rng.standard_normal(dim // 2) * scale).astype(np.float32)


class PositionalEmbedding(nn.Module):
  """Transformer sinusoidal embedding (DDPM `get_timestep_embedding`; EDM DDPM++).

  Frequencies (1/max_positions)^(i/(dim/2 − 1)), i = 0 … dim/2 − 1.
  """
  dim: int
  max_positions: float = 10_000.0

  @nn.compact
  def __call__(self, c):
    half = self.dim // 2
    freqs = np.exp(-np.log(self.max_positions) * np.arange(half) / (half - 1))
    args = c.astype(jnp.float32)[:, None] * jnp.asarray(freqs, jnp.float32)
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def noise_embedding(kind: str, dim: int, fourier_scale: float, name: str):
  """Resolves `model.embedding` ("fourier" | "positional") to a module."""
  makers = {
      "fourier": lambda: GaussianFourierProjection(dim, fourier_scale, name=name),
      "positional": lambda: PositionalEmbedding(dim, name=name),
  }
  return registry.lookup(makers, kind, "model.embedding")()


@flax.struct.dataclass
class Condition:
  """What a network is conditioned on (a pytree; ``None`` fields are absent).

  Attributes:
    c_noise: float32 [B], the preconditioned noise (time) input.
    c_step: float32 [B], a flow map's second time input (MeanFlow's t − r,
      scaled as c_noise; ``processes.Linear``), read by networks with
      ``two_time``; networks of one time ignore it (their u(z, r, t) is
      v(z, t) for every r).
    labels: int32 [B] class labels when num_classes > 0 (num_classes = the
      null class; None = all null).
    w: float32 [B], LCM's guidance scale, required iff w_embedding.
    context: float32 [B, context_dim], a per-example embedding vector (the
      zero vector = the null context; None = all null).
    augment_labels: float32 [B, augment_dim], EDM's augmentation labels
      (None = the identity transform).
    guidance: float32 [B, 3], iMF's guidance scale ω and interval (t_min,
      t_max) as inputs, required iff guidance_inputs; the network embeds
      1 − 1/ω, t_min and t_max (Lyy-iiis/imeanflow ``imfDiT``).
  """

  c_noise: Any = None
  c_step: Any = None
  labels: Any = None
  w: Any = None
  context: Any = None
  augment_labels: Any = None
  guidance: Any = None


def guidance_features(guidance):
  """iMF's three guidance inputs from (ω, t_min, t_max) [B, 3]: 1 − 1/ω
  (0 unguided, → 1 as ω grows; imfDiT ``omega_embedder(1 - 1 / w)``),
  t_min and t_max, each [B]."""
  omega, t_min, t_max = (guidance[:, i].astype(jnp.float32) for i in range(3))
  return {"omega": 1.0 - 1.0 / omega, "t_min": t_min, "t_max": t_max}


class ConditionEmbedding(nn.Module):
  """A ``Condition`` → embedding [B, emb_dim] (EDM SongUNet `map_*`
  layers).

  noise emb (‖ step emb) (+ label emb) (+ Dense(context)) (+ zero-init proj
  of w emb) → Dense → SiLU → Dense.
  - c_step (``two_time``, a flow map): the second time embedded as c_noise
    is (same kind and width, its own frequencies) and concatenated to it,
    as MeanFlow's U-Net does with t and t − r (Gsunshine/py-meanflow
    ``SongUNet``); the other conditions are then added at twice the width.
  - Labels index a table with num_classes + 1 rows: label == num_classes is
    the null (unconditional) class for classifier-free guidance; labels=None
    with num_classes > 0 means the null class.
  - context: any per-example embedding vector, float32 [B, context_dim] (a
    pooled text/CLIP embedding, a class code, ...), added through a Dense
    layer the way the label embedding is. The null (unconditional) context is
    the zero vector; as the Dense has a bias, it maps to a learned vector
    (the bias), the counterpart of the null label's row. context=None with
    context_dim > 0 means the null context for every example.
  - augment_labels: EDM's augmentation labels [B, augment_dim] of the
    transform applied to each training image (cm_jax.data.augment), through
    a bias-free Dense (EDM `map_augment`); None (sampling) is the identity
    transform, whose labels are zero.
  - w (LCM's guidance scale, float32 [B]) is required exactly when
    w_embedding is True; its projection is zero-initialised without bias, so
    w conditioning is a no-op at init (LCM).
  - guidance (iMF's ω, t_min, t_max, float32 [B, 3]) is required exactly
    when guidance_inputs is True: 1 − 1/ω, t_min and t_max are each
    embedded as c_noise is and added through a Dense layer of their own
    (iMF's embedders, whose outputs its DiT adds to learned tokens).
  """
  noise_dim: int
  emb_dim: int
  embedding: str = "fourier"
  fourier_scale: float = 16.0
  num_classes: int = 0
  w_embedding: bool = False
  dtype: Any = jnp.float32
  context_dim: int = 0
  augment_dim: int = 0
  two_time: bool = False
  guidance_inputs: bool = False

  @nn.compact
  def __call__(self, cond):
    c_noise, labels, w, context, augment_labels = (
        cond.c_noise, cond.labels, cond.w, cond.context, cond.augment_labels)
    self._check_inputs(c_noise, labels, w, context)
    if augment_labels is not None and self.augment_dim == 0:
      raise ValueError("augment_labels given but model.augment_dim = 0; set "
                       "--config.model.augment_dim=9 (EDM's augmentation).")
    emb = noise_embedding(self.embedding, self.noise_dim, self.fourier_scale,
                          name="noise")(c_noise)
    if self.two_time:
      if cond.c_step is None:
        raise ValueError("model.two_time=True (a flow map u(z, r, t)) needs "
                         "cond.c_step, its second time; call it through "
                         "the linear process (process=linear).")
      emb = jnp.concatenate([emb, noise_embedding(
          self.embedding, self.noise_dim, self.fourier_scale,
          name="step")(cond.c_step)], axis=-1)
    width = emb.shape[-1]  # what the other conditions are added to
    if self.num_classes > 0:
      if labels is None:  # unconditional: the null class
        labels = jnp.full(c_noise.shape, self.num_classes, jnp.int32)
      emb += nn.Embed(self.num_classes + 1, width, name="label")(labels)
    if self.context_dim > 0:
      if context is None:  # unconditional: the null (zero) context
        context = jnp.zeros((*c_noise.shape, self.context_dim), jnp.float32)
      emb += nn.Dense(width, name="context")(context.astype(jnp.float32))
    if self.augment_dim > 0:  # EDM map_augment: no bias, so None ≡ zeros
      if augment_labels is None:  # sampling: the identity transform
        augment_labels = jnp.zeros((*c_noise.shape, self.augment_dim))
      emb += nn.Dense(width, use_bias=False,
                      kernel_init=nn.initializers.xavier_uniform(),
                      name="augment")(augment_labels.astype(jnp.float32))
    check_guidance(cond.guidance, self.guidance_inputs)
    if self.guidance_inputs:
      for name, value in guidance_features(cond.guidance).items():
        emb += nn.Dense(width, name=f"guidance_{name}_proj")(noise_embedding(
            self.embedding, self.noise_dim, self.fourier_scale,
            name=f"guidance_{name}")(value))
    if self.w_embedding:
      w_emb = PositionalEmbedding(self.noise_dim, name="w")(W_EMBEDDING_SCALE * w)
      emb += nn.Dense(width, use_bias=False, kernel_init=nn.initializers.zeros,
                      name="w_proj")(w_emb)
    dense = lambda name: nn.Dense(self.emb_dim, dtype=self.dtype,
                                  kernel_init=nn.initializers.xavier_uniform(), name=name)
    return dense("map1")(nn.silu(dense("map0")(emb)))

  def _check_inputs(self, c_noise, labels, w, context):
    if c_noise.ndim != 1:
      raise ValueError(f"c_noise must have shape [B], got {c_noise.shape}.")
    if labels is not None and self.num_classes == 0:
      raise ValueError("labels given but model.num_classes = 0; set num_classes > 0.")
    if (w is None) == self.w_embedding:
      raise ValueError(f"w (the guidance scale) must be given iff w_embedding=True "
                       f"(w_embedding={self.w_embedding}, w "
                       f"{'missing' if w is None else 'given'}).")
    if context is not None:
      if self.context_dim == 0:
        raise ValueError("context given but model.context_dim = 0; set "
                         f"--config.model.context_dim={context.shape[-1]}.")
      if context.shape != (*c_noise.shape, self.context_dim):
        raise ValueError(f"context must have shape [B, model.context_dim] = "
                         f"{[*c_noise.shape, self.context_dim]}, got "
                         f"{list(context.shape)}; match --config.model."
                         "context_dim to the data's context width.")


def check_guidance(guidance, guidance_inputs):
  """iMF's guidance inputs are given exactly to a network that reads them."""
  if (guidance is None) == guidance_inputs:
    raise ValueError(
        "guidance (iMF's ω, t_min, t_max [B, 3]) must be given iff "
        f"model.guidance_inputs=True (guidance_inputs={guidance_inputs}, "
        f"guidance {'missing' if guidance is None else 'given'}).")
  if guidance is not None and (guidance.ndim != 2 or guidance.shape[1] != 3):
    raise ValueError(f"guidance must have shape [B, 3] (ω, t_min, t_max), "
                     f"got {list(guidance.shape)}.")


class AdaptiveWeight(nn.Module):
  """sCM's learned adaptive weighting w_φ(t) (sCM §4.2, after EDM2's
  uncertainty weighting): c_noise → noise embedding → Dense → a scalar
  per example [B]. Zero-initialised, so w_φ ≡ 0 (weight e⁰ = 1) at start."""
  dim: int = 128
  embedding: str = "positional"
  fourier_scale: float = 16.0

  @nn.compact
  def __call__(self, c_noise):
    emb = noise_embedding(self.embedding, self.dim, self.fourier_scale,
                          "embed")(c_noise)
    return nn.Dense(1, kernel_init=nn.initializers.zeros,
                    name="out")(emb)[:, 0].astype(jnp.float32)


def with_adaptive_weight(model, out, c_noise, return_weight, width):
  """A network's output F, or (F, w_φ(c_noise) [B]) with ``return_weight``
  (sCM §4.2). Called inside ``model``'s compact ``__call__``: the head
  ``adaptive_weight`` (an ``AdaptiveWeight`` of ``width``) exists, and is
  initialised, whenever ``model.adaptive_weight``."""
  if not model.adaptive_weight:
    if return_weight:
      raise ValueError("return_weight needs a network with "
                       "model.adaptive_weight=True.")
    return out
  weight = AdaptiveWeight(width, model.embedding, model.fourier_scale,
                          name="adaptive_weight")(c_noise)
  return (out, weight) if return_weight else out

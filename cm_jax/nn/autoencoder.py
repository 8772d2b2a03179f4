"""A small KL-regularised convolutional autoencoder for latent models (LDM, LCM).

The latent consistency models of Luo et al. (2023) run in the latent space of
Stable Diffusion's KL autoencoder (Rombach et al. 2022, LDM §3): an encoder E
maps an image x [H, W, C] to a diagonal Gaussian q(z | x) = N(μ, diag(e^logvar))
over latents z [H/f, W/f, c], a decoder D maps z back to x̂. It is trained with
a reconstruction loss and a small KL(q(z | x) ‖ N(0, I)) (`method=ae`,
`cm_jax.train.objective.AutoencoderLoss`); diffusion and consistency models
then train on z, scaled to unit variance (`cm_jax.data.latents`).

`Autoencoder` is the interface the rest of cm_jax uses, so any pretrained VAE
can stand in (see `cm_jax.data.latents` and docs/methods.md, "Latent space").
"""

from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from cm_jax.nn.unet import XAVIER, group_norm

# LDM's DiagonalGaussianDistribution clamps log-variances to this range.
LOGVAR_RANGE = (-30.0, 20.0)


class Autoencoder(Protocol):
  """What latent-space training needs of an autoencoder.

  ``encode`` maps images [B, H, W, C] (float32 in [−1, 1]) to latents
  [B, *latent_shape(H, W, C)] (for a VAE, the posterior mean); ``decode``
  maps latents back to images in [−1, 1]. Both take and return arrays and
  must be deterministic. Unit-variance scaling is applied outside (the
  latent source stores the factor), so latents may have any scale.
  """

  def encode(self, x: jax.Array) -> jax.Array: ...

  def decode(self, z: jax.Array) -> jax.Array: ...

  def latent_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]: ...


class ResBlock(nn.Module):
  """x + conv(SiLU(GN(conv(SiLU(GN(x)))))), a 1×1 skip when channels change."""
  out_ch: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = lambda ch, k, name: nn.Conv(ch, (k, k), kernel_init=XAVIER,
                                       dtype=self.dtype, name=name)
    h = conv(self.out_ch, 3, "conv0")(group_norm(x, self.dtype, "norm0",
                                                 silu=True))
    h = conv(self.out_ch, 3, "conv1")(group_norm(h, self.dtype, "norm1",
                                                 silu=True))
    if x.shape[-1] != self.out_ch:
      x = conv(self.out_ch, 1, "skip")(x)
    return x + h


class Encoder(nn.Module):
  """x [B, H, W, C] → (μ, logvar), each [B, H/f, W/f, z_channels]; f =
  2^(len(ch_mult) − 1), one stride-2 convolution per level after the first."""
  ch: int
  ch_mult: tuple
  num_res_blocks: int
  z_channels: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    h = nn.Conv(self.ch * self.ch_mult[0], (3, 3), kernel_init=XAVIER,
                dtype=self.dtype, name="in_conv")(x.astype(self.dtype))
    for level, mult in enumerate(self.ch_mult):
      if level > 0:
        h = nn.Conv(h.shape[-1], (3, 3), strides=(2, 2), kernel_init=XAVIER,
                    dtype=self.dtype, name=f"down{level}")(h)
      for i in range(self.num_res_blocks):
        h = ResBlock(self.ch * mult, self.dtype, name=f"block{level}_{i}")(h)
    h = ResBlock(h.shape[-1], self.dtype, name="mid")(h)
    h = group_norm(h, self.dtype, "out_norm", silu=True)
    moments = nn.Conv(2 * self.z_channels, (3, 3), kernel_init=XAVIER,
                      dtype=self.dtype, name="out_conv")(h)
    mean, logvar = jnp.split(moments.astype(jnp.float32), 2, axis=-1)
    return mean, jnp.clip(logvar, *LOGVAR_RANGE)


class Decoder(nn.Module):
  """z [B, h, w, z_channels] → x̂ [B, h·f, w·f, out_channels]; nearest-neighbour
  upsampling and a 3×3 convolution per level (LDM's `Upsample`)."""
  ch: int
  ch_mult: tuple
  num_res_blocks: int
  out_channels: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z):
    h = nn.Conv(self.ch * self.ch_mult[-1], (3, 3), kernel_init=XAVIER,
                dtype=self.dtype, name="in_conv")(z.astype(self.dtype))
    h = ResBlock(h.shape[-1], self.dtype, name="mid")(h)
    for level in reversed(range(len(self.ch_mult))):
      for i in range(self.num_res_blocks):
        h = ResBlock(self.ch * self.ch_mult[level], self.dtype,
                     name=f"block{level}_{i}")(h)
      if level > 0:
        h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
        h = nn.Conv(h.shape[-1], (3, 3), kernel_init=XAVIER, dtype=self.dtype,
                    name=f"up{level}")(h)
    h = group_norm(h, self.dtype, "out_norm", silu=True)
    out = nn.Conv(self.out_channels, (3, 3), kernel_init=XAVIER,
                  dtype=self.dtype, name="out_conv")(h)
    return out.astype(jnp.float32)


class KLAutoencoder(nn.Module):
  """The KL autoencoder (LDM's AutoencoderKL without the GAN), ``model.name =
  "autoencoder"``.

  ``__call__(x, cond=None, train=False)`` is the training pass with the
  networks' call signature (the condition is unused): it returns (x̂, μ,
  logvar), x̂ decoded from
  z = μ + e^(logvar/2)·ε with ε drawn from the ``dropout`` RNG stream (the
  train step's per-step key) when ``train``, from z = μ otherwise.
  ``encode`` (→ μ) and ``decode`` are the deterministic halves, for
  ``model.apply(..., method="encode")``.
  """
  ch: int = 64
  ch_mult: tuple = (1, 2)  # f = 2^(len − 1): (1, 2) halves H and W once
  num_res_blocks: int = 1
  z_channels: int = 4  # c, the latent channels (SD: 4)
  out_channels: int = 3  # the images' channels (checked against the data)
  dtype: Any = jnp.float32

  @property
  def factor(self):
    return 2 ** (len(self.ch_mult) - 1)

  def setup(self):
    kw = dict(ch=self.ch, ch_mult=tuple(self.ch_mult),
              num_res_blocks=self.num_res_blocks, dtype=self.dtype)
    self.encoder = Encoder(z_channels=self.z_channels, **kw)
    self.decoder = Decoder(out_channels=self.out_channels, **kw)

  def __call__(self, x, cond=None, train=False, return_weight=False):
    if return_weight:
      raise ValueError("The autoencoder has no adaptive weighting w_φ.")
    del cond
    self._check_channels(x)
    mean, logvar = self.encoder(x)
    z = mean
    if train:  # the reparametrisation trick (VAE, LDM)
      eps = jax.random.normal(self.make_rng("dropout"), mean.shape)
      z = mean + jnp.exp(0.5 * logvar) * eps
    return self.decoder(z), mean, logvar

  def encode(self, x):
    """The posterior mean μ(x): the latents diffusion trains on."""
    return self.encoder(x)[0]

  def decode(self, z):
    return self.decoder(z)

  def latent_shape(self, image_shape):
    h, w, _ = image_shape
    return (h // self.factor, w // self.factor, self.z_channels)

  def _check_channels(self, x):
    if x.shape[-1] != self.out_channels:
      raise ValueError(f"model.out_channels={self.out_channels} must be the "
                       f"images' channels ({x.shape[-1]}); set "
                       f"--config.model.out_channels={x.shape[-1]}.")

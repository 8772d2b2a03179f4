"""Shortcut models (Frans, Hafner, Levine, Abbeel 2025, "One Step Diffusion
via Shortcut Models"): a flow map u(z, r, t) on the linear process trained
by flow matching at d = 0 and by self-consistency on a dyadic grid of step
sizes, two half jumps of the network giving the target of one whole jump.
No JVP."""

import dataclasses
import math

import jax.numpy as jnp
import ml_collections

from cm_jax import losses, processes
from cm_jax.methods.base import Needs
from cm_jax.methods.meanflow import check_flow_map

GROUP = "shortcut"  # config.shortcut


def config():
  """config.shortcut: the defaults of kvfrans/shortcut-models ``train.py``."""
  c = ml_collections.ConfigDict()
  c.denoise_steps = 128  # M: the smallest step 1/M; d ∈ {1/M, …, 1/2}.
  c.bootstrap_every = 8  # 1 in this many examples is a self-consistency one.
  c.clip = 4.0  # Self-consistency targets and midpoints clipped to ±this.
  return c


def configure(c):
  """Sets config ``c`` to shortcut models as the official code trains them:
  process=linear, the network reading (t, d) (model.two_time), M = 128,
  one example in 8 a self-consistency one, its targets from the EMA
  parameters θ⁻ at rate 0.999 (``bootstrap_ema``, ``target_update_rate``),
  clipped to ±4; 1 and 2 jumps (t = 1, 0.5, 0)."""
  c.method = "shortcut"
  c.process = "linear"
  c.linear.time_scale = 1.0
  c.model.two_time = True
  c.shortcut.denoise_steps = 128
  c.shortcut.bootstrap_every = 8
  c.shortcut.clip = 4.0
  c.target.ema, c.target.mu = "fixed", 0.999
  c.sample.ts = ()
  c.eval.steps = (1, 2)


@dataclasses.dataclass(frozen=True)
class ShortcutModel:
  """Shortcut models (``losses.shortcut_loss``): θ's u(z, r, t) regressed
  onto flow matching's ε − x0 at r = t and onto θ⁻'s two half jumps at
  r = t − 2d."""

  needs = Needs(sampler="flow_map")
  denoise_steps: int
  bootstrap_every: int
  clip: float
  target_mu: float
  diffusion: processes.Linear

  @classmethod
  def from_config(cls, config, example_shape):
    del example_shape
    check_flow_map(config)
    sc = config.shortcut
    m = int(sc.denoise_steps)
    if m < 2 or 2 ** round(math.log2(m)) != m:
      raise ValueError(f"shortcut.denoise_steps={m} must be a power of 2 "
                       "≥ 2 (the dyadic grid of d); set "
                       "--config.shortcut.denoise_steps=128.")
    levels = round(math.log2(m))
    batch = config.train.batch_size
    if sc.bootstrap_every < 1 or batch // sc.bootstrap_every < levels:
      raise ValueError(
          f"shortcut.bootstrap_every={sc.bootstrap_every} leaves "
          f"{batch // max(sc.bootstrap_every, 1)} self-consistency examples "
          f"of a batch of {batch}, fewer than the {levels} step sizes of "
          f"denoise_steps={m}; lower shortcut.bootstrap_every or raise "
          "train.batch_size.")
    if config.target.ema != "fixed":
      raise ValueError("method=shortcut takes its targets from θ⁻, an EMA "
                       "at a fixed rate (the official 0.999); set "
                       "--config.target.ema=fixed.")
    return cls(denoise_steps=m, bootstrap_every=int(sc.bootstrap_every),
               clip=float(sc.clip), target_mu=float(config.target.mu),
               diffusion=processes.make_process(config))

  def __call__(self, online, target, x0, key, step, teacher=None):
    del step, teacher
    u = self.diffusion.average_velocity
    loss = losses.shortcut_loss(
        u(online), u(target), x0, key, denoise_steps=self.denoise_steps,
        bootstrap_every=self.bootstrap_every, clip=self.clip)
    return loss, {"target_mu": jnp.float32(self.target_mu)}

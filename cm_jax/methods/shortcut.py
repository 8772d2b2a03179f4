"""Shortcut models (Frans, Hafner, Levine, Abbeel 2025, "One Step Diffusion
via Shortcut Models"): a flow map u(z, r, t) on the linear process trained
by flow matching at d = 0 and by self-consistency on a dyadic grid of step
sizes, two half jumps of the network giving the target of one whole jump.
No JVP. Class-conditional with class dropout on the flow-matching examples
and, with ``bootstrap_cfg``, classifier-free guidance inside the smallest
step's self-consistency targets (the official ImageNet recipe)."""

import dataclasses
import functools
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
  # Class-conditional models (model.num_classes > 0): a flow-matching
  # example sees the null class with this probability (class_dropout_prob);
  # the self-consistency examples keep their labels.
  c.label_dropout = 0.1
  # bootstrap_cfg: the smallest step's self-consistency targets (2d = 2/M,
  # the first B_b // log₂M of them) are two half jumps of θ⁻ under
  # classifier-free guidance at cfg_scale, u(∅) + s·(u(c) − u(∅)).
  c.bootstrap_cfg = False
  c.cfg_scale = 4.0  # cfg_scale (the README's ImageNet command: 1.5)
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
  r = t − 2d. A class-conditional u (``num_classes``) trains by
  ``losses.conditional_shortcut_loss``: class dropout on the flow-matching
  examples and, with ``cfg_scale`` (bootstrap_cfg), guided half jumps in
  the smallest step's targets; it samples at any CFG scale
  (``sample.guidance``, u(∅) + ω·(u(c) − u(∅)))."""

  needs = Needs(sampler="flow_map")
  denoise_steps: int
  bootstrap_every: int
  clip: float
  target_mu: float
  diffusion: processes.Linear
  num_classes: int = 0
  label_dropout: float = 0.0
  cfg_scale: float | None = None  # bootstrap_cfg's s; None: off

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
    num_classes = int(config.model.get("num_classes", 0))
    if sc.bootstrap_cfg and not num_classes:
      raise ValueError("shortcut.bootstrap_cfg=True guides a class-"
                       "conditional model; set model.num_classes > 0, or "
                       "--config.shortcut.bootstrap_cfg=False.")
    if num_classes and not 0.0 <= sc.label_dropout <= 1.0:
      raise ValueError(f"shortcut.label_dropout={sc.label_dropout} is a "
                       "probability; set --config.shortcut.label_dropout in "
                       "[0, 1] (official class_dropout_prob: 0.1).")
    if sc.bootstrap_cfg and sc.label_dropout <= 0:
      raise ValueError("shortcut.bootstrap_cfg=True needs the null class "
                       "trained: set --config.shortcut.label_dropout > 0 "
                       "(official class_dropout_prob: 0.1).")
    return cls(denoise_steps=m, bootstrap_every=int(sc.bootstrap_every),
               clip=float(sc.clip), target_mu=float(config.target.mu),
               diffusion=processes.make_process(config),
               num_classes=num_classes,
               label_dropout=float(sc.label_dropout) if num_classes else 0.0,
               cfg_scale=float(sc.cfg_scale) if sc.bootstrap_cfg else None)

  def __call__(self, online, target, x0, key, step, teacher=None):
    del step, teacher
    u = self.diffusion.average_velocity
    if not self.num_classes:
      loss = losses.shortcut_loss(
          u(online), u(target), x0, key, denoise_steps=self.denoise_steps,
          bootstrap_every=self.bootstrap_every, clip=self.clip)
      return loss, {"target_mu": jnp.float32(self.target_mu)}
    labelled = lambda net: lambda z, r, t, y: u(
        functools.partial(net, labels=y))(z, r, t)
    loss = losses.conditional_shortcut_loss(
        labelled(online), labelled(target), x0, online.condition.labels, key,
        num_classes=self.num_classes, denoise_steps=self.denoise_steps,
        bootstrap_every=self.bootstrap_every, clip=self.clip,
        label_dropout=self.label_dropout, cfg_scale=self.cfg_scale)
    return loss, {"target_mu": jnp.float32(self.target_mu)}

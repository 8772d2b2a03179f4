"""MeanFlow (Geng, Deng, Bai, Kolter, He 2025, "Mean Flows for One-step
Generative Modeling"): a flow map u_θ(z, r, t), the average velocity from t
to r on the linear process, trained on the MeanFlow identity from scratch;
sampled in one jump z_0 = z_1 − u_θ(z_1, 0, 1) or a few (eq. 12)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections

from cm_jax import losses, processes
from cm_jax.methods.base import Needs, own_lognormal

GROUP = "meanflow"  # config.meanflow


def config():
  """config.meanflow: MeanFlow's time sampler and adaptive weight (the
  defaults of Gsunshine/meanflow ``configs/default.py``, ImageNet 256)."""
  c = ml_collections.ConfigDict()
  # t, r: two draws of sigmoid(N(p_mean, p_std²)), sorted (MeanFlow §4.3).
  c.p_mean = -0.4
  c.p_std = 1.0
  # The share of examples with r ≠ t; the rest have r = t, flow matching
  # (MeanFlow Table 1a: 25%; the official data_proportion = 1 − this).
  c.r_neq_t = 0.25
  # Adaptive loss weight sg(1/(‖Δ‖² + c)^p) (MeanFlow §4.3: p = 1 on
  # ImageNet, c = 0.01; p = 0 is the plain squared error).
  c.adaptive_p = 1.0
  c.adaptive_c = 0.01
  # Class-conditional models: the first n ~ Binomial(B, this) examples of a
  # batch train as the null class (official class_dropout_prob) ...
  c.label_dropout = 0.1
  # ... and classifier-free guidance is folded into the target (eq. 15–19):
  # v_g = ω·v + (1 − ω − κ)·u(∅) + κ·u(c) for t in [t_start, t_end]; ω = 1,
  # κ = 0 is no guidance. Effective scale ω' = ω/(1 − κ).
  c.omega = 1.0
  c.kappa = 0.0
  c.t_start = 0.0
  c.t_end = 1.0
  # iMF with model.guidance_inputs: ω drawn per example with density ∝ ω^−β
  # on [1, 1 + guidance_s_max] (Lyy-iiis/imeanflow sample_cfg_scale: s_max
  # 7, cfg_beta 1), the interval t_min ~ U[0, ½), t_max ~ U[½, 1).
  c.guidance_s_max = 7.0
  c.guidance_beta = 1.0
  return c


# The paper's (t, r) sampler, share of r ≠ t and adaptive weight, per
# benchmark (MeanFlow App. A; official code).
# CIFAR-10 (Gsunshine/py-meanflow cifar10_v0.sh, "the original
# configuration used in the paper"): lognorm(−2.0, 2.0), 75% r ≠ t,
# p = 0.75, c = 1e-3.
CIFAR10 = dict(p_mean=-2.0, p_std=2.0, r_neq_t=0.75, adaptive_p=0.75,
               adaptive_c=1e-3)
# ImageNet 256 (Table 4; Gsunshine/meanflow configs/default.py):
# lognorm(−0.4, 1.0), 25% r ≠ t, p = 1, c = 0.01; guidance per size
# (``GUIDANCE``).
IMAGENET = dict(p_mean=-0.4, p_std=1.0, r_neq_t=0.25, adaptive_p=1.0,
                adaptive_c=0.01)
# MeanFlow Table 4, (ω, κ, t_start, t_end) per DiT size: B/2 and M/2 ω' = 2,
# L/2 and XL/2 ω' = 2.5 (ω' = ω/(1 − κ)); XL/2+ (1000 epochs) (1, 0.5,
# 0.3, 0.8).
GUIDANCE = {"B": (1.0, 0.5, 0.0, 1.0), "M": (1.0, 0.5, 0.0, 1.0),
            "L": (0.2, 0.92, 0.0, 0.8), "XL": (0.2, 0.92, 0.0, 0.75)}


def configure(c, law):
  """Sets config ``c`` to MeanFlow (Alg. 1): process=linear with the network
  reading (t, t − r) raw (model.two_time, linear.time_scale = 1, as the
  official code), no target network, the (t, r) sampler, share of r ≠ t
  and adaptive weight of ``law`` (``CIFAR10`` or ``IMAGENET``); 1 and 2
  jumps at t = 1, 0.5, 0 (eq. 12)."""
  c.method = "meanflow"
  c.process = "linear"
  c.linear.time_scale = 1.0
  c.model.two_time = True
  for field, value in law.items():
    c.meanflow[field] = value
  c.target.ema, c.target.mu = "fixed", 0.0
  c.sample.ts = ()  # 2 steps: 1 → 0.5 → 0 (the linear grid)
  c.eval.steps = (1, 2)


def check_flow_map(config):
  """A flow map runs on the linear process with a two-time network."""
  if config.process != "linear":
    raise ValueError(f"method={config.method} trains a flow map u(z, r, t) "
                     "of the linear process z_t = (1 − t)·x + t·ε; set "
                     "--config.process=linear.")
  if not config.model.get("two_time", False):
    raise ValueError(f"method={config.method} trains u(z, r, t), a network "
                     "of two times; set --config.model.two_time=True.")


@dataclasses.dataclass(frozen=True)
class MeanFlow:
  """MeanFlow (Alg. 1): ``losses.meanflow_loss`` on θ's u(z, r, t) (the
  process's ``average_velocity``), (t, r) from ``losses.meanflow_times``,
  the adaptive weight with power ``adaptive_p``. No target network
  (u_tgt is θ's own, under stop-gradient), so θ⁻ = θ (μ = 0)."""

  needs = Needs(sampler="flow_map", forward_mode=True)
  p_mean: float
  p_std: float
  r_neq_t: float
  adaptive_p: float
  adaptive_c: float
  diffusion: processes.Linear
  num_classes: int = 0
  label_dropout: float = 0.0
  guidance: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 1.0)

  @classmethod
  def from_config(cls, config, example_shape):
    del example_shape
    check_flow_map(config)
    p_mean, p_std = own_lognormal(config, GROUP)
    mf = config.meanflow
    if not 0.0 <= mf.r_neq_t <= 1.0:
      raise ValueError(f"meanflow.r_neq_t={mf.r_neq_t} is a share of the "
                       "batch; set --config.meanflow.r_neq_t in [0, 1] "
                       "(MeanFlow: 0.25).")
    if mf.adaptive_c <= 0 and mf.adaptive_p > 0:
      raise ValueError(f"meanflow.adaptive_c={mf.adaptive_c} must be > 0 "
                       "(1/(‖Δ‖² + c)^p; MeanFlow: 0.01).")
    guidance = tuple(float(g) for g in (mf.omega, mf.kappa, mf.t_start,
                                        mf.t_end))
    num_classes = int(config.model.get("num_classes", 0))
    if guidance[:2] != (1.0, 0.0) and not num_classes:
      raise ValueError(f"meanflow.omega={mf.omega}, kappa={mf.kappa} guide "
                       "a class-conditional model; this one takes no label:"
                       " set model.num_classes, or omega=1 and kappa=0.")
    return cls(p_mean=p_mean, p_std=p_std,
               r_neq_t=float(mf.r_neq_t), adaptive_p=float(mf.adaptive_p),
               adaptive_c=float(mf.adaptive_c),
               diffusion=processes.make_process(config),
               num_classes=num_classes,
               label_dropout=float(mf.label_dropout) if num_classes else 0.0,
               guidance=guidance)

  def times(self, key, batch_size):
    return losses.meanflow_times(key, batch_size, p_mean=self.p_mean,
                                 p_std=self.p_std, r_neq_t=self.r_neq_t)

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, step, teacher
    u_net, velocity = online, None
    if self.num_classes:
      u_net, velocity, key = self._conditional(online, x0.shape[0], key)
    loss = losses.meanflow_loss(
        self.diffusion.average_velocity(u_net), x0, key, times=self.times,
        velocity=velocity, p=self.adaptive_p, c=self.adaptive_c)
    return loss, {"target_mu": jnp.float32(0.0)}

  def _conditional(self, online, batch, key):
    """A class-conditional u: the first n ~ Binomial(B, label_dropout)
    examples as the null class, and, with guidance, the target velocity
    ``losses.meanflow_guided_velocity`` from θ's own v(·|c) and v(·|∅)."""
    drop_key, key = jax.random.split(key)
    dropped = losses.first_dropped(drop_key, batch, self.label_dropout)
    labels = online.condition.labels
    null = jnp.full((batch,), self.num_classes, jnp.int32)
    u_net = functools.partial(online, labels=jnp.where(dropped, null, labels))
    omega, kappa, t_start, t_end = self.guidance
    if (omega, kappa) == (1.0, 0.0):
      return u_net, None, key
    v_of = lambda y: self.diffusion.velocity(functools.partial(online,
                                                               labels=y))
    velocity = losses.meanflow_guided_velocity(
        v_of(labels), v_of(null), omega=omega, kappa=kappa,
        interval=(t_start, t_end), dropped=dropped)
    return u_net, velocity, key


# iMF's ImageNet law (Lyy-iiis/imeanflow configs/default.py): lognorm(−0.4,
# 1.0), half of the batch r ≠ t (data_proportion 0.5), p = 1, c = 0.01.
IMF_IMAGENET = dict(p_mean=-0.4, p_std=1.0, r_neq_t=0.5, adaptive_p=1.0,
                    adaptive_c=0.01)


def has_v_head(model_config):
  """Whether the network has iMF's auxiliary v head (MLP: v_head, DiT:
  v_head_depth > 0)."""
  return bool(model_config.get("v_head", False)
              or model_config.get("v_head_depth", 0))


@dataclasses.dataclass(frozen=True)
class ImprovedMeanFlow(MeanFlow):
  """Improved MeanFlow (iMF, Geng, Lu et al. 2025): MeanFlow recast as a
  regression on v through V = u + (t − r)·sg(du/dt), du/dt along the
  network's own v (``losses.improved_meanflow_loss``), with the auxiliary
  v head trained on v. A class-conditional network with
  ``model.guidance_inputs`` also reads iMF's guidance scale ω and interval
  [t_min, t_max], drawn per example, and trains on the guided target
  (``losses.guided_improved_meanflow_loss``); sampled at the ω and
  interval of ``sample.guidance`` and ``sample.guidance_interval``.
  meanflow.omega and kappa (MeanFlow's fixed guidance) are not iMF's."""

  needs = Needs(sampler="flow_map", forward_mode=True,
                guidance_interval_input=True)
  guidance_inputs: bool = False
  guidance_s_max: float = 7.0
  guidance_beta: float = 1.0

  @classmethod
  def from_config(cls, config, example_shape):
    if not has_v_head(config.model):
      raise ValueError("method=imf trains u and iMF's auxiliary v head; set "
                       "--config.model.v_head=True (mlp, unet) or --config."
                       "model.v_head_depth=8 (dit).")
    objective = super().from_config(config, example_shape)
    if objective.guidance[:2] != (1.0, 0.0):
      raise ValueError("method=imf takes no meanflow.omega/kappa (MeanFlow's "
                       "fixed guidance): iMF's guidance is a network input; "
                       "set --config.meanflow.omega=1 --config.meanflow.kappa"
                       "=0 and --config.model.guidance_inputs=True.")
    guided = bool(config.model.get("guidance_inputs", False))
    mf = config.meanflow
    if guided and not objective.num_classes:
      raise ValueError("model.guidance_inputs=True guides a class-conditional"
                       " model; set model.num_classes > 0.")
    if mf.guidance_s_max <= 0:
      raise ValueError(f"meanflow.guidance_s_max={mf.guidance_s_max} must be "
                       "> 0 (ω in [1, 1 + s_max]; iMF: 7).")
    return dataclasses.replace(
        objective, guidance_inputs=guided,
        guidance_s_max=float(mf.guidance_s_max),
        guidance_beta=float(mf.guidance_beta))

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, step, teacher
    if self.guidance_inputs:
      return self._guided(online, x0, key)
    u_net = online
    if self.num_classes:
      u_net, _, key = self._conditional(online, x0.shape[0], key)
    loss = losses.improved_meanflow_loss(
        self.diffusion.average_velocity(u_net, return_v=True), x0, key,
        times=self.times, p=self.adaptive_p, c=self.adaptive_c)
    return loss, {"target_mu": jnp.float32(0.0)}

  def _guided(self, online, x0, key):
    labels = online.condition.labels

    def u_and_v(z, r, t, guidance, null):
      net = functools.partial(
          online, labels=jnp.where(null, self.num_classes, labels),
          guidance=guidance)
      return self.diffusion.average_velocity(net, return_v=True)(z, r, t)

    loss = losses.guided_improved_meanflow_loss(
        u_and_v, x0, key, times=self.times, label_dropout=self.label_dropout,
        s_max=self.guidance_s_max, beta=self.guidance_beta,
        p=self.adaptive_p, c=self.adaptive_c)
    return loss, {"target_mu": jnp.float32(0.0)}


def configure_imf(c, law):
  """Sets config ``c`` to iMF: MeanFlow's settings (``configure``) with
  method=imf and iMF's (t, r) law."""
  configure(c, law)
  c.method = "imf"

"""TCM: truncated consistency models (Lee, Xu, Geffner, Fanti, Kreis, Vahdat,
Nie, ICLR 2025; NVlabs/TCM), built on ECT.

Stage 1 is ECT with TCM's choices (``configure_stage1``: ln t truncated to
[0.002, 80], the ratio capped at 0.999, r clamped at 1e-6, d = √(‖·‖² +
c²) − c with c = 1e-8); it is a run of ``method=ect``. Stage 2 (``method=
tcm``, this module's objective) trains only on t ∈ [t′, T] and ties f at
the boundary t′ to the frozen stage-1 model, which serves as the target
below t′ (``losses.truncated_consistency_loss``)."""

import dataclasses

import jax.numpy as jnp
import ml_collections

from cm_jax import losses
from cm_jax.methods import ect
from cm_jax.methods.base import Needs


GROUP = "tcm"  # config.tcm


def config():
  """config.tcm: TCM's stage 2 (the authors' CIFAR-10 script, README
  "Stage-2 (CIFAR-10)"). r(t), its stages, d and λ are config.ect's and
  config.loss's, as in stage 1."""
  c = ml_collections.ConfigDict()
  c.transition_t = 1.0  # t′ (--tcm_transition_t=1, --t_lower=1)
  # ln t = p_mean + p_std·n, n ~ Student-t(df), truncated to [ln t′, ln
  # ect.t_upper] (--mean=0 --std=0.2 --tdist=t --df=0.01).
  c.p_mean = 0.0
  c.p_std = 0.2
  c.df = 0.01
  c.boundary_prob = 0.25  # --boundary_prob: this share of each batch has t = t′
  c.w_boundary = 0.1  # --w_boundary: the boundary mean's weight
  return c


def configure_stage1(c, stage_steps):
  """Sets config ``c`` to TCM's stage 1 (NVlabs/TCM README "Stage-1
  (CIFAR-10)", ``training/loss.py`` ECMLoss, ``training/networks.py``
  ECMPrecond): ECT (``ect.configure``) with ln t ~ N(−1.1, 2²) truncated
  to [0.002, 80], the ratio capped at 0.999 (--ratio_limit), r clamped at
  1e-6 with f_θ⁻ evaluated there, d = √(‖·‖² + c²) − c with c = 1e-8
  (-c 1e-8: the ℓ2 norm with a finite gradient at 0), λ = 1/(t − r)
  (--weighting default). TCM's ECMPrecond has no σ_min shift, in training
  or at evaluation; the process's ε is set to r_min = 1e-6, which moves
  c_skip and c_out at the 2-step τ = 0.821 by 2e-6 (relative)."""
  ect.configure(c, stage_steps=stage_steps)
  c.ect.truncate = True
  c.ect.t_lower, c.ect.t_upper = 0.002, 80.0  # --t_lower, --t_upper defaults
  c.ect.ratio_limit = 0.999
  c.ect.r_min = 1e-6  # delta_sigmoid: s[s < 1e-6] = 1e-6
  c.loss.metric, c.loss.huber_c = "pseudo_huber", 1e-8
  c.diffusion.sigma_min = c.ect.r_min


def configure(c, stage_steps, start_stage):
  """Sets config ``c`` to TCM's stage 2 on top of ``configure_stage1``:
  method=tcm from the stage-1 run (teacher.workdir), both θ and its EMA
  starting from its EMA weights, t′ = 1, the stage going on from
  ``start_stage`` (the official --resume_tick=<stage-1 tick>)."""
  configure_stage1(c, stage_steps)
  c.method = "tcm"
  c.ect.start_stage = start_stage
  c.tcm.update(config())


@dataclasses.dataclass(frozen=True)
class TruncatedConsistencyTraining:
  """TCM's stage 2 (Lee et al. 2025, §4, eq. 8): ECT's loss on t ∈ [t′, T]
  with the target below t′ the frozen stage-1 model φ, and a boundary loss
  at t = t′ weighted by w_boundary (``losses.truncated_consistency_loss``).

  θ and its EMA start from the stage-1 run's EMA weights (the official
  --transfer); φ is that run's EMA too (--tcm_teacher_pkl), evaluated in
  the step with the student's dropout key (TCMPrecond keeps the CUDA RNG
  state, so φ and θ draw the same dropout masks). Sampled like ECT: the
  student at every t (the official evaluation samples the EMA alone)."""

  needs = Needs(teacher=("ect",),
                teacher_what="its stage-1 run (method=ect with TCM's choices:"
                " configs/tcm_cifar10.py:stage1)",
                teacher_in_step=True, teacher_dropout=True,
                init_from_teacher="always", same_process_as_teacher=True)
  ect: ect.EasyConsistencyTraining  # r(t), its stages, d, λ and f
  transition_t: float
  t_upper: float
  p_mean: float
  p_std: float
  df: float
  boundary_prob: float
  w_boundary: float

  @classmethod
  def from_config(cls, config, example_shape):
    tcm, upper = config.tcm, config.ect.t_upper
    if not 0 < tcm.transition_t < upper:
      raise ValueError(f"tcm.transition_t={tcm.transition_t} must lie in (0, "
                       f"ect.t_upper={upper}) (TCM: t′ = 1); set --config.tcm"
                       ".transition_t=...")
    if not 0 <= tcm.boundary_prob < 1:
      raise ValueError(f"tcm.boundary_prob={tcm.boundary_prob} must lie in "
                       "[0, 1) (TCM: 0.25); set --config.tcm.boundary_prob=...")
    if tcm.df <= 0 or tcm.p_std <= 0 or tcm.w_boundary < 0:
      raise ValueError("tcm.df and tcm.p_std must be > 0 and tcm.w_boundary "
                       f"≥ 0, got {tcm.df}, {tcm.p_std}, {tcm.w_boundary} "
                       "(TCM: 0.01, 0.2, 0.1).")
    return cls(ect=ect.EasyConsistencyTraining.from_config(config,
                                                           example_shape),
               transition_t=float(tcm.transition_t), t_upper=float(upper),
               p_mean=float(tcm.p_mean),
               p_std=float(tcm.p_std), df=float(tcm.df),
               boundary_prob=float(tcm.boundary_prob),
               w_boundary=float(tcm.w_boundary))

  def __call__(self, online, target, x0, key, step, teacher=None):
    f = self.ect.consistency_fn
    stage = self.ect.stage(step)
    loss, parts = losses.truncated_consistency_loss(
        f(online), f(target), f(teacher), x0, key, stage=stage,
        transition_t=self.transition_t, t_upper=self.t_upper,
        p_mean=self.p_mean, p_std=self.p_std, df=self.df,
        boundary_prob=self.boundary_prob, w_boundary=self.w_boundary,
        metric=self.ect.metric, weighting=self.ect.weighting,
        **self.ect.mapping())
    return loss, {"target_mu": jnp.float32(0.0), "ect_stage": stage,
                  "loss_consistency": parts["consistency"],
                  "loss_boundary": parts["boundary"]}

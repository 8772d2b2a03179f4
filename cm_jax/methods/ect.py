"""ECT: easy consistency tuning (Geng et al. 2024, "Consistency Models Made
Easy"): continuous-time CT with the mapping r(t), from scratch or tuning an
EDM run."""

import dataclasses
from typing import Callable

import jax.numpy as jnp
import ml_collections

from cm_jax import losses, parametrization, processes
from cm_jax.methods.base import (Needs, check_ve, make_metric, make_weighting,
                                 own_lognormal)


GROUP = "ect"  # config.ect


def config():
  """config.ect: ECT's mapping r(t) and its stages (locuslab/ect defaults)."""
  c = ml_collections.ConfigDict()
  # r = t·(1 − q^−(s+1)·(1 + k·sigmoid(−b·t))) at stage s (locuslab/ect: q 2,
  # k 8, b 1).
  c.q = 2.0
  c.k = 8.0
  c.b = 1.0
  c.stage_steps = 25_000  # Iterations per stage, s = ⌊k / this⌋ (ECT
  #                         CIFAR-10: 250 ticks × 12.8 kimg / batch 128).
  # f's σ_min shift (CM eq. 5) also in training; ECT's ECMPrecond (False)
  # trains with EDM's plain c_skip, c_out and shifts only at evaluation.
  c.train_shift = False
  # ln t ~ N(p_mean, p_std²), unclipped (locuslab/ect ct_train.py: −1.1, 2.0).
  c.p_mean = -1.1
  c.p_std = 2.0
  # TCM's stage 1 (NVlabs/TCM ECMLoss): ln t truncated to [ln t_lower, ln
  # t_upper] (truncate), the ratio 1 − q^−(s+1) capped (ratio_limit; 1 = no
  # cap), r clamped at r_min with f_θ⁻ evaluated there (0: the target is x0,
  # ECT), and the stage counted from start_stage (TCM's stage 2 goes on
  # with its stage-1 run's stage).
  c.truncate = False
  c.t_lower = 0.002
  c.t_upper = 80.0
  c.ratio_limit = 1.0
  c.r_min = 0.0
  c.start_stage = 0
  return c


def configure(c, stage_steps):
  """Sets config ``c`` to ECT as locuslab/ect's CIFAR-10 code (main branch:
  ``training/loss.py`` ECMLoss, ``training/networks.py`` ECMPrecond,
  ``ct_train.py`` defaults), from scratch until init.workdir is set:
  mapping "sigmoid", q = 2, k = 8, b = 1; c = 0 (the ℓ2 norm); ln t ~
  N(−1.1, 2.0²), unclipped; r clamped at 0, where the target is x0;
  λ = 1/(t − r) (``return loss / (t - r)``); θ⁻ = stopgrad θ; EDM's plain
  c_skip, c_out in training and the σ_min = 0.003 shift at evaluation;
  Δt halves every ``stage_steps``."""
  c.method = "ect"
  c.init.workdir = ""
  c.ect.q, c.ect.k, c.ect.b = 2.0, 8.0, 1.0
  c.ect.stage_steps = stage_steps
  c.ect.train_shift = False  # ECMPrecond: shifted only in eval mode
  c.diffusion.sigma_min = 0.003  # ECMPrecond's sigma_min (evaluation)
  c.loss.metric = "l2_norm"
  c.loss.weighting = "ict"  # 1/(t − r); snrpk is the imgnet branch's
  c.ect.p_mean, c.ect.p_std = -1.1, 2.0
  c.ect.truncate, c.ect.ratio_limit, c.ect.r_min = False, 1.0, 0.0
  c.target.ema, c.target.mu = "fixed", 0.0


@dataclasses.dataclass(frozen=True)
class EasyConsistencyTraining:
  """ECT (Geng et al. 2024, "Consistency Models Made Easy"): continuous-time
  consistency training with the mapping r(t) of stage s = ⌊k / stage_steps⌋
  (``losses.ect_mapping``), θ⁻ = stopgrad θ. With ``init.workdir`` it
  tunes a trained EDM run, starting from its EMA weights (ECT's "consistency
  tuning"); with it empty it trains from scratch.

  Like the authors' ``ECMPrecond`` (locuslab/ect ``training/networks.py``),
  f_θ trains with EDM's plain c_skip(t), c_out(t) and shifts them by σ_min
  (CM eq. 5) only at evaluation, where f is the process's consistency
  function; ``ect.train_shift`` uses the shifted ones in training too."""

  needs = Needs(teacher=("diffusion",),
                teacher_what="a trained EDM run (ECT tunes its EMA weights)",
                init_from_teacher="always", same_process_as_teacher=True,
                teacher_optional=True)
  q: float
  k: float
  b: float
  stage_steps: int
  p_mean: float
  p_std: float
  metric: Callable
  weighting: Callable
  train_shift: bool
  diffusion: processes.VE
  t_range: tuple[float, float] | None = None
  ratio_limit: float = 1.0
  r_min: float = 0.0
  start_stage: int = 0

  @classmethod
  def from_config(cls, config, example_shape):
    check_ve(config)
    ect = config.ect
    if not ect.q > 1:
      raise ValueError(f"ect.q={ect.q} must be > 1 (Δt shrinks by q per "
                       "stage; ECT: 2); set --config.ect.q=2.")
    if ect.stage_steps < 1:
      raise ValueError(f"ect.stage_steps={ect.stage_steps} must be ≥ 1; set "
                       "--config.ect.stage_steps=...")
    if not 0 < ect.ratio_limit <= 1:
      raise ValueError(f"ect.ratio_limit={ect.ratio_limit} must lie in (0, "
                       "1] (1: no cap; TCM: 0.999); set --config.ect."
                       "ratio_limit=...")
    if ect.r_min < 0 or ect.start_stage < 0:
      raise ValueError(f"ect.r_min={ect.r_min} and ect.start_stage="
                       f"{ect.start_stage} must be ≥ 0 (ECT: 0, 0; TCM's "
                       "stage 1: 1e-6, 0).")
    if ect.truncate and not 0 < ect.t_lower < ect.t_upper:
      raise ValueError(f"ect.truncate needs 0 < ect.t_lower < ect.t_upper, "
                       f"got {ect.t_lower}, {ect.t_upper} (TCM: 0.002, 80).")
    return cls(q=float(ect.q), k=float(ect.k), b=float(ect.b),
               stage_steps=int(ect.stage_steps),
               **dict(zip(("p_mean", "p_std"), own_lognormal(config, "ect"))),
               metric=make_metric(config.loss, example_shape),
               weighting=make_weighting(config),
               train_shift=bool(ect.train_shift),
               diffusion=processes.make_process(config),
               t_range=((float(ect.t_lower), float(ect.t_upper))
                        if ect.truncate else None),
               ratio_limit=float(ect.ratio_limit), r_min=float(ect.r_min),
               start_stage=int(ect.start_stage))

  def stage(self, step):
    """The stage s of training step ``step`` (``losses.ect_stage``)."""
    return losses.ect_stage(step, self.stage_steps, self.start_stage)

  def mapping(self):
    """r(t)'s settings, as ``losses.ect_mapping`` and the losses take them."""
    return dict(q=self.q, k=self.k, b=self.b, ratio_limit=self.ratio_limit,
                r_min=self.r_min)

  def consistency_fn(self, net):
    """f_θ in training: EDM's c_skip, c_out (ECMPrecond in training mode),
    or with ``train_shift`` the process's shifted ones."""
    d = self.diffusion
    return parametrization.consistency_fn(
        net, d.sigma_data, d.sigma_min if self.train_shift else 0.0)

  def __call__(self, online, target, x0, key, step, teacher=None):
    del teacher
    stage = self.stage(step)
    loss = losses.easy_consistency_training_loss(
        self.consistency_fn(online), self.consistency_fn(target), x0, key,
        stage=stage, p_mean=self.p_mean, p_std=self.p_std, metric=self.metric,
        weighting=self.weighting, t_range=self.t_range, **self.mapping())
    return loss, {"target_mu": jnp.float32(0.0), "ect_stage": stage}

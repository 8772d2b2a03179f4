"""sCM on TrigFlow (Lu & Song 2024): sCT and sCD (sCM Alg. 1); their
TrigFlow diffusion teacher is method=diffusion on process=trigflow (``diffusion.py``).
Networks are raw, ``net(x_in, c_noise)``; here they become functions of
TrigFlow time F(x_t/σ_d, t) through the process's ``velocity_net`` (trigflow.network: sCM's net(x_in, t), or a VE EDM
network's −net(x_in, ¼·ln(σ_d·tan t)))."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections

from cm_jax import losses, processes, registry
from cm_jax.methods.base import Needs, own_lognormal

GROUP = "scm"  # config.scm


def config():
  """config.scm: sct, scd (sCM Alg. 1)."""
  c = ml_collections.ConfigDict()
  c.tangent_c = 0.1  # Tangent normalisation g/(‖g‖ + c); ≤ 0 = off.
  # ‖g‖ of that normalisation: l2 (over all D elements, as sCM §4.2 and
  # Alg. 1 write it) | rms (‖g‖/√D, NVlabs/FastGen's default).
  c.tangent_norm = "l2"
  # scd, class-conditional teacher: dx_t/dt = v_∅ + w·(v_c − v_∅) (CFG),
  # w ~ U[guidance_min, guidance_max] per example; 1 = the conditional
  # teacher (sCM ImageNet 512: U[1, 2], w as the student's input via
  # model.w_embedding; sample with sample.guidance = that w).
  c.guidance_min = 1.0
  c.guidance_max = 1.0
  c.warmup_steps = 10_000  # Tangent warm-up r = min(1, k/H); 0 = off.
  c.prior_weighting = True  # w(t) = 1/(σ_d·tan t) on the loss.
  # ln(σ_d·tan t) ~ N(p_mean, p_std²) (sCM App. G, CIFAR-10: −1.0, 1.4).
  c.p_mean = -1.0
  c.p_std = 1.4
  return c


def configure(c):
  """Sets config ``c`` to sCM's objective (App. G), shared by sCT and sCD:
  TrigFlow with c_noise(t) = t (positional embedding), the learned w_φ(t),
  tangent normalisation c = 0.1, tangent warm-up over 10k iterations, the
  prior weighting, ln(σ_d·tan t) ~ N(−1.0, 1.4²), θ⁻ = stopgrad θ and the
  2-step intermediate t = 1.1."""
  c.process = "trigflow"
  c.trigflow.time_scale = 1.0
  c.model.embedding = "positional"
  c.model.adaptive_weight = True  # the learned w_φ(t)
  c.scm.tangent_c = 0.1
  c.scm.warmup_steps = 10_000
  c.scm.prior_weighting = True
  c.scm.p_mean, c.scm.p_std = -1.0, 1.4
  c.target.ema, c.target.mu = "fixed", 0.0  # θ⁻ = stopgrad θ
  c.sample.ts = (1.1,)  # sCM's 2-step intermediate t


# sCT and sCD start from a TrigFlow diffusion model (sCM Alg. 1: θ ←
# θ_pretrain), whose network they share up to the w_φ head: a TrigFlow run,
# or a VE EDM run read through trigflow.network=edm (teacher.py).
_TEACHER = dict(teacher=("diffusion",),
                teacher_what="a trained TrigFlow teacher (method=diffusion, "
                             "process=trigflow, or process=ve with "
                             "trigflow.network=edm)",
                same_process_as_teacher=True,
                student_may_add=("adaptive_weight",), forward_mode=True)


def check_trigflow(config):
  if config.process != "trigflow":
    raise ValueError(f"method={config.method} runs on sCM's TrigFlow process;"
                     " set --config.process=trigflow.")


@dataclasses.dataclass(frozen=True)
class SimplifiedConsistencyTraining:
  """sCT (sCM Alg. 1, dx_t/dt = cos t·z − sin t·x0): θ⁻ = stopgrad θ, the
  tangent warm-up r = min(1, k/H), tangent normalisation, the prior
  weighting 1/(σ_d·tan t) and, with model.adaptive_weight, the learned
  w_φ(t). With ``init.workdir`` it starts from a TrigFlow diffusion
  run's EMA weights (sCM: θ ← θ_pretrain); empty: from scratch."""

  needs = Needs(**_TEACHER, init_from_teacher="always", teacher_optional=True)
  p_mean: float
  p_std: float
  tangent_c: float
  tangent_norm: str
  warmup_steps: int
  prior_weighting: bool
  adaptive: bool
  diffusion: processes.TrigFlow

  @classmethod
  def from_config(cls, config, example_shape):
    del example_shape
    return cls(**scm_parts(config))

  def warmup(self, step):
    """r = min(1, k/H) (sCM Alg. 1, tangent warm-up); 1 when H = 0."""
    if not self.warmup_steps:
      return jnp.float32(1.0)
    return jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / self.warmup_steps)

  def _online(self, online):
    """(x_in, t) → (F_θ, w_φ(t)); w_φ ≡ 0 without the adaptive head."""
    f = self.diffusion.velocity_net(online)
    if self.adaptive:
      return lambda x_in, t: f(x_in, t, return_weight=True)
    return lambda x_in, t: (f(x_in, t), jnp.zeros_like(t))

  def _loss(self, online, target, x0, key, step, velocity):
    d = self.diffusion
    r = self.warmup(step)
    loss = losses.continuous_consistency_loss(
        self._online(online), d.velocity_net(target), x0, key,
        velocity=velocity, sigma_data=d.sigma_data, p_mean=self.p_mean,
        p_std=self.p_std, warmup=r, tangent_c=self.tangent_c,
        tangent_norm=self.tangent_norm, prior_weighting=self.prior_weighting)
    return loss, {"target_mu": jnp.float32(0.0), "tangent_warmup": r}

  def __call__(self, online, target, x0, key, step, teacher=None):
    del teacher
    return self._loss(online, target, x0, key, step, None)


@dataclasses.dataclass(frozen=True)
class SimplifiedConsistencyDistillation(SimplifiedConsistencyTraining):
  """sCD (sCM Alg. 1, dx_t/dt = σ_d·F_pretrain(x_t/σ_d, t), the TrigFlow
  teacher's PF-ODE); starts from the teacher with teacher.init_student.
  F_pretrain is the teacher's network read through this run's process, so
  a VE EDM teacher (trigflow.network=edm) gives σ_d·F_pretrain =
  −σ_d·net(x_t/σ_d, ¼·ln(σ_d·tan t)), which is the VE PF-ODE dx/dσ =
  (x − D(x; σ))/σ (EDM eq. 4) in TrigFlow's variables.

  With a class-conditional teacher, dx_t/dt is its classifier-free guided
  velocity v_∅ + w·(v_c − v_∅) (sCM §5.2; ``losses.guided_velocity``),
  w ~ U[``guidance``] per example (w = 1: the conditional teacher); with
  ``w_condition`` (model.w_embedding) the student takes w as an input, as
  sCM's ImageNet 512 sCD does (w ~ U[1, 2])."""

  needs = Needs(**{**_TEACHER, "student_may_add": ("adaptive_weight",
                                                    "w_embedding")},
                teacher_in_step=True, init_from_teacher="option",
                guided_teacher=True, guidance_input=True)
  guidance: tuple[float, float] = (1.0, 1.0)
  w_condition: bool = False

  @classmethod
  def from_config(cls, config, example_shape):
    del example_shape
    scm, model = config.scm, config.model
    guidance = (float(scm.guidance_min), float(scm.guidance_max))
    if not guidance[0] <= guidance[1]:
      raise ValueError(f"Need scm.guidance_min ≤ scm.guidance_max, got "
                       f"{list(guidance)}.")
    conditional = model.get("num_classes", 0) or model.get("context_dim", 0)
    if guidance != (1.0, 1.0) and not conditional:
      raise ValueError(f"scm.guidance_min/max={list(guidance)} guide a "
                       "class-conditional teacher (CFG); this network takes "
                       "no condition: set model.num_classes (or "
                       "context_dim) as the teacher's, or both to 1.")
    return cls(guidance=guidance,
               w_condition=bool(model.get("w_embedding", False)),
               **scm_parts(config))

  @property
  def guided(self):
    return self.guidance != (1.0, 1.0)

  def __call__(self, online, target, x0, key, step, teacher=None):
    d = self.diffusion
    w = jnp.full(x0.shape[:1], self.guidance[0])
    if self.guidance[0] < self.guidance[1]:  # else the draws stay unguided's
      w_key, key = jax.random.split(key)
      w = jax.random.uniform(w_key, x0.shape[:1], jnp.float32, *self.guidance)
    velocity_of = lambda net: (lambda x_t, t: d.sigma_data * d.velocity_net(
        net)(x_t / d.sigma_data, t))
    teacher_cond, teacher_uncond = teacher
    velocity = velocity_of(teacher_cond)  # the unused ∅ pass is compiled out
    if self.guided:
      velocity = losses.guided_velocity(velocity, velocity_of(teacher_uncond),
                                        w)
    if self.w_condition:
      online = functools.partial(online, w=w)
      target = functools.partial(target, w=w)
    loss, aux = self._loss(online, target, x0, key, step, velocity)
    return loss, {**aux, "guidance": jnp.mean(w)}


def scm_parts(config):
  """The fields sCT and sCD share, checked."""
  check_trigflow(config)
  scm = config.scm
  if scm.warmup_steps < 0:
    raise ValueError(f"scm.warmup_steps={scm.warmup_steps} must be ≥ 0 "
                     "(0 = no tangent warm-up).")
  registry.lookup({n: n for n in losses.TANGENT_NORMS}, scm.tangent_norm,
                  "scm.tangent_norm")
  p_mean, p_std = own_lognormal(config, "scm")
  return dict(p_mean=p_mean, p_std=p_std,
              tangent_c=float(scm.tangent_c),
              tangent_norm=str(scm.tangent_norm),
              warmup_steps=int(scm.warmup_steps),
              prior_weighting=bool(scm.prior_weighting),
              adaptive=bool(config.model.adaptive_weight),
              diffusion=processes.make_process(config))

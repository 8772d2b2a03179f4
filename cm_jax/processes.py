"""Noise processes x_t = α(t)·x0 + σ(t)·z and their network parametrisations.

- ``VE``: EDM's variance-exploding process, α(t) = 1, σ(t) = t ∈ [ε, T]
  (CM, iCT, CD). Raw networks are preconditioned as in EDM Table 1 and the
  consistency boundary condition (CM eq. 5).
- ``TrigFlow``: sCM's process (Lu & Song 2024, §2.1), x_t = cos t·x0 +
  sin t·z with z ~ N(0, σ_d²I), t ∈ [0, π/2]; the network F_θ sees x_t/σ_d
  and c_noise(t), and f_θ(x_t, t) = cos t·x_t − sin t·σ_d·F_θ (sCM eq. 5),
  which is also its diffusion model's x̂0 (F is then the velocity / σ_d).
  ``network="edm"`` reads a VE EDM network as that F (F = −net(x_in,
  ¼·ln(σ_d·tan t)); ``TrigFlow.velocity_net``).
- ``Linear``: flow matching's linear interpolation (rectified flow), the
  process of MeanFlow, iMF and shortcut models: z_t = (1 − t)·x0 + t·ε,
  ε ~ N(0, I), t ∈ [0, 1], velocity v = ε − x0. Its networks are flow maps
  u(z, r, t) of two times (the average velocity from t to r; MeanFlow eq.
  3), of which the flow-matching velocity is u(z, t, t).
- ``VP``: the discrete DDPM variance-preserving process that LCM distils
  (Luo et al. 2023 §4.1): ᾱ_t = ∏_{s ≤ t} (1 − β_s) over t ∈ {0, …, T − 1},
  α(t) = √ᾱ_t, σ(t) = √(1 − ᾱ_t). The network predicts ε (DDPM); the
  consistency function is LCM's f(z, t) = c_skip(t)·z + c_out(t)·x̂0(z, t)
  with x̂0 = (z − σ(t)·ε̂)/α(t), c_skip(0) = 1, c_out(0) = 0 (LCM eq. 9).

All four expose the same interface, so losses, solvers and samplers take "a
process" and never branch on its kind, and each also answers what its
callers ask: ``prediction`` (what its diffusion network is trained to give:
"x0", EDM's denoiser; "epsilon", DDPM's noise; "velocity", TrigFlow's F;
"flow_velocity", flow matching's v = ε − x0),
``samplers`` (the default samplers of a consistency and of a diffusion
model, for one step and for several), ``editable`` (CM Alg. 4's edits
apply) and ``discrete_time`` (times are integer steps). The interface:
``alpha(t)``, ``sigma(t)``, ``t_min``, ``t_max``, ``grid(n, size)`` (ascending
times), ``noise(x0, z, t)``, ``prior(key, shape)`` (x_T ~ N(0, s²I), s =
``prior_std``), ``renoise(x, t, z)`` (CM Alg. 1 / LCM Alg. 3),
``from_ve_sigma(σ)`` (the time whose x_t/α(t) = x0 + σ·n: EDM's σ as the
process's own time), ``consistency_fn(net)``, ``denoiser(net)`` (x, t) → x̂0.
A raw network is ``net(x_in, c_noise) → F``.
"""

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np

from cm_jax import keys, parametrization, registry, schedules
from cm_jax.parametrization import expand_to


@dataclasses.dataclass(frozen=True)
class VE:
  """EDM's constants: σ_min = ε, σ_max = T, ρ and σ_data; x_t = x0 + t·z."""

  sigma_min: float = schedules.SIGMA_MIN
  sigma_max: float = schedules.SIGMA_MAX
  rho: float = schedules.RHO
  sigma_data: float = schedules.SIGMA_DATA

  prediction = "x0"  # EDM's denoiser D(x; σ) (EDM eq. 2, 7)
  samplers = {"consistency": ("onestep", "multistep"),  # CM Alg. 1
              "diffusion": ("ode", "ode")}  # EDM Alg. 1
  editable = True
  discrete_time = False

  @property
  def t_min(self):
    return self.sigma_min

  @property
  def t_max(self):
    return self.sigma_max

  def alpha(self, t):
    return jnp.ones_like(jnp.asarray(t, jnp.float32))

  def sigma(self, t):
    return jnp.asarray(t, jnp.float32)

  def grid(self, n, size=None):
    """EDM eq. 5, ascending, padded to ``size`` with σ_max."""
    return schedules.karras_sigmas(n, self.sigma_min, self.sigma_max, self.rho,
                                   size=size)

  def noise(self, x0, z, t):
    return x0 + expand_to(t, x0) * z

  @property
  def prior_std(self):
    return self.sigma_max

  def prior(self, key, shape):
    """x_T ~ N(0, T²I)."""
    return self.prior_std * keys.normal(key, shape)

  def from_ve_sigma(self, sigma):
    """t = σ: VE time is EDM's σ."""
    return jnp.asarray(sigma, jnp.float32)

  def renoise(self, x, t, z):
    """CM Alg. 1: x + √(τ² − ε²)·z (x already carries ε's noise)."""
    return x + expand_to(jnp.sqrt(t ** 2 - self.sigma_min ** 2), x) * z

  def consistency_fn(self, net):
    return parametrization.consistency_fn(net, self.sigma_data, self.sigma_min)

  def denoiser(self, net):
    return parametrization.edm_denoiser(net, self.sigma_data)


BETA_SCHEDULES = {
    # DDPM: β linear in t.
    "linear": lambda b0, b1, n: np.linspace(b0, b1, n, dtype=np.float64),
    # Stable Diffusion (the LCM teacher): √β linear in t.
    "scaled_linear": lambda b0, b1, n: np.linspace(
        b0 ** 0.5, b1 ** 0.5, n, dtype=np.float64) ** 2,
}


@dataclasses.dataclass(frozen=True)
class VP:
  """The discrete DDPM process of LCM, with ε-prediction networks.

  Times are the DDPM steps t ∈ {0, …, T − 1} (float arrays holding integers);
  the network sees c_in = 1 and c_noise = t (EDM Table 1, VP column, with
  M = T). ``timestep_scaling`` multiplies t inside c_skip and c_out: 10 in the
  official LCM code and diffusers' LCMScheduler, 1 in the paper's text.
  """

  num_timesteps: int = 1000
  beta_schedule: str = "scaled_linear"  # Stable Diffusion's, as LCM
  beta_start: float = 0.00085
  beta_end: float = 0.012
  sigma_data: float = schedules.SIGMA_DATA
  timestep_scaling: float = 10.0

  prediction = "epsilon"  # DDPM's ε (LCM's teacher)
  samplers = {"consistency": ("lcm_multistep", "lcm_multistep"),  # LCM Alg. 3
              "diffusion": ("ddim", "ddim")}
  # CM Alg. 4 is written for x + t·z; the ε-networks' edits are not built.
  editable = False
  discrete_time = True  # DDPM steps 0 … T − 1

  def __post_init__(self):
    registry.lookup(BETA_SCHEDULES, self.beta_schedule, "vp.beta_schedule")

  @functools.cached_property
  def alphas_cumprod(self):
    """ᾱ_t = ∏_{s ≤ t} (1 − β_s), float64 numpy [T]."""
    betas = BETA_SCHEDULES[self.beta_schedule](self.beta_start, self.beta_end,
                                               self.num_timesteps)
    return np.cumprod(1.0 - betas)

  @property
  def t_min(self):
    return 0.0

  @property
  def t_max(self):
    return float(self.num_timesteps - 1)

  def _at(self, table, t):
    index = jnp.clip(jnp.round(jnp.asarray(t, jnp.float32)).astype(jnp.int32),
                     0, self.num_timesteps - 1)
    return jnp.asarray(table, jnp.float32)[index]

  def alpha(self, t):
    return self._at(np.sqrt(self.alphas_cumprod), t)

  def sigma(self, t):
    return self._at(np.sqrt(1.0 - self.alphas_cumprod), t)

  def grid(self, n, size=None):
    """n DDPM steps evenly spaced over {0, …, T − 1}, ascending; n = T gives
    every step. Padded to ``size`` with T − 1. ``n`` may be traced."""
    size = n if size is None else size
    i = jnp.arange(size, dtype=jnp.float32)
    ramp = jnp.minimum(i / (jnp.asarray(n, jnp.float32) - 1.0), 1.0)
    return jnp.round(ramp * self.t_max)

  def noise(self, x0, z, t):
    return expand_to(self.alpha(t), x0) * x0 + expand_to(self.sigma(t), x0) * z

  @property
  def prior_std(self):
    return 1.0

  def prior(self, key, shape):
    """z_T ~ N(0, I) (ᾱ_{T−1} ≈ 0)."""
    return self.prior_std * keys.normal(key, shape)

  def from_ve_sigma(self, sigma):
    """The DDPM step whose σ(t)/α(t) = √((1 − ᾱ_t)/ᾱ_t) is nearest σ."""
    ratios = np.sqrt((1.0 - self.alphas_cumprod) / self.alphas_cumprod)
    sigma = jnp.asarray(sigma, jnp.float32)
    distance = jnp.abs(jnp.asarray(ratios, jnp.float32) - sigma[..., None])
    return jnp.argmin(distance, axis=-1).astype(jnp.float32)

  def renoise(self, x, t, z):
    """LCM Alg. 3: z_τ = α(τ)·x + σ(τ)·z."""
    return self.noise(x, z, t)

  def boundary_scalings(self, t):
    """LCM: c_skip = σd²/((s·t)² + σd²), c_out = s·t/√((s·t)² + σd²); exactly
    (1, 0) at t = 0."""
    st = self.timestep_scaling * t
    c_skip = self.sigma_data ** 2 / (st ** 2 + self.sigma_data ** 2)
    c_out = st / jnp.sqrt(st ** 2 + self.sigma_data ** 2)
    return c_skip, c_out

  def denoiser(self, net):
    """D(z, t) = x̂0 = (z − σ(t)·ε̂(z, t))/α(t) of an ε-prediction network."""

    def denoiser(z, t):
      t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), z.shape[:1])
      eps = net(z, t)
      return (z - expand_to(self.sigma(t), z) * eps) / expand_to(self.alpha(t), z)

    return denoiser

  def consistency_fn(self, net):
    """LCM eq. 9: f(z, t) = c_skip(t)·z + c_out(t)·x̂0(z, t); f(z, 0) = z."""
    x0_hat = self.denoiser(net)

    def f(z, t):
      t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), z.shape[:1])
      c_skip, c_out = self.boundary_scalings(t)
      return expand_to(c_skip, z) * z + expand_to(c_out, z) * x0_hat(z, t)

    return f


def _trigflow_c_noise(process, t):
  """sCM §4.1: c_noise(t) = ``time_scale``·t."""
  return process.time_scale * t


def _edm_c_noise(process, t):
  """EDM Table 1's c_noise = ¼·ln σ at σ = σ_d·tan t, σ clamped from below
  at σ_min. Unclamped it is −∞ at t = 0, and f(x, 0) = x − sin 0·σ_d·F
  would be 0·∞ = NaN; the clamp keeps F, its gradient and its JVP finite
  (below σ_min the derivative in t is 0). sCM's lognormal t (ln σ ~
  N(−1.0, 1.4²)) falls below σ_min = 0.002 with probability ≈ 1e-4, and
  there cos t·x_t carries f (sin t < σ_min/σ_d)."""
  sigma = process.sigma_data * jnp.tan(t)
  return 0.25 * jnp.log(jnp.maximum(sigma, process.sigma_min))


# trigflow.network: how a raw network net(x_in, c_noise) is read as
# TrigFlow's F(x_in, t): (c_noise(process, t), the sign of F).
TRIGFLOW_NETWORKS = {
    "trigflow": (_trigflow_c_noise, 1.0),  # sCM: F = net(x_in, time_scale·t)
    "edm": (_edm_c_noise, -1.0),  # F = −net(x_in, ¼·ln(σ_d·tan t))
}


@dataclasses.dataclass(frozen=True)
class TrigFlow:
  """sCM's TrigFlow (Lu & Song 2024, §2.1 and eq. 5, 6).

  x_t = cos t·x0 + sin t·z, z ~ N(0, σ_d²I): in the α(t)·x0 + σ(t)·n form of
  the other processes (n ~ N(0, I)), α = cos t and σ = σ_d·sin t. TrigFlow
  is EDM's VE process re-timed, σ_VE = σ_d·tan t and x_VE = x_t / cos t, so
  EDM's σ_min, σ_max and ρ give its times: t_max = arctan(σ_max/σ_d) (sCM
  App. G: arctan(80/0.5)), and ``grid`` maps EDM's eq. 5 grid to t.

  Every use of F goes through ``velocity_net``, which reads a raw network
  ``net(x_in, c_noise)`` as F(x_in, t) in one of two ways (``network``):

  - "trigflow" (sCM §4.1): F(x_in, t) = net(x_in, ``time_scale``·t).
  - "edm": the network of a VE EDM run (EDM Table 1 preconditioning,
    ``parametrization.edm_denoiser``), D(x; σ) = c_skip·x + c_out·net(c_in·x,
    ¼ ln σ). At σ = σ_d·tan t and x = x_t/cos t, EDM's scalings become
      c_skip = σ_d²/(σ² + σ_d²) = cos²t,
      c_out = σ·σ_d/√(σ² + σ_d²) = σ_d·sin t,
      c_in·x = x/√(σ² + σ_d²) = (cos t/σ_d)·(x_t/cos t) = x_t/σ_d,
    so D(x_t/cos t; σ_d·tan t) = cos t·x_t + σ_d·sin t·net(x_t/σ_d,
    ¼ ln(σ_d·tan t)). Against TrigFlow's x̂0 = cos t·x_t − sin t·σ_d·F(x_t/σ_d,
    t) (sCM eq. 5) this is exactly
      F(x_in, t) = −net(x_in, ¼·ln(σ_d·tan t)),
    a sign and EDM's c_noise: the VE teacher of CD is a TrigFlow teacher of
    sCD, and its weights an sCD/sCT student's θ_pretrain. σ_d·tan t is
    clamped at σ_min (``_edm_c_noise``); ``time_scale`` must stay 1.
  """

  sigma_min: float = schedules.SIGMA_MIN
  sigma_max: float = schedules.SIGMA_MAX
  rho: float = schedules.RHO
  sigma_data: float = schedules.SIGMA_DATA
  time_scale: float = 1.0
  network: str = "trigflow"

  prediction = "velocity"  # F = velocity/σ_d (sCM §2.1)
  # sCM: f(x_T, T), then x_τ = cos τ·x + sin τ·z (LCM Alg. 3's renoise);
  # DDIM is TrigFlow's first-order PF-ODE solver (sCM §2.1).
  samplers = {"consistency": ("lcm_multistep", "lcm_multistep"),
              "diffusion": ("ddim", "ddim")}
  editable = True  # CM Alg. 4 with x_t = cos t·y + sin t·z
  discrete_time = False

  def __post_init__(self):
    registry.lookup(TRIGFLOW_NETWORKS, self.network, "trigflow.network")
    if self.network == "edm" and self.time_scale != 1.0:
      raise ValueError(f"trigflow.time_scale={self.time_scale} has no effect "
                       "with trigflow.network=edm (c_noise = ¼·ln(σ_d·tan t)"
                       "); set --config.trigflow.time_scale=1.")

  @property
  def t_min(self):
    return 0.0

  @property
  def t_max(self):
    return float(np.arctan(self.sigma_max / self.sigma_data))

  def alpha(self, t):
    return jnp.cos(jnp.asarray(t, jnp.float32))

  def sigma(self, t):
    return self.sigma_data * jnp.sin(jnp.asarray(t, jnp.float32))

  def grid(self, n, size=None):
    """EDM eq. 5's σ grid as TrigFlow times t = arctan(σ/σ_d), ascending,
    padded to ``size`` with t_max."""
    sigmas = schedules.karras_sigmas(n, self.sigma_min, self.sigma_max,
                                     self.rho, size=size)
    return jnp.arctan(sigmas / self.sigma_data)

  def noise(self, x0, z, t):
    """x_t = cos t·x0 + sin t·σ_d·z for z ~ N(0, I)."""
    return (expand_to(jnp.cos(t), x0) * x0
            + expand_to(self.sigma_data * jnp.sin(t), x0) * z)

  @property
  def prior_std(self):
    return self.sigma_data

  def prior(self, key, shape):
    """x_T ~ N(0, σ_d²I) (sCM samples from the prior at t_max)."""
    return self.prior_std * keys.normal(key, shape)

  def from_ve_sigma(self, sigma):
    """t = arctan(σ/σ_d): x_t/cos t = x0 + σ_d·tan t·n, EDM's x at σ."""
    return jnp.arctan(jnp.asarray(sigma, jnp.float32) / self.sigma_data)

  def renoise(self, x, t, z):
    """sCM's multistep sampling: x_t = cos t·x̂0 + sin t·σ_d·z."""
    return self.noise(x, z, t)

  @property
  def reads_ve_networks(self):
    """Whether F is a VE EDM network read through the change of variables
    (network="edm"), so a VE run can be this run's teacher or start."""
    return self.network == "edm"

  def c_noise(self, t):
    """The raw network's noise input at TrigFlow time t (``network``)."""
    return TRIGFLOW_NETWORKS[self.network][0](self, t)

  def velocity_net(self, net):
    """F(x_in, t, **kw) of a raw network ``net(x_in, c_noise, **kw)``:
    sign·net(x_in, c_noise(t)), the sign −1 for network="edm". With
    ``return_weight=True`` the network returns (F, w_φ) and the sign applies
    to F only (w_φ(c_noise) is a weighting, sCM §4.2)."""
    sign = TRIGFLOW_NETWORKS[self.network][1]

    def F(x_in, t, **kw):
      out = net(x_in, self.c_noise(t), **kw)
      if sign == 1.0:
        return out
      if kw.get("return_weight"):
        return -out[0], out[1]
      return -out

    return F

  def consistency_fn(self, net):
    """sCM eq. 5: f_θ(x_t, t) = cos t·x_t − sin t·σ_d·F_θ(x_t/σ_d, t), F of
    ``velocity_net``; f(x, 0) = x exactly (sin 0 = 0, F finite)."""
    F = self.velocity_net(net)

    def f(x, t):
      t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:1])
      out = F(x / self.sigma_data, t)
      return (expand_to(jnp.cos(t), x) * x
              - expand_to(jnp.sin(t) * self.sigma_data, x) * out)

    return f

  def denoiser(self, net):
    """x̂0 of a TrigFlow diffusion model (F = velocity/σ_d): the same map as
    ``consistency_fn`` (sCM §2.1); for network="edm", EDM's D(x_t/cos t;
    σ_d·tan t)."""
    return self.consistency_fn(net)


@dataclasses.dataclass(frozen=True)
class Linear:
  """Flow matching's linear interpolation (Lipman et al. 2023; Liu et al.
  2023, rectified flow), the process of MeanFlow (Geng et al. 2025, §3):

    z_t = (1 − t)·x0 + t·ε,  ε ~ N(0, I),  t ∈ [0, 1],
    v(z_t, t) = dz_t/dt = ε − x0 (conditional velocity; MeanFlow eq. 1).

  In the α(t)·x0 + σ(t)·n form: α = 1 − t, σ = t; EDM's σ is t/(1 − t).
  No preconditioning: the network sees z_t itself (MeanFlow's and iMF's
  official code), with its time inputs scaled by ``time_scale``.

  A network here is a flow map, read by ``average_velocity`` as
    u(z, r, t) = net(z, c_noise = s·t, c_step = s·(t − r)),
  the average velocity from t to r (MeanFlow eq. 3, conditioned on (t,
  t − r) as MeanFlow's Table 1c and iMF's code), so one jump is
    z_r = z_t − (t − r)·u(z_t, r, t)   (MeanFlow eq. 12).
  u(z, t, t) is the instantaneous velocity v (MeanFlow eq. 4), so a
  flow-matching network of one time (which ignores c_step) reads the same
  way: its x̂0 is z − t·v (``denoiser``), its PF-ODE dz/dt = v.
  """

  sigma_data: float = schedules.SIGMA_DATA
  time_scale: float = 1.0

  prediction = "flow_velocity"  # v = ε − x0 (flow matching)
  # MeanFlow samples by jumps z_r = z_t − (t − r)·u (eq. 12); a flow-
  # matching model by Euler steps of dz/dt = v; a consistency function
  # f(z, t) = z − t·u(z, 0, t) by LCM Alg. 3's renoising.
  samplers = {"flow_map": ("flow_map", "flow_map"),
              "diffusion": ("flow_euler", "flow_euler"),
              "consistency": ("lcm_multistep", "lcm_multistep")}
  # CM Alg. 4 would noise as z_t = (1 − t)·y + t·z; flow maps train no
  # consistency model, so --mode=edit refuses them (modes/edit.py).
  editable = False
  discrete_time = False

  @property
  def t_min(self):
    return 0.0

  @property
  def t_max(self):
    return 1.0

  def alpha(self, t):
    return 1.0 - jnp.asarray(t, jnp.float32)

  def sigma(self, t):
    return jnp.asarray(t, jnp.float32)

  def grid(self, n, size=None):
    """n evenly spaced times over [0, 1], ascending (MeanFlow's and iMF's
    sampling times), padded to ``size`` with 1; ``n`` may be traced."""
    size = n if size is None else size
    i = jnp.arange(size, dtype=jnp.float32)
    return jnp.minimum(i / (jnp.asarray(n, jnp.float32) - 1.0), 1.0)

  def noise(self, x0, z, t):
    """z_t = (1 − t)·x0 + t·z."""
    t = expand_to(jnp.asarray(t, x0.dtype), x0)
    return (1.0 - t) * x0 + t * z

  @property
  def prior_std(self):
    return 1.0

  def prior(self, key, shape):
    """z_1 = ε ~ N(0, I)."""
    return keys.normal(key, shape)

  def from_ve_sigma(self, sigma):
    """t = σ/(1 + σ): z_t/(1 − t) = x0 + (t/(1 − t))·ε, EDM's x at σ."""
    sigma = jnp.asarray(sigma, jnp.float32)
    return sigma / (1.0 + sigma)

  def renoise(self, x, t, z):
    """Multistep consistency sampling: z_t = (1 − t)·x̂0 + t·z."""
    return self.noise(x, z, t)

  def average_velocity(self, net, **kw):
    """u(z, r, t) = net(z, s·t, c_step=s·(t − r)), t and r [B] or scalars;
    ``kw`` go to the network (iMF: return_v=True gives (u, v))."""

    def u(z, r, t):
      t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), z.shape[:1])
      r = jnp.broadcast_to(jnp.asarray(r, jnp.float32), z.shape[:1])
      return net(z, self.time_scale * t, c_step=self.time_scale * (t - r),
                 **kw)

    return u

  def flow_map(self, net):
    """φ(z, r, t) = z − (t − r)·u(z, r, t), the jump from t to r
    (MeanFlow eq. 12)."""
    u = self.average_velocity(net)

    def phi(z, r, t):
      t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), z.shape[:1])
      r = jnp.broadcast_to(jnp.asarray(r, jnp.float32), z.shape[:1])
      return z - expand_to(t - r, z) * u(z, r, t)

    return phi

  def velocity(self, net):
    """v(z, t) = u(z, t, t) (MeanFlow eq. 4: the average velocity over an
    empty interval is the instantaneous one)."""
    u = self.average_velocity(net)
    return lambda z, t: u(z, t, t)

  def consistency_fn(self, net):
    """f(z, t) = φ(z, 0, t) = z − t·u(z, 0, t): one jump to the data end,
    f(z, 0) = z exactly."""
    phi = self.flow_map(net)
    return lambda z, t: phi(z, 0.0, t)

  def denoiser(self, net):
    """x̂0(z, t) = z − t·v(z, t) (z_t − t·(ε − x0) = x0 for the true v's
    conditional mean)."""
    v = self.velocity(net)

    def x0_hat(z, t):
      t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), z.shape[:1])
      return z - expand_to(t, z) * v(z, t)

    return x0_hat


# config.process → class
CLASSES = {"ve": VE, "vp": VP, "trigflow": TrigFlow, "linear": Linear}
PROCESSES = {
    "ve": lambda config: VE(**config.diffusion),
    "trigflow": lambda config: TrigFlow(time_scale=config.trigflow.time_scale,
                                        network=config.trigflow.network,
                                        **config.diffusion),
    "vp": lambda config: VP(sigma_data=config.diffusion.sigma_data,
                            **config.vp),
    "linear": lambda config: Linear(sigma_data=config.diffusion.sigma_data,
                                    **config.linear),
}


# The config groups that define each process (its α(t), σ(t), times and
# the network's reading): a network trained under them means something else
# under others, so its checkpoints are read only with the same values.
CONFIG_GROUPS = {"ve": ("diffusion",), "vp": ("vp", "diffusion"),
                 "trigflow": ("diffusion", "trigflow"),
                 "linear": ("diffusion", "linear")}


def make_process(config):
  """The process of ``config.process`` (ve | vp | trigflow | linear): VE
  from ``config.diffusion``, VP from ``config.vp`` (σ_data from
  ``config.diffusion``), TrigFlow from both ``config.diffusion`` and
  ``config.trigflow``, Linear from ``config.linear`` (σ_data from
  ``config.diffusion``)."""
  return registry.lookup(PROCESSES, config.process, "process")(config)

"""Latent consistency models: the VP process, DDIM, CFG, LCD and LCF.

Ground truth: for data x0 ~ N(μ, s²I) under z_t = α(t)·x0 + σ(t)·z,
- D*(z; t) = E[x0 | z_t] = μ + α·s²/(α²s² + σ²)·(z − α·μ);
- the PF-ODE maps z_t to μ_s + (z_t − α_t·μ)·√(α_s²s² + σ_s²)/√(α_t²s² + σ_t²)
  with μ_s = α_s·μ (a point mass when s = 0).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax import losses, processes, samplers, schedules, solvers
from cm_jax.parametrization import expand_to
from cm_jax import methods
from cm_jax.train import step as step_lib
from configs import lcd_toy2d

from tests import analytic

VP = processes.VP()


def vp_gaussian_denoiser(mu, s, process=VP):
  def denoiser(z, t):
    a = expand_to(process.alpha(jnp.broadcast_to(t, z.shape[:1])), z)
    sig = expand_to(process.sigma(jnp.broadcast_to(t, z.shape[:1])), z)
    return mu + a * s ** 2 / (a ** 2 * s ** 2 + sig ** 2) * (z - a * mu)
  return denoiser


def vp_gaussian_flow(z, t, t_next, mu, s, process=VP):
  a, sig = process.alpha(t), process.sigma(t)
  a2, sig2 = process.alpha(t_next), process.sigma(t_next)
  return a2 * mu + (z - a * mu) * jnp.sqrt(a2 ** 2 * s ** 2 + sig2 ** 2) / jnp.sqrt(
      a ** 2 * s ** 2 + sig ** 2)


def test_vp_schedule_matches_its_formula():
  ab = VP.alphas_cumprod
  betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2  # SD, LCM
  np.testing.assert_allclose(ab, np.cumprod(1 - betas), rtol=1e-12)
  t = jnp.array([0.0, 19.0, 999.0])
  np.testing.assert_allclose(VP.alpha(t) ** 2 + VP.sigma(t) ** 2, 1.0, rtol=1e-6)
  np.testing.assert_allclose(VP.alpha(t), np.sqrt(ab[[0, 19, 999]]), rtol=1e-6)
  grid = VP.grid(1000)
  np.testing.assert_array_equal(grid, np.arange(1000))
  np.testing.assert_array_equal(VP.grid(3, size=5), [0, 500, 999, 999, 999])


def test_vp_consistency_fn_boundary_is_exact():
  net = lambda z, c_noise: jnp.sin(3 * z) + c_noise[:, None]  # any ε-network
  f = VP.consistency_fn(net)
  z = jax.random.normal(jax.random.key(0), (5, 2))
  np.testing.assert_array_equal(f(z, jnp.zeros(5)), z)  # LCM: f(z, 0) = z
  # Away from 0: c_skip·z + c_out·(z − σε̂)/α with LCM's scalings (s = 10).
  t = jnp.full((5,), 40.0)
  st = 10 * 40.0
  c_skip, c_out = 0.25 / (st ** 2 + 0.25), st / np.sqrt(st ** 2 + 0.25)
  x0 = (z - VP.sigma(t)[:, None] * net(z, t)) / VP.alpha(t)[:, None]
  np.testing.assert_allclose(f(z, t), c_skip * z + c_out * x0, rtol=1e-5)


def test_ddim_is_exact_for_a_point_mass_over_any_jump():
  """With D constant (data = δ_μ), DDIM integrates the VP PF-ODE exactly."""
  mu = jnp.array([[0.7, -1.3]])
  z = jax.random.normal(jax.random.key(1), (4, 2))
  for t, t_next in ((999.0, 0.0), (600.0, 580.0), (300.0, 19.0)):
    t_, tn = jnp.full((4,), t), jnp.full((4,), t_next)
    out = solvers.ddim_step(vp_gaussian_denoiser(mu, 0.0), z, t_, tn, process=VP)
    exact = vp_gaussian_flow(z, t_[:, None], tn[:, None], mu, 0.0)
    np.testing.assert_allclose(out, exact, rtol=1e-5, atol=1e-5)


def test_ddim_converges_to_the_gaussian_flow_at_first_order():
  mu, s = jnp.array([[0.5, -0.2]]), 0.8
  z = jax.random.normal(jax.random.key(2), (256, 2))
  exact = vp_gaussian_flow(z, 999.0, 0.0, mu, s)
  denoiser = vp_gaussian_denoiser(mu, s)

  @jax.jit
  def solve(ts):
    step = lambda x, pair: (solvers.ddim_step(
        denoiser, x, jnp.full((256,), pair[0]), jnp.full((256,), pair[1]),
        process=VP), None)
    return jax.lax.scan(step, z, (ts[:-1], ts[1:]))[0]

  errors = [float(jnp.abs(solve(jnp.linspace(999.0, 0.0, n + 1)) - exact).max())
            for n in (37, 111, 333)]  # step sizes 27, 9, 3 DDPM steps
  print("DDIM max error vs the closed-form flow, 37/111/333 steps:", errors)
  assert errors[2] < errors[1] < errors[0]
  assert errors[0] / errors[1] > 2 and errors[1] / errors[2] > 2  # ≈ 3: order 1


def test_ddim_on_the_ve_process_is_euler():
  denoiser = analytic.gaussian_denoiser(0.3, 0.5)
  x = jax.random.normal(jax.random.key(3), (6, 3))
  t, t_next = jnp.full((6,), 2.0), jnp.full((6,), 0.7)
  np.testing.assert_allclose(solvers.ddim_step(denoiser, x, t, t_next),
                             solvers.euler_step(denoiser, x, t, t_next),
                             rtol=1e-6, atol=1e-6)


def _two_teachers():
  """Conditional and unconditional Gaussian teachers with different means."""
  return (vp_gaussian_denoiser(jnp.array([[1.0, 0.0]]), 0.3),
          vp_gaussian_denoiser(jnp.array([[0.0, 0.0]]), 0.9))


def test_cfg_with_w_0_is_the_plain_conditional_step():
  cond, uncond = _two_teachers()
  z = jax.random.normal(jax.random.key(4), (8, 2))
  t, t_next = jnp.full((8,), 520.0), jnp.full((8,), 500.0)
  guided = solvers.guided_denoiser(cond, uncond, jnp.zeros(8))
  np.testing.assert_array_equal(
      solvers.ddim_step(guided, z, t, t_next, process=VP),
      solvers.ddim_step(cond, z, t, t_next, process=VP))
  # Whole LCD losses: the CFG-augmented teacher at w = 0 vs the conditional one.
  f = VP.consistency_fn(lambda z, c: 0.1 * z)
  kw = dict(ts=VP.grid(1000), skip=20, process=VP)
  x0 = jax.random.normal(jax.random.key(5), (8, 2))
  key = jax.random.key(6)
  np.testing.assert_array_equal(
      losses.latent_consistency_distillation_loss(f, f, guided, x0, key, **kw),
      losses.latent_consistency_distillation_loss(f, f, cond, x0, key, **kw))
  w2 = solvers.guided_denoiser(cond, uncond, jnp.full((8,), 2.0))
  assert not np.allclose(
      losses.latent_consistency_distillation_loss(f, f, w2, x0, key, **kw),
      losses.latent_consistency_distillation_loss(f, f, cond, x0, key, **kw))


def test_cfg_on_d_equals_the_papers_cfg_on_epsilon():
  """LCM eq. 10 guides ε̂; guiding D̂ gives the same DDIM step."""
  cond, uncond = _two_teachers()
  z = jax.random.normal(jax.random.key(7), (8, 2))
  t, t_next = jnp.full((8,), 700.0), jnp.full((8,), 680.0)
  w = jnp.linspace(0.0, 6.0, 8)
  a, sig = VP.alpha(t)[:, None], VP.sigma(t)[:, None]
  eps = lambda d: (z - a * d(z, t)) / sig
  eps_tilde = (1 + w[:, None]) * eps(cond) - w[:, None] * eps(uncond)
  x0_tilde = (z - sig * eps_tilde) / a
  expected = VP.alpha(t_next)[:, None] * x0_tilde + VP.sigma(t_next)[:, None] * eps_tilde
  out = solvers.ddim_step(solvers.guided_denoiser(cond, uncond, w), z, t, t_next,
                          process=VP)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_skip_1_is_the_plain_cd_and_ct_pair():
  ve = processes.VE()
  sigmas = ve.grid(18)
  teacher = analytic.gaussian_denoiser(0.2, 0.5)
  online = ve.consistency_fn(lambda x, c: jnp.tanh(x) * (1 + c[:, None]))
  target = ve.consistency_fn(lambda x, c: 0.5 * x)
  x0 = jax.random.normal(jax.random.key(8), (16, 3))
  key = jax.random.key(9)
  np.testing.assert_array_equal(
      losses.latent_consistency_distillation_loss(
          online, target, teacher, x0, key, ts=sigmas, skip=1, process=ve,
          solver="heun"),
      losses.consistency_distillation_loss(online, target, teacher, x0, key,
                                           sigmas=sigmas, solver="heun"))
  np.testing.assert_array_equal(
      losses.latent_consistency_finetuning_loss(online, target, x0, key,
                                                ts=sigmas, skip=1, process=ve),
      losses.consistency_training_loss(online, target, x0, key, sigmas=sigmas))


def _lcd_and_lcf_pairs(key, ts, num_scales, **kw):
  """The (t_n, t_{n+k}) each of LCD's and LCF's losses draws for 4,096
  examples, read through a weighting that returns the pair."""
  weighting = lambda t, t_next: jnp.stack([t, t_next], -1)
  metric = lambda x, y: jnp.ones((x.shape[0], 1))
  f = VP.consistency_fn(lambda z, c: z)
  x0 = jnp.zeros((4096, 2))
  return [np.asarray(fn(online=f, target=f, x0=x0, key=key, ts=ts,
                        process=VP, metric=metric, weighting=weighting,
                        num_scales=num_scales, **kw))
          for fn in (functools.partial(
              losses.latent_consistency_distillation_loss,
              teacher=vp_gaussian_denoiser(0.0, 1.0)),
                     losses.latent_consistency_finetuning_loss)]


@pytest.mark.parametrize("skip", [1, 20])
def test_skip_k_pairs_are_k_grid_points_apart(skip):
  """On the every-step VP grid t_{n+k} − t_n = k, and every
  n ∈ {0, …, N − 1 − k} is drawn."""
  lo = np.asarray(VP.grid(100))
  for pairs in _lcd_and_lcf_pairs(jax.random.key(10), VP.grid(100, size=100),
                                  100, skip=skip):
    starts = np.searchsorted(lo, pairs[:, 0])
    np.testing.assert_allclose(pairs[:, 1], lo[starts + skip])
    assert starts.min() == 0 and starts.max() == 100 - 1 - skip


def test_ddim_starts_are_the_official_scripts_50_point_grid():
  """lcm.starts=ddim, as train_lcm_distill_sd_wds.py: the start t_{n+k} from
  DDIMSolver's timesteps (1, …, 50)·(1000 // 50) − 1 = 19, 39, …, 999, the
  end from its "prev" list, t_0 and then the previous grid point."""
  ddim = np.arange(1, 51) * (1000 // 50) - 1
  prev = np.concatenate([[0], ddim[:-1]])
  for pairs in _lcd_and_lcf_pairs(jax.random.key(21), VP.grid(1000), 1000,
                                  skip=20, starts="ddim"):
    assert set(map(tuple, pairs)) == set(zip(prev, ddim))  # all 50, only them
  c = lcd_toy2d.get_config()
  c.lcm.starts = "ddim"
  assert methods.make_objective(c, (2,)).starts == "ddim"
  c.curriculum.num_scales = 990  # not 20·(N/20)
  with pytest.raises(ValueError, match="multiple of lcm.skip"):
    methods.make_objective(c, (2,))
  c.lcm.starts = "grid"
  with pytest.raises(ValueError, match="lcm.starts.*ddim"):
    methods.make_objective(c, (2,))


def test_process_multistep_on_ve_is_cm_alg_1():
  ve = processes.VE()
  f = ve.consistency_fn(lambda x, c: jnp.cos(x) * c[:, None])
  key, shape, ts = jax.random.key(11), (5, 3), jnp.array([2.0, 0.821])
  np.testing.assert_array_equal(
      samplers.process_multistep(f, key, shape, ts, process=ve),
      samplers.multistep(f, key, shape, ts))


def test_label_dropout_rate_and_null_label():
  labels = jnp.zeros((20000,), jnp.int32) + 3
  dropped = step_lib.drop_labels(jax.random.key(12), labels, 0.1, 10)
  assert set(np.unique(dropped)) == {3, 10}
  assert abs(float((dropped == 10).mean()) - 0.1) < 0.01


def test_condition_dropout_drops_label_and_context_with_one_mask():
  n, d = 20000, 3
  labels = jnp.arange(n, dtype=jnp.int32) % 4
  context = jax.random.normal(jax.random.key(13), (n, d)) + 5.0  # never 0
  key = jax.random.key(14)
  y, ctx = step_lib.drop_condition(key, 0.1, labels, context, 4)
  dropped = np.asarray(y == 4)
  assert abs(dropped.mean() - 0.1) < 0.01
  np.testing.assert_array_equal(np.asarray(y)[~dropped], labels[~dropped])
  np.testing.assert_array_equal(np.asarray(ctx)[dropped], 0.0)  # the null
  np.testing.assert_array_equal(np.asarray(ctx)[~dropped],
                                np.asarray(context)[~dropped])
  # Labels alone or context alone: the same draw (same key) as together.
  np.testing.assert_array_equal(step_lib.drop_labels(key, labels, 0.1, 4), y)
  _, ctx_only = step_lib.drop_condition(key, 0.1, None, context, 0)
  np.testing.assert_array_equal(ctx_only, ctx)


def test_guided_teacher_pair_is_context_and_null_and_w_0_is_conditional():
  """The train step's (φ(·, c), φ(·, ∅)) for a context-conditioned teacher,
  and LCD with w = 0 equals LCD with the plain conditional teacher."""
  from cm_jax import nn
  from cm_jax.nn import dummy_inputs
  model = nn.get_model(dict(name="mlp", hidden=16, depth=1, context_dim=3))
  params = model.init(jax.random.key(15), *dummy_inputs(model, (2,)))["params"]
  params = jax.tree.map(  # every weight active (the output layer starts ≈ 0)
      lambda p: jax.random.normal(jax.random.key(16), p.shape), params)
  x0 = jax.random.normal(jax.random.key(17), (8, 2))
  batch = {"x": x0, "context": jax.random.normal(jax.random.key(18), (8, 3))}
  cond, uncond = step_lib._teacher(model, params, batch, guided=True)
  apply = lambda ctx: lambda x, c: model.apply(
      {"params": params}, x, nn.Condition(c, context=ctx))
  z, c = jax.random.normal(jax.random.key(19), (8, 2)), jnp.linspace(0, 1, 8)
  np.testing.assert_array_equal(cond(z, c), apply(batch["context"])(z, c))
  np.testing.assert_array_equal(uncond(z, c), apply(jnp.zeros((8, 3)))(z, c))
  assert not np.allclose(cond(z, c), uncond(z, c))
  c = lcd_toy2d.get_config()
  c.lcm.w_min = c.lcm.w_max = 0.0
  c.model.w_embedding = False
  obj = methods.make_objective(c, (2,))
  f = lambda z, c_noise, w=None: 0.1 * z
  loss = lambda teacher: obj(f, f, x0, jax.random.key(20), 0, teacher)[0]
  np.testing.assert_array_equal(loss((cond, uncond)), loss((cond, cond)))
  c.lcm.w_min = c.lcm.w_max = 2.0
  obj = methods.make_objective(c, (2,))
  assert not np.allclose(loss((cond, uncond)), loss((cond, cond)))


def test_sample_contexts_come_from_a_file_or_the_data_and_cycle(tmp_path):
  from cm_jax import generate
  from cm_jax.data import ArraySource
  source = ArraySource(x=np.zeros((5, 2), np.float32),
                       context=np.arange(15, dtype=np.float32).reshape(5, 3))
  assert generate.sample_contexts(0, "", source, 4) is None  # no context input
  np.testing.assert_array_equal(generate.sample_contexts(3, "", source, 4),
                                source.context[:4])
  path = str(tmp_path / "c.npz")
  np.savez(path, context=np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
  from_file = generate.sample_contexts(3, path, source, 4)
  np.testing.assert_array_equal(generate.cycled(from_file, 1, 3),
                                [[4, 5, 6], [1, 2, 3], [4, 5, 6]])
  with pytest.raises(ValueError, match=r"must be \[N, 4\].*got \[2, 3\]"):
    generate.sample_contexts(4, path, source, 4)
  with pytest.raises(FileNotFoundError, match="--config.sample.context="):
    generate.sample_contexts(3, path + "x", source, 4)
  with pytest.raises(ValueError, match="--config.sample.context="):
    generate.sample_contexts(3, "", ArraySource(x=source.x), 4)


def test_lcm_objectives_check_their_config():
  c = lcd_toy2d.get_config()
  obj = methods.make_objective(c, (2,))
  assert obj.needs.guided_teacher
  assert (obj.skip, obj.starts, obj.w_min, obj.w_max) == (20, "all", 0.0, 4.0)
  assert isinstance(obj.diffusion, processes.VP)
  np.testing.assert_array_equal(obj.sigmas(1000), np.arange(1000))
  c.lcm.skip = 1000
  with pytest.raises(ValueError, match="num_scales"):
    methods.make_objective(c, (2,))
  c = lcd_toy2d.get_config()
  c.teacher.solver = "heun"
  with pytest.raises(ValueError, match="solver=ddim"):
    methods.make_objective(c, (2,))
  c = lcd_toy2d.get_config()
  c.method = "cd"
  with pytest.raises(ValueError, match="process=ve"):
    methods.make_objective(c, (2,))


def test_lcm_configs_build():
  from cm_jax import nn
  from cm_jax.nn import dummy_inputs
  from configs import edm_cifar10, lcd_cifar10, lcf_toy2d
  for c, shape in ((lcd_cifar10.get_config(), (32, 32, 3)),
                   (lcd_cifar10.get_config("smoke"), (32, 32, 3)),
                   (lcf_toy2d.get_config(), (2,)),
                   (edm_cifar10.get_config("cond"), (32, 32, 3))):
    obj = methods.make_objective(c, shape)
    assert isinstance(obj.diffusion, processes.VP)
    model = nn.get_model(c.model)
    params = jax.eval_shape(model.init, jax.random.key(0),
                            *dummy_inputs(model, shape))["params"]
    assert ("w_proj" in params["embed"]) == (c.method != "diffusion")
  c = lcd_cifar10.get_config()
  assert (c.lcm.skip, c.lcm.w_min, c.lcm.w_max, c.target.mu) == (20, 2.0, 14.0, 0.95)
  assert (c.curriculum.num_scales, c.teacher.solver) == (1000, "ddim")


def test_lcd_cifar10_clips_the_gradient_of_the_scripts_mean():
  """configs/lcd_cifar10.py takes ℓ2 as the official script's per-element
  mean, so its clip at 1.0 sees a gradient that does not grow with the data's
  dimension: through its LCD objective, 16×16×4 latents (the recipe's) and
  4×4×4 ones give gradients of the same size; with reduction=sum, 16× (the
  ratio of dimensions)."""
  from configs import lcd_cifar10
  for arg in (None, "smoke", "pixel"):
    c = lcd_cifar10.get_config(arg)
    assert (c.loss.metric, c.loss.reduction, c.optim.grad_clip) == (
        "l2", "mean", 1.0)
    assert c.lcm.starts == "all"  # LCM Alg. 1 (the script's grid: "ddim")
  teacher = (lambda z, c: 0.9 * z, lambda z, c: 0.7 * z)  # ε: φ(·, c), φ(·, ∅)
  target = lambda z, c, w=None: 0.8 * z
  shapes = ((4, 4, 4), (16, 16, 4))

  def grads(theta):  # ∂/∂θ of the step's batch mean, f_θ's ε = θ·z
    out = []
    for reduction in ("mean", "sum"):
      c = lcd_cifar10.get_config()
      c.loss.reduction = reduction
      for shape in shapes:
        obj = methods.make_objective(c, shape)
        x0 = jax.random.normal(jax.random.key(22), (64, *shape))
        loss = lambda theta: jnp.mean(obj(
            lambda z, c, w=None: theta * z, target, x0, jax.random.key(23), 0,
            teacher)[0])
        out.append(jax.grad(loss)(theta))
    return jnp.stack(out)

  mean_small, mean_large, sum_small, sum_large = np.abs(jax.jit(grads)(1.0))
  assert 0.9 < mean_large / mean_small < 1.1, (mean_small, mean_large)
  assert 16 * 0.9 < sum_large / sum_small < 16 * 1.1, (sum_small, sum_large)

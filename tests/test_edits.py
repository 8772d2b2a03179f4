"""--mode=edit and --mode=search on a tiny trained model, and their invariants
checked on what they save (CM Alg. 4: kept pixels, luminance, pooling)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from cm_jax import editing, generate, run, schedules
from cm_jax.modes import edit as edits
from cm_jax.data.base import uint8_to_float
from cm_jax import experiment
from cm_jax.modes import evaluate as eval_mode
from cm_jax.modes import sample as sample_mode
from cm_jax.modes import train as train_mode
from cm_jax.processes import VE as Diffusion
from configs import base, ict_cifar10

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HALF_LEVEL = 0.5 / 127.5  # uint8 rounding in [−1, 1] units
NUM = 4  # images per edit


def smooth_colour_images(num, size=8, seed=0):
  """uint8 [num, size, size, 3]: bilinear blends of four random corner colours."""
  rng = np.random.default_rng(seed)
  corners = rng.uniform(0, 255, (num, 2, 2, 3))
  s = np.linspace(0, 1, size)
  wy, wx = s[:, None, None], s[None, :, None]
  images = ((1 - wy) * (1 - wx) * corners[:, None, None, 0, 0]
            + (1 - wy) * wx * corners[:, None, None, 0, 1]
            + wy * (1 - wx) * corners[:, None, None, 1, 0]
            + wy * wx * corners[:, None, None, 1, 1])
  return np.round(images).astype(np.uint8)


def tiny_config(data_path):
  """The :smoke recipe shrunk to a class-conditional 8×8 RGB UNet."""
  c = ict_cifar10.get_config("smoke")
  c.data.path = data_path
  c.data.random_flip = False
  c.model.ch = 8
  c.model.ch_mult = (1,)
  c.model.num_classes = 4
  c.train.num_steps = 2
  c.train.checkpoint_every = 2
  c.train.sample_every = 0
  c.train.tensorboard = False
  c.edit.num = NUM
  c.edit.steps = 3
  c.search.num = 64
  c.search.steps = 10
  c.sample.batch_size = 64
  return c


TASKS = ("inpaint", "colorize", "superres", "stroke", "denoise", "interpolate")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(config, workdir, {task: saved arrays}) of a tiny model trained for 2
  steps, with every edit task run once through ``run.run`` (the CLI's call)."""
  root = tmp_path_factory.mktemp("edits")
  data_path = str(root / "data.npz")
  np.savez(data_path, x_train=smooth_colour_images(64),
           y_train=np.arange(64) % 4)
  workdir = str(root / "run")
  config = tiny_config(data_path)
  train_mode.train(config, workdir)
  outputs = {task: run_edit((config, workdir), task, mask="strokes",
                            num_alphas=5) for task in TASKS}
  return config, workdir, outputs


def run_edit(trained, task, **fields):
  config, workdir = trained[:2]
  config = config.copy_and_resolve_references()
  config.edit.task = task
  for name, value in fields.items():
    config.edit[name] = value
  prefix = run.run(config, workdir, "edit")
  assert prefix == os.path.join(workdir, "edits", task)
  assert os.path.exists(prefix + ".png")
  with np.load(prefix + ".npz") as arrays:
    return dict(arrays)


def test_every_task_writes_its_outputs(trained):
  for task, out in trained[2].items():
    if task == "interpolate":
      assert out["result"].shape == (NUM, 5, 8, 8, 3)
      np.testing.assert_allclose(out["alphas"], np.linspace(0, 1, 5))
      continue
    expected = {"input", "result", "reference"} | (
        {"mask"} if task == "inpaint" else set())
    assert set(out) == expected, task
    assert out["result"].shape == out["reference"].shape == (NUM, 8, 8, 3)
    assert all(a.dtype == np.uint8 for a in out.values())
  # The reference row is the data: examples edit.start … of the source.
  np.testing.assert_array_equal(trained[2]["stroke"]["reference"],
                                smooth_colour_images(64)[:NUM])


def test_inpainting_keeps_every_unmasked_pixel(trained):
  out = trained[2]["inpaint"]
  keep = out["mask"] == 0
  assert 0 < keep.mean() < 1
  np.testing.assert_array_equal(out["result"][keep], out["input"][keep])
  np.testing.assert_array_equal(out["result"][keep], out["reference"][keep])
  assert np.any(out["result"][~keep] != out["input"][~keep])  # generated


def test_colorization_keeps_the_luminance(trained):
  out = trained[2]["colorize"]
  grey = uint8_to_float(out["input"])
  np.testing.assert_array_equal(grey[..., 0], grey[..., 2])  # a grey input
  np.testing.assert_allclose(editing.luminance(uint8_to_float(out["result"])),
                             editing.luminance(grey), atol=HALF_LEVEL + 1e-5)
  assert np.ptp(out["result"].astype(int), axis=-1).max() > 0  # has colour


def test_super_resolution_pools_back_to_the_input(trained):
  out = trained[2]["superres"]
  assert out["input"].shape == (NUM, 4, 4, 3)
  pooled = editing.average_pool(uint8_to_float(out["result"]), 2)
  np.testing.assert_allclose(pooled, uint8_to_float(out["input"]),
                             atol=HALF_LEVEL + 1e-5)


def test_user_files_as_images_and_mask(trained, tmp_path):
  images = smooth_colour_images(3, seed=5)
  npz = str(tmp_path / "mine.npz")
  np.savez(npz, images=images)
  mask = np.zeros((8, 8), np.uint8)
  mask[:, :3] = 255
  mask_png = str(tmp_path / "mask.png")
  Image.fromarray(mask).save(mask_png)
  out = run_edit(trained, "inpaint", input=npz, mask=mask_png)
  np.testing.assert_array_equal(out["reference"], images)
  np.testing.assert_array_equal(out["mask"][..., 0],
                                np.broadcast_to(mask // 255, (3, 8, 8)))
  np.testing.assert_array_equal(out["result"][:, :, 3:], images[:, :, 3:])


def test_image_files_are_read_at_the_model_size(tmp_path):
  image = smooth_colour_images(1, seed=6)[0]
  same, big = str(tmp_path / "same.png"), str(tmp_path / "big.png")
  Image.fromarray(image).save(same)
  Image.fromarray(np.repeat(np.repeat(image, 4, 0), 4, 1)).save(big)
  np.testing.assert_array_equal(edits.read_images(same, (8, 8, 3)), image[None])
  grey = edits.read_images(big, (8, 8, 1))
  assert grey.shape == (1, 8, 8, 1) and grey.dtype == np.uint8


def test_bad_edit_inputs_fail_in_one_line(trained):
  with pytest.raises(ValueError, match="valid: center, left, right, strokes"):
    run_edit(trained, "inpaint", mask="square")
  with pytest.raises(ValueError, match="edit.task.*valid"):
    run_edit(trained, "sharpen")
  with pytest.raises(ValueError, match="strictly descending"):
    run_edit(trained, "inpaint", ts=(1.0, 5.0))
  with pytest.raises(FileNotFoundError, match="edit.input"):
    run_edit(trained, "inpaint", input="/nonexistent.npz")


def test_edit_through_the_command_line(trained):
  config, workdir = trained[:2]
  command = [sys.executable, "launch.py", "--config=configs/ict_cifar10.py:smoke",
             f"--workdir={workdir}", "--mode=edit"]
  command += [f"--config.{k}={v}" for k, v in (
      ("data.path", config.data.path), ("data.random_flip", False),
      ("model.ch", 8), ("model.ch_mult", "(1,)"), ("model.num_classes", 4),
      ("edit.task", "inpaint"), ("edit.mask", "left"), ("edit.num", 2),
      ("edit.ts", "(20.0,2.0,0.5)"))]
  subprocess.run(command, cwd=REPO, check=True, capture_output=True)
  with np.load(os.path.join(workdir, "edits", "inpaint.npz")) as out:
    keep = out["mask"] == 0
    np.testing.assert_array_equal(keep[:, :, 4:], True)
    np.testing.assert_array_equal(keep[:, :, :4], False)
    np.testing.assert_array_equal(out["result"][keep], out["input"][keep])


def test_class_labels_reach_the_network(trained):
  config, workdir = trained[:2]
  config = config.copy_and_resolve_references()
  exp, ema, _ = experiment.load_trained(config, workdir)
  samples = []
  for labels in ((1,), (2,)):  # the same noise, another class
    config.sample.labels = labels
    samples.append(generate.generate(exp.model, ema, config,
                                     exp.source.example_shape, 4, 1,
                                     jax.random.key(0)))
  # (Float outputs: two training steps barely move the zero-initialised head.)
  assert np.any(samples[0] != samples[1])
  config.sample.labels = (5,)  # 4 is the null class
  with pytest.raises(ValueError, match=r"\[0, 4\]"):
    generate.generate(exp.model, ema, config, exp.source.example_shape, 4, 1,
                      jax.random.key(0))


def test_class_labels_cycle():
  np.testing.assert_array_equal(generate.class_labels(3, (), 2, 5),
                                [2, 0, 1, 2, 0])
  np.testing.assert_array_equal(generate.class_labels(10, (7, 4), 1, 3),
                                [4, 7, 4])
  assert generate.class_labels(0, (1,), 0, 3) is None


def test_default_edit_times_are_alg1_times():
  config = base.get_base_config()
  diffusion = Diffusion(**config.diffusion)
  config.edit.steps = 4
  ts = edits.edit_times(config.edit, diffusion, "inpaint")
  assert ts[0] == 80.0 and len(ts) == 4
  assert all(a > b for a, b in zip(ts, ts[1:])) and ts[-1] > 0.002
  # The last three are sample_times' interior points for 4 steps.
  config.sample.ts = ()
  np.testing.assert_allclose(ts[1:], generate.sample_times(config.sample, 4,
                                                           diffusion), rtol=1e-6)
  assert edits.edit_times(config.edit, diffusion, "stroke")[0] == pytest.approx(
      config.edit.stroke_t)


def test_shrink_into_range_keeps_the_anchor_component():
  rng = np.random.default_rng(0)
  x = rng.normal(0, 1.5, (64, 4, 4, 3)).astype(np.float32)
  kept = edits._keep_luminance_in_range(x.clip(-3, 3))
  y = editing.luminance(x.clip(-3, 3))
  inside = np.abs(y / editing.LUMA.sum()) <= 1  # a representable luminance
  assert np.all(np.abs(kept) <= 1)
  np.testing.assert_allclose(editing.luminance(kept)[inside], y[inside],
                             atol=2e-6)
  pooled = np.asarray(editing.average_pool(x, 2))
  kept = edits._keep_patch_means_in_range(x, 2)
  fits = np.abs(pooled) <= 1
  assert np.all(np.abs(kept) <= 1)
  np.testing.assert_allclose(np.asarray(editing.average_pool(kept, 2))[fits],
                             pooled[fits], atol=2e-6)
  inside = np.all(np.abs(x) <= 1, axis=-1, keepdims=True)
  np.testing.assert_array_equal(  # in-range pixels are left alone
      edits._keep_luminance_in_range(x)[np.broadcast_to(inside, x.shape)],
      x[np.broadcast_to(inside, x.shape)])


def test_masks():
  shape = (2, 8, 8, 1)
  centre = edits.make_mask("center", shape)
  assert centre.sum() == 2 * 16 and centre[0, 2:6, 2:6].all()
  left = edits.make_mask("left", shape)
  assert left[:, :, :4].all() and not left[:, :, 4:].any()
  strokes = edits.make_mask("strokes", (2, 16, 16, 3), seed=1)
  assert 0 < strokes.mean() < 1
  assert np.any(strokes[0] != strokes[1])  # one set of strokes per image
  np.testing.assert_array_equal(strokes, edits.make_mask("strokes",
                                                         (2, 16, 16, 3), 1))


def test_search_mode_writes_the_table(trained):
  config, workdir = trained[:2]
  config = config.copy_and_resolve_references()
  config.search.metric = "frechet"  # pixels; FID is the default for images
  result = run.run(config, workdir, "search")
  with open(os.path.join(workdir, "search", "two_step_2.json")) as f:
    saved = json.load(f)
  values = {row["index"]: row["value"] for row in saved["rows"]}
  assert saved["best_index"] == result.best_index == min(values, key=values.get)
  assert 1 <= result.best_index <= 8  # the interior of the 10-point grid
  grid = np.asarray(schedules.karras_sigmas(10))[::-1]
  assert saved["best_t"] == pytest.approx(grid[result.best_index])
  assert saved["num"] == 64 and np.isfinite(saved["one_step"])
  with open(os.path.join(workdir, "search", "two_step_2.md")) as f:
    assert f.read().count("← best") == 1

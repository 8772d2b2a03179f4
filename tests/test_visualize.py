"""Tests for cm_jax.visualize: pixel sizes of the figures, to_uint8."""

import numpy as np
import pytest
from PIL import Image

from cm_jax import visualize


def images(n: int, size: int, channels: int) -> np.ndarray:
  rng = np.random.default_rng(0)
  return rng.uniform(-1, 1, (n, size, size, channels)).astype(np.float32)


def test_to_uint8_round_trip():
  pixels = np.arange(256, dtype=np.uint8)
  as_float = pixels.astype(np.float32) / 127.5 - 1.0  # The data convention.
  np.testing.assert_array_equal(visualize.to_uint8(as_float), pixels)
  np.testing.assert_array_equal(visualize.to_uint8(pixels), pixels)


def test_to_uint8_clips():
  out = visualize.to_uint8(np.array([-3.0, -1.0, 0.0, 1.0, 3.0]))
  np.testing.assert_array_equal(out, [0, 0, 128, 255, 255])
  assert out.dtype == np.uint8


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_save_image_grid(tmp_path, channels, mode):
  path = tmp_path / "sub" / "grid.png"
  visualize.save_image_grid(images(5, 8, channels), str(path), ncol=3)
  with Image.open(path) as image:
    pad = visualize.PAD
    assert image.size == (pad + 3 * (8 + pad), pad + 2 * (8 + pad))
    assert image.mode == mode


def test_save_image_grid_defaults_to_square_and_scales(tmp_path):
  path = tmp_path / "grid.png"
  uint8_images = visualize.to_uint8(images(9, 4, 3))
  visualize.save_image_grid(uint8_images, str(path), scale=2)
  with Image.open(path) as image:
    side = visualize.PAD + 3 * (8 + visualize.PAD)
    assert image.size == (side, side)


def test_save_image_grid_rejects_bad_shapes(tmp_path):
  with pytest.raises(ValueError, match="NHWC"):
    visualize.save_image_grid(np.zeros((2, 4, 4, 2)), str(tmp_path / "x.png"))


def test_save_panels(tmp_path):
  rows = [("input", images(4, 8, 1)), ("result", images(4, 8, 3)),
          ("reference", images(4, 8, 3))]
  path = tmp_path / "panels.png"
  visualize.save_panels(rows, str(path))
  grid_width = visualize.PAD + 4 * (8 + visualize.PAD)
  grid_height = visualize.PAD + 8 + visualize.PAD
  with Image.open(path) as image:
    assert image.size[0] > grid_width  # A column of titles on the left.
    assert image.size[1] == 3 * grid_height and image.mode == "RGB"
  untitled = tmp_path / "untitled.png"
  visualize.save_panels([(None, images(4, 8, 3)), ("", images(2, 16, 3))],
                        str(untitled))
  with Image.open(untitled) as image:
    assert image.size == (grid_width, 2 * grid_height + 8)


def test_save_scatter(tmp_path):
  rng = np.random.default_rng(0)
  path = tmp_path / "scatter.png"
  visualize.save_scatter(rng.normal(size=(100, 2)), str(path),
                         reference=rng.normal(size=(300, 2)) + 5, size=200)
  with Image.open(path) as image:
    assert image.size == (200, 200)
    colors = {tuple(c) for c in np.asarray(image).reshape(-1, 3)}
  assert visualize.POINT_COLOR in colors
  assert visualize.REFERENCE_COLOR in colors


def test_save_scatter_with_extent_drops_outside_points(tmp_path):
  path = tmp_path / "scatter.png"
  points = np.array([[0.5, 0.5], [10.0, 10.0], [np.nan, 0.0]])
  visualize.save_scatter(points, str(path), size=64, extent=(-1, 1, -1, 1))
  with Image.open(path) as image:
    assert image.size == (64, 64)
    pixels = np.asarray(image)
  red = (pixels == visualize.POINT_COLOR).all(axis=-1)
  assert red.sum() == 4  # One 2×2 dot, in the upper-right quadrant.
  rows, cols = np.nonzero(red)
  assert rows.max() < 32 and cols.min() >= 32

"""PNG figures with PIL only: image grids, titled panels and 2-D scatters."""

import math
import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAD = 2  # Pixels between and around images.
PAD_VALUE = 255  # White grid lines.
POINT_COLOR = (214, 39, 40)  # Red: e.g. samples.
REFERENCE_COLOR = (150, 170, 210)  # Light blue: e.g. data, drawn beneath.
AXIS_COLOR = (200, 200, 200)

Extent = tuple[float, float, float, float]  # (xmin, xmax, ymin, ymax).


def to_uint8(images) -> np.ndarray:
  """Maps floats in [-1, 1] to uint8, rounding and clipping; uint8 passes."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images, ncol: int | None = None, scale: int = 1) -> np.ndarray:
  """Tiles NHWC images (1 or 3 channels) into one uint8 [H', W', C] array."""
  images = to_uint8(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError("Expected NHWC images with 1 or 3 channels, got shape "
                     f"{images.shape}.")
  images = images.repeat(scale, axis=1).repeat(scale, axis=2)
  n, h, w, c = images.shape
  ncol = ncol or math.ceil(math.sqrt(n))
  nrow = math.ceil(n / ncol)
  grid = np.full((PAD + nrow * (h + PAD), PAD + ncol * (w + PAD), c),
                 PAD_VALUE, np.uint8)
  for i, image in enumerate(images):
    top, left = PAD + (i // ncol) * (h + PAD), PAD + (i % ncol) * (w + PAD)
    grid[top:top + h, left:left + w] = image
  return grid


def save_image_grid(images, path: str, ncol: int | None = None, *,
                    scale: int = 1):
  """Saves float [-1, 1] or uint8 NHWC images as one PNG grid.

  Args:
    images: [N, H, W, C] with C = 1 or 3.
    path: the PNG file; its directory is created.
    ncol: images per row; default ⌈√N⌉.
    scale: integer nearest-neighbour magnification, e.g. for 16×16 digits.
  """
  _save(image_grid(images, ncol, scale), path)


def save_panels(rows: Sequence[tuple[str | None, np.ndarray]], path: str,
                ncol: int | None = None, *, scale: int = 1):
  """Stacks image grids top to bottom, each titled on its left.

  For editing figures, rows [("input", y), ("result", x), ("reference", x0)]
  put corresponding images in one column. Rows may differ in image size and
  channels.

  Args:
    rows: (title or None, images [N, H, W, C]) pairs.
    path: the PNG file.
    ncol: images per line within a row; default all N on one line.
    scale: integer nearest-neighbour magnification.
  """
  grids = [_rgb(image_grid(images, ncol or len(images), scale))
           for _, images in rows]
  titles = [title or "" for title, _ in rows]
  font = ImageFont.load_default()
  label_width = max(_text_width(font, title) for title in titles)
  label_width += 2 * PAD if label_width else 0
  canvas = Image.new(
      "RGB", (label_width + max(g.shape[1] for g in grids),
              sum(g.shape[0] for g in grids)), (PAD_VALUE,) * 3)
  draw = ImageDraw.Draw(canvas)
  top = 0
  for title, grid in zip(titles, grids):
    canvas.paste(Image.fromarray(grid), (label_width, top))
    draw.text((PAD, top + grid.shape[0] // 2), title, fill=(0, 0, 0),
              font=font, anchor="lm")
    top += grid.shape[0]
  _save(np.asarray(canvas), path)


def save_scatter(points, path: str, reference=None, size: int = 512,
                 extent: Extent | None = None):
  """Draws 2-D points (red) over optional reference points (light blue).

  Args:
    points: [N, 2], e.g. samples.
    path: the PNG file, `size` × `size` pixels.
    reference: optional [M, 2], e.g. training data.
    size: the image side in pixels.
    extent: (xmin, xmax, ymin, ymax); default the square around all points.
  """
  layers = [(np.asarray(points, np.float64), POINT_COLOR)]
  if reference is not None:
    layers.insert(0, (np.asarray(reference, np.float64), REFERENCE_COLOR))
  extent = extent or _square_extent(np.concatenate([p for p, _ in layers]))
  canvas = np.full((size, size, 3), 255, np.uint8)
  _draw_axes(canvas, extent)
  for layer, color in layers:
    _draw_points(canvas, _to_pixels(layer, extent, size), color)
  _save(canvas, path)


def _square_extent(points: np.ndarray, margin: float = 0.05) -> Extent:
  """The smallest square around the finite `points`, widened by `margin`."""
  points = points[np.isfinite(points).all(axis=1)]
  if not len(points):
    return (-1.0, 1.0, -1.0, 1.0)
  lo, hi = points.min(axis=0), points.max(axis=0)
  (cx, cy), half = (lo + hi) / 2, max((hi - lo).max() / 2, 1e-6) * (1 + margin)
  return (cx - half, cx + half, cy - half, cy + half)


def _to_pixels(points: np.ndarray, extent: Extent, size: int) -> np.ndarray:
  """Maps the finite points to integer (row, col) pixels, y pointing up."""
  xmin, xmax, ymin, ymax = extent
  col = (points[:, 0] - xmin) / (xmax - xmin) * (size - 1)
  row = (ymax - points[:, 1]) / (ymax - ymin) * (size - 1)
  pixels = np.stack([row, col], axis=1)
  pixels = pixels[np.isfinite(pixels).all(axis=1)]
  # Clamp far-off points before the cast; they are dropped when drawn.
  return np.round(np.clip(pixels, -2, size + 1)).astype(np.int64)


def _draw_points(canvas: np.ndarray, pixels: np.ndarray,
                 color: tuple[int, int, int]):
  """Stamps a 2×2-pixel dot at each pixel; those outside are dropped."""
  size = canvas.shape[0]
  for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
    r, c = pixels[:, 0] + dr, pixels[:, 1] + dc
    inside = (r >= 0) & (r < size) & (c >= 0) & (c < size)
    canvas[r[inside], c[inside]] = color


def _draw_axes(canvas: np.ndarray, extent: Extent):
  """Light grey lines x = 0 and y = 0 where they are in view."""
  size = canvas.shape[0]
  row, col = _to_pixels(np.zeros((1, 2)), extent, size)[0]
  if 0 <= row < size:
    canvas[row, :] = AXIS_COLOR
  if 0 <= col < size:
    canvas[:, col] = AXIS_COLOR


def _text_width(font, text: str) -> int:
  if not text:
    return 0
  left, _, right, _ = font.getbbox(text)
  return math.ceil(right - left)


def _rgb(image: np.ndarray) -> np.ndarray:
  return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def _save(image: np.ndarray, path: str):
  """Writes uint8 [H, W, C] as PNG, creating the directory."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)

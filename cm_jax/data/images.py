"""data.source=images: a folder or .zip of image files in EDM's layout, and
ADM's center crop.

The layout is what EDM's ``dataset_tool.py`` writes and its
``training/dataset.py`` ``ImageFolderDataset`` reads (Karras et al. 2022,
github.com/NVlabs/edm): image files anywhere under the root (sub-folders
allowed), and optionally ``dataset.json`` at the top holding
``{"labels": [["00000/img00000000.png", 6], ...]}`` (paths relative to the
root with forward slashes) or ``{"labels": null}``. As there, example i is
the i-th image file in the sorted list of relative paths, and an image is
decoded only when a batch asks for it.

Departures from EDM's reader, each so a data set fails at start or in one
line rather than mid-run or in a traceback:
- image files are those with a fixed list of extensions (``EXTENSIONS``),
  not every extension the installed Pillow registers (which adds .h5, .ps,
  .mpeg, ... and changes with its version); on dataset_tool's output (PNG)
  the file list, hence the order, is EDM's;
- every image is checked to be ``resolution``×``resolution`` when decoded
  (EDM checks the first);
- modes are mapped to 1 or 3 channels: L (and 1, LA) → 1; RGB (and RGBA,
  P, CMYK, YCbCr) → 3, alpha dropped (EDM would give RGBA 4 channels and a
  palette image its indices); the first image fixes C, a grayscale image in
  an RGB set is repeated to 3 channels, an RGB one in a grayscale set is
  refused; 16-bit and float images are refused;
- ``dataset.json`` must label every image and name no missing one (EDM
  ignores extra names); integer labels only (EDM also reads float vectors).
"""

import io
import json
import os
import threading
import zipfile

import numpy as np
from PIL import Image

from cm_jax.data.base import Batch, make_batch

EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".gif",
              ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm")
LABELS_FILE = "dataset.json"
# Pillow modes read as grayscale (1 channel) or RGB (3); others are refused.
_GRAY_MODES = ("L", "1", "LA")
_RGB_MODES = ("RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV")


def is_image_file(name: str) -> bool:
  return os.path.splitext(name)[1].lower() in EXTENSIONS


class ImageFolderSource:
  """The images of a folder or .zip (EDM's layout, see the module doc):
  random access, decoded per batch.

  Attributes:
    path: the folder or .zip.
    names: the image files' relative paths ("/"-separated), sorted: example
      i is ``names[i]``.
    labels: int64 [N] from dataset.json, or None when unlabelled.
  """

  def __init__(self, path: str, resolution: int, num_classes: int = 0):
    if not path or not os.path.exists(path):
      raise FileNotFoundError(
          f"image data {path!r} not found; set --config.data.path=DIR or "
          "FILE.zip (image files, optionally dataset.json: EDM's layout).")
    self.path = path
    self.resolution = resolution
    self._is_zip = not os.path.isdir(path)
    # One zipfile.ZipFile per reading thread (the loop's and the prefetch
    # thread), opened on its first read and never shared: no lock is taken,
    # and a forked process opens its own.
    self._local = threading.local()
    if self._is_zip:
      if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is neither a folder nor a .zip file; point "
                         "--config.data.path at a folder of images or a .zip "
                         "of them (EDM's dataset_tool.py writes either).")
      files = [n for n in self._zip().namelist() if not n.endswith("/")]
    else:
      files = [os.path.relpath(os.path.join(root, f), path).replace(
          os.sep, "/") for root, _, names in os.walk(path) for f in names]
    self.names = tuple(sorted(f for f in files if is_image_file(f)))
    if not self.names:
      raise ValueError(
          f"No image files ({', '.join(EXTENSIONS)}) found in {path}; point "
          "--config.data.path at a folder or .zip of images.")
    self.labels = self._read_labels(set(files))
    self.num_classes = 0
    if self.labels is not None:
      self.num_classes = num_classes or int(self.labels.max()) + 1
      low, high = int(self.labels.min()), int(self.labels.max())
      if low < 0 or high >= self.num_classes:
        raise ValueError(
            f"{self._where(LABELS_FILE)} holds labels {low} … {high}, outside "
            f"[0, {self.num_classes}) (data.num_classes={num_classes}"
            f"{'' if num_classes else ': the max + 1'}); fix the labels or "
            "--config.data.num_classes.")
    self._channels = None  # fixed by the first image
    first = self._decode(0)
    self._channels = first.shape[-1]
    self.example_shape = first.shape
    self.is_image = True
    self.context_dim = 0

  @property
  def num_examples(self) -> int:
    return len(self.names)

  def get(self, indices: np.ndarray) -> Batch:
    x = np.stack([self._decode(int(i)) for i in indices])
    y = None if self.labels is None else self.labels[indices]
    return make_batch(x, y)

  def __getstate__(self):
    return {k: v for k, v in self.__dict__.items() if k != "_local"}

  def __setstate__(self, state):
    self.__dict__.update(state, _local=threading.local())

  def _zip(self) -> zipfile.ZipFile:
    """This thread's (and process's) handle on the .zip."""
    local = self._local
    if getattr(local, "pid", None) != os.getpid():
      local.zip, local.pid = zipfile.ZipFile(self.path), os.getpid()
    return local.zip

  def _read(self, name: str) -> bytes:
    if self._is_zip:
      return self._zip().read(name)
    with open(os.path.join(self.path, name), "rb") as f:
      return f.read()

  def _where(self, name: str) -> str:
    return (f"{name} in {self.path}" if self._is_zip
            else os.path.join(self.path, name))

  def _decode(self, index: int) -> np.ndarray:
    """Image ``index`` as uint8 [R, R, C], checked; one-line errors."""
    name = self.names[index]
    try:
      with Image.open(io.BytesIO(self._read(name))) as image:
        self._check_size(name, image.size)
        array = _to_array(image)
    except Exception as e:  # pylint: disable=broad-except
      # Pillow raises OSError, SyntaxError, ValueError, EOFError, ... for a
      # broken file; ours (ValueError naming the file) pass through.
      if isinstance(e, ValueError) and str(e).startswith(self._where(name)):
        raise
      raise ValueError(
          f"Cannot read the image {self._where(name)}: {type(e).__name__}: "
          f"{' '.join(str(e).split())}; replace or delete the file (or re-run "
          "EDM's dataset_tool.py).") from e
    return self._match_channels(name, array)

  def _check_size(self, name: str, size: tuple[int, int]):
    r = self.resolution
    if size == (r, r):
      return
    width, height = size
    fix = (f"set --config.data.resolution={width}" if width == height
           else "the images must be square")
    raise ValueError(
        f"{self._where(name)} is {width}×{height}, not {r}×{r} "
        f"(data.resolution); {fix}, or re-run EDM's dataset_tool.py with "
        f"--resolution={r}x{r} to resize all images.")

  def _match_channels(self, name: str, array: np.ndarray) -> np.ndarray:
    """A grayscale image in an RGB set is repeated to 3 channels."""
    if self._channels is None or array.shape[-1] == self._channels:
      return array
    if self._channels == 3:
      return np.repeat(array, 3, axis=-1)
    raise ValueError(
        f"{self._where(name)} is in color but {self._where(self.names[0])} "
        "(the first image) is grayscale; convert the images to one mode "
        "(EDM's dataset_tool.py does).")

  def _read_labels(self, files: set[str]) -> np.ndarray | None:
    """Labels [N] of dataset.json in the order of ``names``, or None."""
    if LABELS_FILE not in files:
      return None
    where = self._where(LABELS_FILE)
    try:
      meta = json.loads(self._read(LABELS_FILE))
    except (OSError, ValueError) as e:
      raise ValueError(f"Cannot read {where}: {type(e).__name__}: {e}; fix it "
                       "or delete it (the images are then unlabelled).") from e
    if not isinstance(meta, dict) or "labels" not in meta:
      raise ValueError(f"{where} has no \"labels\" entry; write "
                       "{\"labels\": [[path, label], ...]} or {\"labels\": "
                       "null}.")
    pairs = meta["labels"]
    if pairs is None:
      return None
    if not (isinstance(pairs, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
        and isinstance(p[1], int) and not isinstance(p[1], bool)
        for p in pairs)):
      raise ValueError(
          f"{where}: \"labels\" must be a list of [relative path, integer "
          "label] pairs (vector labels are not supported; use data.source="
          "npz with context_train for vectors).")
    labels = dict(pairs)
    present = set(self.names)
    missing = sorted(n for n in labels if n not in present)
    if missing:
      raise ValueError(
          f"{where} labels {self._where(missing[0])}, which is not an image "
          f"file there ({len(missing)} such name(s)); remove the entry or add "
          "the image.")
    unlabelled = [n for n in self.names if n not in labels]
    if unlabelled:
      raise ValueError(
          f"{where} has no label for {self._where(unlabelled[0])} "
          f"({len(unlabelled)} unlabelled image(s)); label every image or "
          "write {\"labels\": null}.")
    return np.array([labels[n] for n in self.names], np.int64)


def _to_array(image: Image.Image) -> np.ndarray:
  """uint8 [H, W, 1] for grayscale modes, [H, W, 3] for color ones."""
  if image.mode in _GRAY_MODES:
    image = image.convert("L")
  elif image.mode in _RGB_MODES:
    image = image.convert("RGB")
  else:
    raise ValueError(f"mode {image.mode} (16-bit or float pixels) is not "
                     "supported; save the images as 8-bit grayscale or RGB")
  array = np.asarray(image, dtype=np.uint8)
  return array[..., None] if array.ndim == 2 else array


def images_source(config) -> ImageFolderSource:
  return ImageFolderSource(config.path, config.resolution,
                           num_classes=config.num_classes)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """ADM's ``center_crop_arr`` (guided-diffusion, image_datasets.py; the CM
  paper's LSUN preprocessing): halve with a box filter while the short side
  is ≥ 2·size, resize bicubically so the short side is ``size``, then cut
  the central size × size. uint8 [H, W, C] (C = 1 or 3) → [size, size, C]."""
  gray = image.shape[-1] == 1
  pil = Image.fromarray(image[..., 0] if gray else image)
  while min(pil.size) >= 2 * size:
    pil = pil.resize(tuple(s // 2 for s in pil.size), resample=Image.BOX)
  scale = size / min(pil.size)
  pil = pil.resize(tuple(round(s * scale) for s in pil.size),
                   resample=Image.BICUBIC)
  array = np.asarray(pil)
  top = (array.shape[0] - size) // 2
  left = (array.shape[1] - size) // 2
  array = array[top:top + size, left:left + size]
  return array[..., None] if gray else array

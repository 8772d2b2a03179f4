"""data.source=images (EDM's dataset_tool layout: a folder or .zip of image
files, optional dataset.json labels), ADM's center crop, and the tfds
source's crop, names and errors. The truth is independent of the reader:
PNGs written by Pillow from known arrays, and the order and labels EDM's
ImageFolderDataset defines (sorted relative paths; dataset.json)."""

import json
import os
import pickle
import threading
import zipfile

import ml_collections
import numpy as np
import pytest
from PIL import Image

from cm_jax import data
from cm_jax.data import images
from configs import base

# Written in this order, which is not the sorted one: the reader must sort.
NAMES = ("b/00002.png", "a/00001.png", "00003.png", "a/sub/00000.png",
         "a-z.png")
EDM_ORDER = sorted(NAMES)  # ["00003.png", "a-z.png", "a/00001.png", ...]


def config(**fields) -> ml_collections.ConfigDict:
  c = base.get_base_config().data
  c.update(fields)
  return c


def pixels(i: int, size: int = 4, channels: int = 3) -> np.ndarray:
  """Image i's known pixels: every value 0 … 255 occurs across the set."""
  values = (np.arange(size * size * channels) * 7 + 41 * i) % 256
  return values.reshape(size, size, channels).astype(np.uint8)


def write_folder(root, labels=None, channels=3, size=4, extra=()):
  """NAMES as PNGs (image i = ``pixels(i)``), plus non-image files;
  ``labels``: dataset.json's {"labels": ...} value (omitted when "none")."""
  os.makedirs(root)
  arrays = {}
  for i, name in enumerate(NAMES):
    array = pixels(i, size, channels)
    os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
    Image.fromarray(array[..., 0] if channels == 1 else array).save(
        os.path.join(root, name))
    arrays[name] = array
  for name in ("notes.txt", "a/meta.json", *extra):
    with open(os.path.join(root, name), "w") as f:
      f.write("not an image")
  if labels != "none":
    with open(os.path.join(root, "dataset.json"), "w") as f:
      json.dump({"labels": labels}, f)
  return str(root), arrays


def zip_folder(root, path):
  with zipfile.ZipFile(path, "w") as z:
    for folder, _, files in os.walk(root):
      for f in files:
        full = os.path.join(folder, f)
        z.write(full, os.path.relpath(full, root).replace(os.sep, "/"))
  return str(path)


LABELS = [[name, 3 * i % 5] for i, name in enumerate(NAMES)]  # 0, 3, 1, 4, 2


@pytest.fixture(params=["folder", "zip"])
def labelled(request, tmp_path):
  """(path, arrays by name) of the labelled set, as a folder or a .zip."""
  root, arrays = write_folder(tmp_path / "set", labels=LABELS)
  if request.param == "zip":
    return zip_folder(root, tmp_path / "set.zip"), arrays
  return root, arrays


def test_pixels_labels_and_order_are_edms(labelled):
  path, arrays = labelled
  source = data.get_source(config(source="images", path=path, resolution=4))
  assert source.names == tuple(EDM_ORDER)
  assert (source.num_examples, source.example_shape) == (5, (4, 4, 3))
  assert source.is_image and source.context_dim == 0
  assert source.num_classes == 5  # the labels' max + 1
  order = np.array([4, 0, 2, 1, 3])
  batch = source.get(order)
  want = np.stack([arrays[EDM_ORDER[i]] for i in order])
  np.testing.assert_array_equal(batch["x"],
                                want.astype(np.float32) / 127.5 - 1)
  assert batch["x"].dtype == np.float32
  by_name = dict(LABELS)
  np.testing.assert_array_equal(batch["y"],
                                [by_name[EDM_ORDER[i]] for i in order])
  assert batch["y"].dtype == np.int32
  assert data.describe(config(source="images", path=path), source) == (
      f"Data: images {path}, 5 examples of shape (4, 4, 3), 5 classes.")
  wider = data.get_source(config(source="images", path=path, resolution=4,
                                 num_classes=10))
  assert wider.num_classes == 10


def test_unlabelled_grayscale_and_null_labels(tmp_path):
  root, arrays = write_folder(tmp_path / "gray", labels="none", channels=1)
  for path in (root, zip_folder(root, tmp_path / "gray.zip")):
    source = data.get_source(config(source="images", path=path, resolution=4))
    assert source.example_shape == (4, 4, 1) and source.num_classes == 0
    batch = source.get(np.arange(5))
    assert "y" not in batch
    want = np.stack([arrays[name] for name in EDM_ORDER])
    np.testing.assert_array_equal(np.round((batch["x"] + 1) * 127.5), want)
  null, _ = write_folder(tmp_path / "null", labels=None)
  assert data.get_source(config(source="images", path=null,
                                resolution=4)).num_classes == 0


def test_modes_map_to_one_or_three_channels(tmp_path):
  """RGBA drops alpha; a palette image is its colors; a gray image in an RGB
  set repeats to 3 channels; an RGB image in a gray set is refused."""
  root = tmp_path / "modes"
  os.makedirs(root)
  rgb = pixels(0)
  rgba = np.concatenate([pixels(1), np.full((4, 4, 1), 7, np.uint8)], -1)
  Image.fromarray(rgb).save(root / "0.png")
  Image.fromarray(rgba).save(root / "1.png")
  Image.fromarray(pixels(2)[..., 0]).save(root / "2.png")
  Image.fromarray(pixels(3)).quantize(4).save(root / "3.png")
  palette = np.asarray(Image.open(root / "3.png").convert("RGB"))
  source = data.get_source(config(source="images", path=str(root),
                                  resolution=4))
  x = np.round((source.get(np.arange(4))["x"] + 1) * 127.5).astype(np.uint8)
  assert x.shape == (4, 4, 4, 3)
  np.testing.assert_array_equal(x[0], rgb)
  np.testing.assert_array_equal(x[1], pixels(1))
  np.testing.assert_array_equal(x[2], np.repeat(pixels(2)[..., :1], 3, -1))
  np.testing.assert_array_equal(x[3], palette)
  gray = tmp_path / "gray_first"
  os.makedirs(gray)
  Image.fromarray(pixels(0)[..., 0]).save(gray / "0.png")
  Image.fromarray(pixels(1)).save(gray / "1.png")
  source = data.get_source(config(source="images", path=str(gray),
                                  resolution=4))
  with pytest.raises(ValueError, match=r"1\.png is in color but .*0\.png"):
    source.get(np.array([1]))


def test_iterator_shards_and_resumes_it(labelled):
  """DataIterator over it as over the same images in memory: host slices
  make the global batch, a resumed iterator continues the same stream."""
  path, arrays = labelled
  source = data.get_source(config(source="images", path=path, resolution=4))
  array = data.ArraySource(x=np.stack([arrays[n] for n in EDM_ORDER]))
  whole = data.DataIterator(source, 4, seed=3, random_flip=True)
  expected = [next(whole)["x"] for _ in range(4)]  # crosses epochs
  hosts = [data.DataIterator(source, 4, seed=3, random_flip=True,
                             process_index=i, process_count=2, position=2)
           for i in range(2)]
  np.testing.assert_array_equal(
      np.concatenate([next(h)["x"] for h in hosts]), expected[2])
  in_memory = data.DataIterator(array, 4, seed=3, random_flip=True)
  np.testing.assert_array_equal(next(in_memory)["x"], expected[0])


def test_zip_reads_from_threads_and_after_pickling(tmp_path):
  """Each thread reads through its own zip handle (the prefetch thread's is
  not the loop's); a pickled source (e.g. to a worker) reopens the .zip."""
  root, arrays = write_folder(tmp_path / "set", labels="none")
  source = data.get_source(config(source="images", path=zip_folder(
      root, tmp_path / "set.zip"), resolution=4))
  want = source.get(np.arange(5))["x"]
  results, handles = [None] * 4, [None] * 4

  def read(k):
    for _ in range(20):
      results[k] = source.get(np.arange(5))["x"]
    handles[k] = source._zip()  # pylint: disable=protected-access

  threads = [threading.Thread(target=read, args=(k,)) for k in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  for result in results:
    np.testing.assert_array_equal(result, want)
  assert len({id(h) for h in handles}) == 4
  copy = pickle.loads(pickle.dumps(source))
  np.testing.assert_array_equal(copy.get(np.arange(5))["x"], want)


# One-line errors that name the file and the fix.


def one_line(error) -> str:
  message = str(error.value)
  assert "\n" not in message, message
  return message


def test_wrong_resolution_names_the_file_and_the_fix(labelled, tmp_path):
  path, _ = labelled
  with pytest.raises(ValueError) as e:
    data.get_source(config(source="images", path=path, resolution=8))
  message = one_line(e)
  assert "00003.png" in message and "is 4×4, not 8×8" in message
  assert "--config.data.resolution=4" in message
  assert "--resolution=8x8" in message
  # A later image of another size fails when its batch is read.
  root, _ = write_folder(tmp_path / "mixed", labels="none")
  Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(
      os.path.join(root, "b", "00002.png"))
  source = data.get_source(config(source="images", path=root, resolution=4))
  with pytest.raises(ValueError) as e:
    source.get(np.array([0, EDM_ORDER.index("b/00002.png")]))
  assert "b/00002.png is 6×4" in one_line(e)
  assert "square" in one_line(e)


@pytest.mark.parametrize("as_zip", [False, True])
def test_corrupt_image_names_the_file(tmp_path, as_zip):
  root, _ = write_folder(tmp_path / "set", labels="none")
  with open(os.path.join(root, "a", "00001.png"), "wb") as f:
    f.write(b"\x89PNG garbage" * 5)
  path = zip_folder(root, tmp_path / "set.zip") if as_zip else root
  source = data.get_source(config(source="images", path=path, resolution=4))
  with pytest.raises(ValueError) as e:
    source.get(np.arange(5))
  message = one_line(e)
  assert message.startswith("Cannot read the image ")
  assert "a/00001.png" in message and "replace or delete the file" in message


def test_dataset_json_errors(tmp_path):
  missing = LABELS + [["c/gone.png", 1]]
  root, _ = write_folder(tmp_path / "missing", labels=missing)
  with pytest.raises(ValueError) as e:
    data.get_source(config(source="images", path=root, resolution=4))
  assert "c/gone.png" in one_line(e) and "not an image file" in one_line(e)
  root, _ = write_folder(tmp_path / "partial", labels=LABELS[1:])
  with pytest.raises(ValueError) as e:
    data.get_source(config(source="images", path=root, resolution=4))
  assert f"no label for {root}/{NAMES[0]}" in one_line(e)
  root, _ = write_folder(tmp_path / "range", labels=LABELS)
  with pytest.raises(ValueError) as e:
    data.get_source(config(source="images", path=root, resolution=4,
                           num_classes=3))
  assert "outside [0, 3)" in one_line(e)
  assert "--config.data.num_classes" in one_line(e)
  vectors = [[name, [0.5, 1.0]] for name in NAMES]
  root, _ = write_folder(tmp_path / "vectors", labels=vectors)
  with pytest.raises(ValueError, match="integer label"):
    data.get_source(config(source="images", path=root, resolution=4))


def test_no_images_and_missing_paths(tmp_path):
  os.makedirs(tmp_path / "empty" / "sub")
  (tmp_path / "empty" / "sub" / "readme.txt").write_text("no images")
  with pytest.raises(ValueError) as e:
    data.get_source(config(source="images", path=str(tmp_path / "empty")))
  assert one_line(e).startswith("No image files (.png, ")
  with pytest.raises(FileNotFoundError, match=r"--config\.data\.path=DIR"):
    data.get_source(config(source="images", path=str(tmp_path / "none")))
  with pytest.raises(FileNotFoundError, match=r"--config\.data\.path=DIR"):
    data.get_source(config(source="images", path=""))
  (tmp_path / "x.zip").write_bytes(b"not a zip")
  with pytest.raises(ValueError, match="neither a folder nor a .zip"):
    data.get_source(config(source="images", path=str(tmp_path / "x.zip")))


# ADM's center crop (guided-diffusion's center_crop_arr).


def test_center_crop_hand_computed():
  """6 wide × 4 high → 2×2: the short side 4 ≥ 2·2, so one box halving to
  3×2 (each pixel the mean of a 2×2 block), the bicubic resize to short
  side 2 keeps 3×2, and the crop keeps columns (3 − 2) // 2 = 0 … 1."""
  blocks = np.array([[0, 40, 80], [120, 160, 200]])  # the 3×2 block means
  image = np.zeros((4, 6), np.uint8)
  for r in range(2):
    for c in range(3):
      # A 2×2 block with mean blocks[r, c]: m − 6, m − 2, m + 2, m + 6.
      m = blocks[r, c] + 10
      image[2 * r:2 * r + 2, 2 * c:2 * c + 2] = [[m - 6, m - 2], [m + 2, m + 6]]
  crop = images.center_crop(np.repeat(image[..., None], 3, -1), 2)
  np.testing.assert_array_equal(crop[..., 0], [[10, 50], [130, 170]])
  gray = images.center_crop(image[..., None], 2)
  assert gray.shape == (2, 2, 1)
  np.testing.assert_array_equal(gray[..., 0], [[10, 50], [130, 170]])


def test_center_crop_shapes_and_identity():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (8, 8, 3), np.uint8)
  np.testing.assert_array_equal(images.center_crop(image, 8), image)
  # Taller than wide: rows are cut; a constant image stays constant.
  flat = np.full((37, 13, 3), 99, np.uint8)
  np.testing.assert_array_equal(images.center_crop(flat, 5),
                                np.full((5, 5, 3), 99, np.uint8))
  assert images.center_crop(image[:3, :5], 16).shape == (16, 16, 3)  # up


# tfds: ADM's crop for LSUN, square sets as stored, and unknown names.


@pytest.mark.parametrize("name, resolution, cropped", [
    ("lsun/bedroom", 16, True), ("lsun/cat", 8, True),
    ("imagenet_resized/64x64", 16, False)])
def test_tfds_crop_by_name(name, resolution, cropped):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):
    source = data.get_source(config(source="tfds", name=name, download=True,
                                    resolution=resolution))
    side = resolution if cropped else 64
    assert source.example_shape == (side, side, 3)
    batch = source.get(np.arange(6))
    raw = tfds.data_source(name, split="train", download=True)
    for i in range(6):
      image = np.asarray(raw[i]["image"])
      want = images.center_crop(image, resolution) if cropped else image
      np.testing.assert_array_equal(
          np.round((batch["x"][i] + 1) * 127.5).astype(np.uint8), want)
    assert source.num_classes == (0 if cropped else 1000)


@pytest.mark.parametrize("name, closest", [
    ("image_folder", "imagenet"), ("cifar_10", "cifar10"),
    ("lsun/bedrom", "lsun/bedroom")])
def test_unknown_tfds_name_is_one_line_with_the_closest(tmp_path, name,
                                                        closest):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(ValueError) as e:
    data.get_source(config(source="tfds", name=name, data_dir=str(tmp_path)))
  message = one_line(e)
  assert message.startswith(f"tfds has no data set {name!r} (the closest: ")
  assert closest in message and "--config.data.name" in message
  assert "Available datasets" not in message


# A training run reads it.


def test_quickstart_trains_on_a_zip_of_images(tmp_path):
  """Two steps of the quickstart's recipe on a labelled .zip of 8×8 RGB
  images, read through the prefetch thread (data.prefetch = 2)."""
  from cm_jax import checkpoint
  from cm_jax.modes import train as train_mode
  from configs import quickstart

  root = tmp_path / "set"
  os.makedirs(root)
  labels = []
  for i in range(12):
    Image.fromarray(pixels(i, size=8)).save(root / f"{i:05d}.png")
    labels.append([f"{i:05d}.png", i % 3])
  (root / "dataset.json").write_text(json.dumps({"labels": labels}))
  path = zip_folder(root, tmp_path / "set.zip")
  c = quickstart.get_config()
  c.data.source, c.data.path, c.data.resolution = "images", path, 8
  c.model.ch, c.model.ch_mult = 8, (1,)
  c.model.num_classes = 3
  c.train.num_steps, c.train.batch_size = 2, 8
  c.train.log_every, c.train.checkpoint_every = 1, 2
  c.train.sample_every, c.train.tensorboard = 0, False
  assert c.data.prefetch == 2
  workdir = str(tmp_path / "run")
  train_mode.train(c, workdir)
  meta = checkpoint.read_meta(checkpoint.make_manager(workdir))
  assert meta["step"] == 2 and meta["example_shape"] == [8, 8, 3]
  assert meta["config"]["data"]["source"] == "images"
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows] == [1, 2]
  assert all(np.isfinite(r["loss"]) for r in rows)

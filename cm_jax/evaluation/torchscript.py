"""Read the tensors and attributes of a TorchScript archive without torch.

A TorchScript ``.pt`` file is a zip: ``<root>/data.pkl`` pickles the module
tree (each module an object whose state dict holds its attributes and
parameters) and each tensor's storage is a raw little-endian file
``<root>/data/<key>``. We unpickle with stand-in classes, so nothing from the
archive is executed, and rebuild tensors as NumPy arrays.

``read_module(path)`` → nested dicts: one per module, holding its parameters
(arrays) and plain attributes (ints, lists), keyed by attribute name.
"""

import pickle
import zipfile

import numpy as np

# torch storage class name → NumPy dtype.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64,
    "HalfStorage": np.float16, "LongStorage": np.int64,
    "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _Module(dict):
  """Stands in for every ``__torch__.*`` class: its state becomes the dict."""

  def __setstate__(self, state):
    self.update(state)


class _StorageType:

  def __init__(self, name):
    self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


def _rebuild_tensor(storage, offset, shape, stride, *unused_args):
  itemsize = storage.dtype.itemsize
  return np.lib.stride_tricks.as_strided(
      storage[offset:], shape=tuple(shape),
      strides=tuple(s * itemsize for s in stride)).copy()


def _ordered_dict(*args):
  return dict(*args)


class _Unpickler(pickle.Unpickler):
  """Resolves only the names a module archive needs; refuses anything else."""

  def __init__(self, file, archive, root):
    super().__init__(file)
    self._archive, self._root = archive, root

  def find_class(self, module, name):
    if module.startswith("__torch__"):
      return _Module
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
      return _rebuild_tensor
    if (module, name) == ("collections", "OrderedDict"):
      return _ordered_dict
    if module == "torch.jit._pickle" and name.startswith("build_"):
      return list  # build_intlist([1, 2]) and friends: typed lists.
    if (module, name) == ("torch.jit._pickle", "restore_type_tag"):
      return lambda value, unused_type: value
    raise pickle.UnpicklingError(
        f"Unexpected global {module}.{name} in a TorchScript archive.")

  def persistent_load(self, pid):
    kind, storage_type, key, unused_location, numel = pid
    if kind != "storage":
      raise pickle.UnpicklingError(f"Unknown persistent id {pid!r}.")
    raw = self._archive.read(f"{self._root}/data/{key}")
    return np.frombuffer(raw, storage_type.dtype, count=numel)


def read_module(path):
  """The module tree of the TorchScript archive at ``path`` as nested dicts."""
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"{path} is not a TorchScript archive (no data.pkl).")
    root = pickles[0][:-len("/data.pkl")]
    with archive.open(pickles[0]) as f:
      return _Unpickler(f, archive, root).load()

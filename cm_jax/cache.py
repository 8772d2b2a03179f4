"""Where cm_jax keeps what it computes once: converted network weights (FID
Inception, LPIPS) and FID reference statistics."""

import functools
import hashlib
import os


def cache_dir():
  """``$CM_JAX_CACHE`` or ``~/.cache/cm_jax``."""
  return os.environ.get("CM_JAX_CACHE",
                        os.path.join(os.path.expanduser("~"), ".cache",
                                     "cm_jax"))


def file_hash(path, algorithm="sha256"):
  """The hex digest of a file (read in 1 MiB chunks): how a downloaded or
  installed weights file is checked before it is read."""
  digest = hashlib.new(algorithm)
  with open(path, "rb") as f:
    for chunk in iter(functools.partial(f.read, 1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()

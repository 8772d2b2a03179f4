"""Where cm_jax keeps what it computes once: converted network weights (FID
Inception, LPIPS) and FID reference statistics."""

import os


def cache_dir():
  """``$CM_JAX_CACHE`` or ``~/.cache/cm_jax``."""
  return os.environ.get("CM_JAX_CACHE",
                        os.path.join(os.path.expanduser("~"), ".cache",
                                     "cm_jax"))

"""Test set-up: 4 fake CPU devices, so sharding code runs as on a pod."""

import os
import tempfile

# Must happen before jax is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Converted Inception weights and FID reference statistics: a fresh cache per
# session, so tests never read a stale one (conversion takes seconds).
os.environ.setdefault("CM_JAX_CACHE", tempfile.mkdtemp(prefix="cm_jax_test_"))
# XLA executables shared by the tests and their subprocesses (keyed by the
# computation, the devices and the jax version, so never stale): many tests
# compile the same tiny models, and each xdist worker would compile them anew.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "cm_jax_test_xla"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

"""Test set-up: 4 fake CPU devices, so sharding code runs as on a pod."""

import os
import tempfile

# Must happen before jax is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Converted Inception weights and FID reference statistics: a fresh cache per
# session, so tests never read a stale one (conversion takes seconds).
os.environ.setdefault("CM_JAX_CACHE", tempfile.mkdtemp(prefix="cm_jax_test_"))

"""cm_jax: consistency models (CD, CT, iCT, LCM) in JAX/Flax."""

from cm_jax import xla_cpu as _xla_cpu

# Before JAX creates its CPU client; a no-op for GPU/TPU compilation.
_xla_cpu.set_cpu_defaults()

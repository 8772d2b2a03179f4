"""cm_jax: consistency models (CD, CT, iCT, LCM) in JAX/Flax."""

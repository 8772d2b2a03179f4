"""``run(config, workdir, mode)``: the one function ``launch.py`` calls."""

from cm_jax import registry
from cm_jax.modes import MODES


def run(config, workdir, mode="train"):
  return registry.lookup(MODES, mode, "mode", "--mode")(config, workdir)

"""``run(config, workdir, mode)``: the one function ``launch.py`` calls."""

from cm_jax import registry
from cm_jax.modes import MODES


def run(config, workdir, mode="train"):
  if not workdir or not workdir.strip():
    raise ValueError("--workdir is empty; pass the run's directory, e.g. "
                     "--workdir=runs/NAME (it is created if missing).")
  return registry.lookup(MODES, mode, "mode", "--mode")(config, workdir)

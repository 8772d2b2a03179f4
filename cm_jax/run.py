"""``run(config, workdir, mode)``: the one function ``launch.py`` calls."""

from cm_jax import edits, ts_search
from cm_jax.train import loop

MODES = {"train": loop.train, "sample": loop.sample, "eval": loop.evaluate,
         "edit": edits.edit, "search": ts_search.search}


def run(config, workdir, mode="train"):
  if mode not in MODES:
    raise ValueError(f"Unknown --mode={mode!r}; valid: {', '.join(MODES)}.")
  return MODES[mode](config, workdir)

"""cm_jax command line: flags → ``cm_jax.run.run(config, workdir, mode)``.

  python launch.py --config=configs/ict_cifar10.py --workdir=runs/ict
  python launch.py --config=configs/toy2d.py --workdir=runs/toy --mode=sample \
      --config.sample.steps=2
"""

import logging as std_logging
import os

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a configs/*.py file (optionally file.py:arg).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, "
                               "metrics and samples.", required=True)
_MODE = flags.DEFINE_enum("mode", "train", ["train", "sample", "eval", "edit",
                                              "search"],
                          "What to do with the config and workdir.")
flags.mark_flags_as_required(["config"])


def _quiet_libraries(record):
  """Keeps Orbax's and JAX's INFO chatter out of the run's log."""
  noisy = ("orbax", "jax/_src", "etils")
  return record.levelno >= std_logging.WARNING or not any(
      n in record.pathname for n in noisy)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_quiet_libraries)
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):  # multi-host: before any JAX op
    import jax  # pylint: disable=g-import-not-at-top
    jax.distributed.initialize()
  from cm_jax.run import run  # pylint: disable=g-import-not-at-top
  run(_CONFIG.value, _WORKDIR.value, _MODE.value)


if __name__ == "__main__":
  app.run(main)

"""cm_jax command line: flags → ``cm_jax.run.run(config, workdir, mode)``.

  python launch.py --config=configs/ict_cifar10.py --workdir=runs/ict
  python launch.py --config=configs/toy2d.py --workdir=runs/toy --mode=sample \
      --config.sample.steps=2
"""

import logging as std_logging
import os

from absl import app, flags, logging
from ml_collections import config_flags

from cm_jax import allocator

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a configs/*.py file (optionally file.py:arg).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, "
                               "metrics and samples.", required=True)
_MODE = flags.DEFINE_enum("mode", "train", ["train", "sample", "eval", "edit",
                                              "search"],
                          "What to do with the config and workdir.")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", ["auto", "on", "off"],
    "Multi-process JAX: auto = jax.distributed.initialize() when the "
    "environment describes a multi-process job (JAX_COORDINATOR_ADDRESS, a "
    "SLURM job of several tasks, a multi-host TPU slice, or the flags below).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (explicit launch).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "Processes in the job (explicit launch).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "This process's index (explicit launch).")
flags.mark_flags_as_required(["config"])


def _multi_process_environment():
  env = os.environ
  if env.get("JAX_COORDINATOR_ADDRESS"):
    return True
  if int(env.get("SLURM_NTASKS", "1")) > 1:
    return True
  return "," in env.get("TPU_WORKER_HOSTNAMES", "")  # a multi-host TPU slice


def _initialize_distributed():
  """jax.distributed.initialize() before any other JAX call, if asked for."""
  explicit = _COORDINATOR.value is not None
  if _DISTRIBUTED.value == "off" or (_DISTRIBUTED.value == "auto" and not (
      explicit or _multi_process_environment())):
    return
  import jax  # pylint: disable=g-import-not-at-top
  # CPU devices of different processes talk through gloo (the default CPU
  # client has no cross-process collectives); GPUs and TPUs ignore this.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                             _PROCESS_ID.value)
  logging.info("Process %d of %d; %d local of %d devices.",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())


def _quiet_libraries(record):
  """Keeps Orbax's and JAX's INFO chatter out of the run's log."""
  noisy = ("orbax", "jax/_src", "etils")
  return record.levelno >= std_logging.WARNING or not any(
      n in record.pathname for n in noisy)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  allocator.reexec_with_tcmalloc()  # CPU steps run faster; see its doc
  logging.get_absl_handler().addFilter(_quiet_libraries)
  _initialize_distributed()
  from cm_jax.run import run  # pylint: disable=g-import-not-at-top
  run(_CONFIG.value, _WORKDIR.value, _MODE.value)


if __name__ == "__main__":
  app.run(main)

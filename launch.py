r"""cm_jax command line: flags → ``cm_jax.run.run(config, workdir, mode)``.

  python launch.py --config=configs/ict_cifar10.py --workdir=runs/ict
  python launch.py --config=configs/toy2d.py --workdir=runs/toy --mode=sample \
      --config.sample.steps=2

Any field of the config is set with --config.<group>.<field>=value. Every
field is declared, with a comment saying what it does, in configs/base.py
(the recipes in configs/ change some of them and cite their sources);
README.md lists the recipes; docs/ holds the manual (modes, methods, runs).

A config that fails to load (e.g. an unknown ``file.py:arg``) or an override
of a field the config does not declare stops with one line, exit status 2;
so does any error cm_jax raises for the user to fix (a bad value, a missing
file, a workdir another run holds, a checkpoint that cannot be written).
``--verbose`` adds the traceback; an error raised anywhere else (a bug) has
it always.
"""

import difflib
import logging as std_logging
import os
import sys
import traceback

import ml_collections
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
_VERBOSE = flags.DEFINE_bool(
    "verbose", False, "Print the traceback of every error (by default an "
    "error you can fix is one line).")
flags.mark_flags_as_required(["config"])

# Errors cm_jax (or a config file) raises on purpose, with a one-line message
# that says what to fix; the same types raised inside a library are bugs.
USER_ERRORS = (ValueError, OSError, RuntimeError, FloatingPointError,
               ImportError)
OWN_CODE = tuple(os.path.join(os.path.dirname(os.path.abspath(__file__)), d)
                 for d in ("cm_jax" + os.sep, "configs" + os.sep, "launch.py"))


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


def _config_argv(argv):
  """(the --config value, the overridden field paths) of ``argv``."""
  path, fields = None, []
  for i, arg in enumerate(argv):
    name, eq, value = arg.lstrip("-").partition("=")
    if name == "config":
      path = value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    elif name.startswith(("config.", "noconfig.")):
      fields.append(name.split(".", 1)[1])
  return path, fields


def _field_names(config, prefix=""):
  """Dotted names of ``config``'s leaf fields."""
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _field_names(value, f"{prefix}{key}.")
    else:
      yield prefix + key


def _has_field(config, field):
  for part in field.split("."):
    if not isinstance(config, ml_collections.ConfigDict) or part not in config:
      return False
    config = config[part]
  return True


def _unknown_field_line(argv):
  """One line naming the first override of an undeclared field and the
  nearest declared ones; None if every override names a field."""
  path, fields = _config_argv(argv)
  config = flags.FLAGS["config"].parser.parse(path)  # the config file's
  if not isinstance(config, ml_collections.ConfigDict):
    return _not_loaded_line(path)
  names = list(_field_names(config))
  for field in fields:
    if _has_field(config, field):
      continue
    near = difflib.get_close_matches(field, names, n=3, cutoff=0.75)
    if not near:  # the right name in another group: match the last part
      leaf = field.rsplit(".", 1)[-1]
      leaves = difflib.get_close_matches(
          leaf, [n.rsplit(".", 1)[-1] for n in names], n=3, cutoff=0.75)
      near = [n for n in names if n.rsplit(".", 1)[-1] in leaves][:3]
    hint = (f"did you mean {' or '.join(near)}?" if near else
            "configs/base.py declares every field.")
    return f"{path} has no field {field!r}; {hint}"
  return None


def _config_load_line(error, argv):
  """The config file's own error (e.g. an unknown file.py:arg) if ``error``
  came from loading it, else None."""
  chain = [error]
  while chain[-1].__cause__ or chain[-1].__context__:
    chain.append(chain[-1].__cause__ or chain[-1].__context__)
  for outer, inner in zip(chain, chain[1:]):
    if str(outer).startswith("Error whilst parsing config file"):
      return f"{_config_argv(argv)[0]}: {inner}"
  return None


def _not_loaded_line(path):
  return (f"cannot load the config file {path!r}; pass "
          "--config=configs/NAME.py (or NAME.py:arg).")


def _parse_flags(argv):
  """absl's flag parsing, except that a config that fails to load or an
  override of an undeclared field exits with one line and status 2."""
  try:
    remaining = flags.FLAGS(argv)
  except (AttributeError, KeyError, OSError):  # ConfigDict: no such field
    line = _unknown_field_line(argv)
    if line is None:
      raise
    _exit(line)
  except flags.Error as e:
    line = _config_load_line(e, argv)
    if line is None:  # another flag: absl's own message and status
      sys.stderr.write(f"FATAL Flags parsing error: {e}\n")
      sys.exit(1)
    _exit(line)
  if not isinstance(_CONFIG.value, ml_collections.ConfigDict):
    _exit(_not_loaded_line(_config_argv(argv)[0]))
  return remaining


def _exit(line):
  sys.stderr.write(f"launch.py: {line}\n")
  sys.exit(2)


def _quiet_libraries(record):
  """Keeps Orbax's and JAX's INFO chatter out of the run's log, and (unless
  --verbose) Orbax's errors: a failed save logs one, with a traceback, from
  each of its threads, and the same error then stops the run in one line
  (or with its traceback, if it is not one cm_jax knows)."""
  noisy = ("orbax", "jax/_src", "etils")
  if not any(n in record.pathname for n in noisy):
    return True
  if "orbax" in record.pathname and record.levelno >= std_logging.ERROR:
    return _VERBOSE.value
  return record.levelno >= std_logging.WARNING


def is_user_error(error):
  """Whether ``error`` is one cm_jax raised for the user: a USER_ERRORS type
  raised in cm_jax's, a config's or this file's own code."""
  frames = traceback.extract_tb(error.__traceback__)
  return (isinstance(error, USER_ERRORS) and bool(frames)
          and os.path.abspath(frames[-1].filename).startswith(OWN_CODE))


def _leave(code):
  """Exits now: Orbax's background threads, stuck after a failed save,
  would keep a normal exit waiting for ever."""
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


def _quiet_closed_loops(hook):
  """sys.unraisablehook without TensorStore's "Event loop is closed"
  reports: after a failed save, the writes still in flight finish into the
  event loops Orbax already closed, each printing a traceback (hundreds
  when a disk is full)."""
  def unraisablehook(unraisable):
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and not _VERBOSE.value
            and str(error) == "Event loop is closed"):
      hook(unraisable)
  return unraisablehook


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  allocator.reexec_with_tcmalloc()  # CPU steps run faster; see its doc
  logging.get_absl_handler().addFilter(_quiet_libraries)
  sys.unraisablehook = _quiet_closed_loops(sys.unraisablehook)
  _initialize_distributed()
  from cm_jax.run import run  # pylint: disable=g-import-not-at-top
  try:
    run(_CONFIG.value, _WORKDIR.value, _MODE.value)
  except Exception as e:  # pylint: disable=broad-except
    user_error = is_user_error(e)
    if _VERBOSE.value or not user_error:
      traceback.print_exc()
    if user_error:
      message = " ".join(str(e).split()) or type(e).__name__
      sys.stderr.write(f"launch.py: {message}\n")
    _leave(2 if user_error else 1)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)

"""Orbax checkpoints of a run: DIR/checkpoints/<step>/{online,target,ema,opt_state,meta}.

``meta`` (JSON) holds the step, the data position, the seed and the config, so
a workdir knows what made it. Arrays restore onto whatever mesh the abstract
state carries, so a run saved on 4 devices resumes on 1 (or 256).

Crash safety is Orbax's: a save is written under
``<step>.orbax-checkpoint-tmp-*`` and renamed to ``<step>`` only once complete
(atomic on a POSIX file system; object stores use a commit marker), and
unfinished directories are never listed as steps. So a process killed in the
middle of a save (kill -9) leaves a directory that is never restored; on
top of that ``restore_latest`` falls back to the previous step when the
latest one cannot be read (a damaged disk or copy), and says so.

Integrity: ``meta`` holds two 32-bit checksums of every array's bits
(``checksums``), compared after each restore, so a flipped bit fails the
restore like a truncated file. A training run moves a checkpoint that fails
aside (``<step>.corrupt``) once an older one has restored: Orbax neither
saves at or below its latest listed step nor rotates a bad one out first.

A save that fails for the file system (no permission, no space) raises
``CheckpointWriteError``: one line naming the path and the OS error.
"""

import contextlib
import errno
import json
import os
import re

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from cm_jax import nn, processes, sharding

ARRAY_ITEMS = ("online", "target", "ema", "opt_state")
ITEMS = ARRAY_ITEMS + ("meta",)

# Config groups whose change makes an old checkpoint unusable, and the fields
# in them that do not change the parameters.
ARCHITECTURE_GROUPS = ("model",)
NOT_ARCHITECTURE = ("dropout", "dtype")


def _implied(group, config):
  """What a config lacking a field of ``group`` implies: the network's own
  default (configs written before base.py declared every field, or before
  the field existed, set only some); trigflow.network = "trigflow"."""
  if group == "trigflow":  # runs before trigflow.network: sCM's reading
    return {"network": "trigflow"}
  if group != "model" or config.get("name") not in nn.MODELS:
    return {}
  return nn.model_defaults(config["name"])


# Suffix of a checkpoint directory moved aside after it failed to restore.
CORRUPT = ".corrupt"
# Method names that changed: {old: new}. Runs saved under the old name read
# as the new one (``read_meta``); a config that sets an old name is refused
# with the new one (``cm_jax.methods.lookup``).
RENAMED_METHODS = {"edm": "diffusion"}


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (permissions, a full disk, ...)."""


class CorruptCheckpointError(ValueError):
  """A restored array does not match the checksum saved with it."""


def checkpoint_dir(workdir):
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def make_manager(workdir, max_to_keep=3):
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                               item_names=ITEMS)


def save(manager, state, meta):
  """Saves (asynchronously) the arrays of ``state`` and the JSON ``meta``
  with the arrays' checksums.

  Raises ``CheckpointWriteError`` if an earlier save failed to write (its
  error surfaces here) or this one cannot start; RuntimeError if Orbax
  skips the save (it never saves at or below the latest step it lists).
  """
  step = int(meta["step"])
  arrays = {name: getattr(state, name) for name in ARRAY_ITEMS}
  meta = {**meta, "checksums": checksums(arrays)}
  items = {name: ocp.args.StandardSave(tree) for name, tree in arrays.items()}
  with _write_errors(manager):
    saved = manager.save(step, args=ocp.args.Composite(
        meta=ocp.args.JsonSave(meta), **items))
  if not saved:
    raise RuntimeError(
        f"Orbax skipped the checkpoint of step {step}: {manager.directory} "
        f"already lists step {manager.latest_step()}.")


def wait(manager):
  """Waits for the save in flight; ``CheckpointWriteError`` if it failed."""
  with _write_errors(manager):
    manager.wait_until_finished()


def check_saves(manager):
  """Raises ``CheckpointWriteError`` as soon as a background save failed,
  without waiting for one in flight. (Orbax's ``check_for_errors`` misses
  the failure: its finalize thread takes the error, which only
  ``wait_until_finished`` raises; that returns at once when no save is in
  progress.)"""
  if not manager.is_saving_in_progress():
    wait(manager)


@contextlib.contextmanager
def _write_errors(manager):
  """Turns an I/O error of a save into a ``CheckpointWriteError``: one line
  with the path, the OS error and what to do."""
  try:
    yield
  except CheckpointWriteError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    failure = io_failure(e)
    if failure is None:
      raise
    code, path = failure
    todo = ("free some space (the checkpoints written so far are kept)"
            if code in (errno.ENOSPC, errno.EDQUOT) else "make it writable")
    error = CheckpointWriteError(
        f"Cannot write a checkpoint to {path or manager.directory}: "
        f"{os.strerror(code)} [errno {code}]; {todo} and rerun the same "
        "command to resume.")
    error.errno = code
    raise error from e


# TensorStore (Orbax's array writer) reports an OS error as a ValueError
# whose text ends in [os_error_code='28'], the files it failed on quoted
# before the bracketed details.
_TENSORSTORE_ERRNO = re.compile(r"os_error_code='(\d+)'")
_QUOTED_PATH = re.compile(r'"(/[^"]+)"')


def io_failure(error):
  """(errno, path or None) of the OS error behind ``error`` (itself or its
  cause chain: a Python OSError or TensorStore's text), else None."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno:
      return error.errno, error.filename
    code = _TENSORSTORE_ERRNO.search(str(error))
    if code:  # the file named last before the bracketed details
      paths = _QUOTED_PATH.findall(str(error).split(" [")[0])
      return int(code.group(1)), (paths[-1] if paths else None)
    error = error.__cause__ or error.__context__
  return None


def _words(x):
  """The bits of ``x``, one uint32 word per element (two for 64-bit)."""
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  size = x.dtype.itemsize
  if size >= 4:
    return jax.lax.bitcast_convert_type(x, jnp.uint32).ravel()
  small = {1: jnp.uint8, 2: jnp.uint16}[size]
  return jax.lax.bitcast_convert_type(x, small).astype(jnp.uint32).ravel()


@jax.jit
def _sums(tree):
  """Per leaf, two sums mod 2³² of its words: Σ wᵢ (changed by any single
  flipped bit) and Σ (2i + 1)·wᵢ (also by moved words). Integer sums do not
  depend on the order, so neither on the sharding."""
  def sums(x):
    w = _words(x)
    odd = 2 * jnp.arange(w.size, dtype=jnp.uint32) + 1
    return jnp.stack([jnp.sum(w), jnp.sum(w * odd)])
  return jax.tree.map(sums, tree)


def checksums(arrays):
  """{item: {array path: 16 hex digits}} of a dict item → tree of arrays."""
  sums = jax.device_get(_sums(arrays))
  return {name: {jax.tree_util.keystr(path): f"{int(s[0]):08x}{int(s[1]):08x}"
                 for path, s in jax.tree.leaves_with_path(tree)}
          for name, tree in sums.items()}


def verify(arrays, saved, step):
  """Raises ``CorruptCheckpointError`` naming the first array of ``arrays``
  whose checksum differs from ``saved`` (a meta's ``checksums``)."""
  now = checksums(arrays)
  for name, sums in now.items():
    for path, value in sums.items():
      expected = saved.get(name, {}).get(path)
      if expected is not None and expected != value:
        raise CorruptCheckpointError(
            f"step {step}: array {name}{path} does not match its checksum "
            f"({value} read, {expected} saved): damaged on disk")


def _abstract(tree):
  """ShapeDtypeStructs that carry each leaf's sharding (the restore target)."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def incomplete_checkpoints(manager):
  """Names of the save directories a killed process left unfinished."""
  directory = str(manager.directory)
  if not os.path.isdir(directory):
    return []
  return sorted(name for name in os.listdir(directory)
                if ".orbax-checkpoint-tmp" in name)


def restore_latest(manager, abstract, check=lambda meta: None,
                   move_aside=False):
  """(restored items, meta) of the latest readable checkpoint; (None, None)
  when there is none.

  ``check(meta)`` may refuse a checkpoint (it raises; nothing falls back from
  that). A checkpoint whose meta or arrays cannot be read, or whose arrays
  fail their checksums, is skipped with a warning and the one before it is
  tried. With ``move_aside`` (a training run, which will save again), the
  skipped ones are renamed ``<step>.corrupt`` once an older one restored
  (proof that they, not the restore target, are at fault).
  """
  steps = sorted(manager.all_steps(), reverse=True)
  error, unreadable = None, []
  incomplete = incomplete_checkpoints(manager)
  if incomplete:
    logging.warning("Ignoring unfinished checkpoint save(s) %s in %s (a run "
                    "was killed, or failed, while saving); falling back to "
                    "the last complete checkpoint, %s.", ", ".join(incomplete),
                    manager.directory,
                    f"step {steps[0]}" if steps else "none: starting afresh")
  for i, step in enumerate(steps):
    try:
      meta = read_meta(manager, step)
    except Exception as e:  # pylint: disable=broad-except
      error = _warn_unreadable(manager, step, steps[i + 1:], e)
      unreadable.append(step)
      continue
    check(meta)
    try:
      restored = restore(manager, abstract, step, meta)
    except Exception as e:  # pylint: disable=broad-except
      error = _warn_unreadable(manager, step, steps[i + 1:], e)
      unreadable.append(step)
      continue
    if move_aside and unreadable:
      _move_aside(manager, unreadable)
    return restored, meta
  if steps:
    raise RuntimeError(
        f"No checkpoint in {manager.directory} can be read (steps {steps}; "
        f"last error {error}); if the config changed (e.g. optim.name), use "
        "the original one, else a fresh --workdir.")
  return None, None


def _warn_unreadable(manager, step, older, error):
  """Logs the fall-back; returns the error in one short line."""
  text = str(error).splitlines()[0][:200] if str(error) else ""
  text = f"{type(error).__name__}: {text}"
  then = (f"falling back to step {older[0]}" if older
          else "no older checkpoint is left")
  logging.warning("Checkpoint step %d in %s cannot be read (%s); %s.", step,
                  manager.directory, text, then)
  return text


def _move_aside(manager, steps):
  """Renames the directories of ``steps`` to ``<step>.corrupt`` (kept for
  inspection; Orbax no longer lists them) and reloads the manager."""
  if jax.process_index() == 0:
    for step in steps:
      source = os.path.join(str(manager.directory), str(step))
      target, n = source + CORRUPT, 1
      while os.path.exists(target):
        n += 1
        target = f"{source}{CORRUPT}-{n}"
      os.rename(source, target)
      logging.warning("Moved the unreadable checkpoint of step %d aside to "
                      "%s; the run saves that step again when it gets there.",
                      step, target)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices("cm_jax checkpoint move aside")
  manager.reload()


def read_run(workdir, flag, methods, train_hint):
  """(manager, meta) of the latest finished checkpoint of another run that
  this one builds on (a teacher, an autoencoder), whose method must be one of
  ``methods``; one-line errors name the config ``flag`` to fix."""
  if not os.path.isdir(checkpoint_dir(workdir)):
    raise FileNotFoundError(
        f"No checkpoints in {checkpoint_dir(workdir)}; train {train_hint} "
        f"first or fix --config.{flag}.")
  manager = make_manager(workdir)
  meta = read_meta(manager)
  if meta is None:
    raise FileNotFoundError(f"{workdir} has no finished checkpoint yet.")
  method = meta["config"].get("method")
  if method not in methods:
    raise ValueError(f"{flag}={workdir} holds a method={method!r} run; it "
                     f"must be a run of method={' or '.join(methods)}.")
  return manager, meta


def read_meta(manager, step=None):
  """The JSON meta of the latest (or given) step, or None if there is none."""
  step = manager.latest_step() if step is None else step
  if step is None:
    return None
  meta = manager.restore(step, args=ocp.args.Composite(
      meta=ocp.args.JsonRestore()))["meta"]
  saved = meta.get("config", {})
  if saved.get("method") in RENAMED_METHODS:  # saved under an old name
    saved["method"] = RENAMED_METHODS[saved["method"]]
  return meta


def restore(manager, abstract, step, meta=None):
  """Restores the items of ``abstract`` (a dict item → tree of arrays or
  ShapeDtypeStructs with shardings) at ``step``, onto those shardings, and
  checks them against the checksums in ``meta`` (older checkpoints have
  none)."""
  args = {name: ocp.args.StandardRestore(_abstract(tree))
          for name, tree in abstract.items()}
  restored = dict(manager.restore(step, args=ocp.args.Composite(**args)))
  if meta is not None and "checksums" in meta:
    verify(restored, meta["checksums"], step)
  return restored


def config_differences(saved_config, config, group):
  """["group.field: old there, new now", …] between a saved and a live config."""
  old = dict(saved_config.get(group, {}))
  new = json.loads(config[group].to_json())
  old = {**_implied(group, old), **old}
  new = {**_implied(group, new), **new}
  keys = sorted((set(old) | set(new)) - set(NOT_ARCHITECTURE))
  return [f"{group}.{k}: {old.get(k)!r} there, {new.get(k)!r} now"
          for k in keys if old.get(k) != new.get(k)]


def check_compatible(saved_config, config, workdir, saved_shape=None,
                     example_shape=None):
  """Fails in one line if the workdir's checkpoints came from another method,
  network, noise process or data shape (``saved_shape`` is None for older
  checkpoints)."""
  if saved_config.get("method", config.method) != config.method:
    raise ValueError(f"{workdir} holds checkpoints of method="
                     f"{saved_config['method']!r}, not {config.method!r}; use "
                     "a fresh --workdir or the original config.")
  if saved_shape is not None and tuple(saved_shape) != tuple(example_shape):
    raise ValueError(f"{workdir} holds checkpoints trained on examples of "
                     f"shape {tuple(saved_shape)}, but the data now have "
                     f"{tuple(example_shape)}; use a fresh --workdir or the "
                     "original data.")
  for group in ARCHITECTURE_GROUPS:
    diff = config_differences(saved_config, config, group)
    if diff:
      raise ValueError(f"{workdir} holds checkpoints of a different {group} "
                       f"({', '.join(diff)}); use a fresh --workdir or the "
                       "original config.")
  diff = process_differences(saved_config, config)
  if diff:
    raise ValueError(f"{workdir} holds checkpoints trained on another noise "
                     f"process ({', '.join(diff)}), under which its network "
                     "means something else; use the original values or a "
                     "fresh --workdir.")


def process_differences(saved_config, config):
  """["group.field: old there, new now", …] of the noise process a run was
  trained on (``processes.CONFIG_GROUPS``: σ_d, σ_min, σ_max, ρ, ...)
  against ``config``'s. Groups an older checkpoint lacks are not compared."""
  saved = saved_config.get("process", "ve")
  if saved != config.process:
    return [f"process: {saved!r} there, {config.process!r} now"]
  return [d for group in processes.CONFIG_GROUPS[saved]
          if group in saved_config
          for d in config_differences(saved_config, config, group)]


def restore_network(manager, meta, mesh, example_shape):
  """(model, EMA params replicated on ``mesh``) of the checkpoint ``meta``
  describes (another run's: a teacher, an autoencoder); the network is
  rebuilt from the config stored in it."""
  model = nn.get_model(ml_collections.ConfigDict(meta["config"]["model"]))
  init = lambda: model.init(jax.random.key(0),
                            *nn.dummy_inputs(model, example_shape))
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                     sharding=sharding.replicated(mesh)),
      jax.eval_shape(init)["params"])
  params = restore(manager, {"ema": abstract}, meta["step"], meta)["ema"]
  return model, params

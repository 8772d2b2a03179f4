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
"""

import json
import os

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from cm_jax import nn, sharding

ARRAY_ITEMS = ("online", "target", "ema", "opt_state")
ITEMS = ARRAY_ITEMS + ("meta",)

# Config groups whose change makes an old checkpoint unusable, and the fields
# in them that do not change the parameters.
ARCHITECTURE_GROUPS = ("model",)
NOT_ARCHITECTURE = ("dropout", "dtype")


def _implied(group, config):
  """What a config lacking a field of ``group`` implies: the network's own
  default (configs written before base.py declared every field, or before
  the field existed, set only some)."""
  if group != "model" or config.get("name") not in nn.MODELS:
    return {}
  return nn.model_defaults(config["name"])


def checkpoint_dir(workdir):
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def make_manager(workdir, max_to_keep=3):
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                               item_names=ITEMS)


def save(manager, state, meta):
  """Saves (asynchronously) the arrays of ``state`` and the JSON ``meta``."""
  step = int(meta["step"])
  items = {name: ocp.args.StandardSave(getattr(state, name))
           for name in ARRAY_ITEMS}
  manager.save(step, args=ocp.args.Composite(meta=ocp.args.JsonSave(meta),
                                             **items))


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


def restore_latest(manager, abstract, check=lambda meta: None):
  """(restored items, meta) of the latest readable checkpoint; (None, None)
  when there is none.

  ``check(meta)`` may refuse a checkpoint (it raises; nothing falls back from
  that). A checkpoint whose meta or arrays cannot be read is skipped with a
  warning and the one before it is tried.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  error = None
  incomplete = incomplete_checkpoints(manager)
  if incomplete:
    logging.warning("Ignoring unfinished checkpoint save(s) %s in %s (a run "
                    "was killed while saving); falling back to the last "
                    "complete checkpoint, %s.", ", ".join(incomplete),
                    manager.directory,
                    f"step {steps[0]}" if steps else "none: starting afresh")
  for i, step in enumerate(steps):
    try:
      meta = read_meta(manager, step)
    except Exception as e:  # pylint: disable=broad-except
      error = _warn_unreadable(manager, step, steps[i + 1:], e)
      continue
    check(meta)
    try:
      return restore(manager, abstract, step), meta
    except Exception as e:  # pylint: disable=broad-except
      error = _warn_unreadable(manager, step, steps[i + 1:], e)
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
  return manager.restore(step, args=ocp.args.Composite(
      meta=ocp.args.JsonRestore()))["meta"]


def restore(manager, abstract, step):
  """Restores the items of ``abstract`` (a dict item → tree of arrays or
  ShapeDtypeStructs with shardings) at ``step``, onto those shardings."""
  args = {name: ocp.args.StandardRestore(_abstract(tree))
          for name, tree in abstract.items()}
  return dict(manager.restore(step, args=ocp.args.Composite(**args)))


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
  network or data shape (``saved_shape`` is None for older checkpoints)."""
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
  params = restore(manager, {"ema": abstract}, meta["step"])["ema"]
  return model, params

"""Orbax checkpoints of a run: DIR/checkpoints/<step>/{online,target,ema,opt_state,meta}.

``meta`` (JSON) holds the step, the data position, the seed and the config, so
a workdir knows what made it. Arrays restore onto whatever mesh the abstract
state carries, so a run saved on 4 devices resumes on 1 (or 256).
"""

import json
import os

import jax
import orbax.checkpoint as ocp

ARRAY_ITEMS = ("online", "target", "ema", "opt_state")
ITEMS = ARRAY_ITEMS + ("meta",)

# Config groups whose change makes an old checkpoint unusable, and the fields
# in them that do not change the parameters.
ARCHITECTURE_GROUPS = ("model",)
NOT_ARCHITECTURE = ("dropout", "dtype")


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
  old, new = saved_config.get(group, {}), json.loads(config[group].to_json())
  keys = sorted((set(old) | set(new)) - set(NOT_ARCHITECTURE))
  return [f"{group}.{k}: {old.get(k)!r} there, {new.get(k)!r} now"
          for k in keys if old.get(k) != new.get(k)]


def check_compatible(saved_config, config, workdir):
  """Fails in one line if the workdir's checkpoints came from another network."""
  for group in ARCHITECTURE_GROUPS:
    diff = config_differences(saved_config, config, group)
    if diff:
      raise ValueError(f"{workdir} holds checkpoints of a different {group} "
                       f"({', '.join(diff)}); use a fresh --workdir or the "
                       "original config.")

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

# Config groups whose change makes an old checkpoint unusable.
ARCHITECTURE_GROUPS = ("model",)


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


def restore(manager, abstract_state, step, items=ARRAY_ITEMS):
  """Restores ``items`` of ``step`` onto ``abstract_state``'s shardings.

  Returns a dict item → tree.
  """
  args = {name: ocp.args.StandardRestore(_abstract(getattr(abstract_state, name)))
          for name in items}
  restored = manager.restore(step, args=ocp.args.Composite(**args))
  return {name: restored[name] for name in items}


def check_compatible(saved_config, config, workdir):
  """Fails in one line if the workdir's checkpoints came from another network."""
  for group in ARCHITECTURE_GROUPS:
    old, new = saved_config.get(group, {}), json.loads(config[group].to_json())
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
      details = ", ".join(f"{group}.{k}: {old.get(k)!r} there, {new.get(k)!r} now"
                          for k in diff)
      raise ValueError(f"{workdir} holds checkpoints of a different {group} "
                       f"({details}); use a fresh --workdir or the original config.")

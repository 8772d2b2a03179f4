"""One data-parallel mesh over all devices (of all hosts).

The batch is sharded on the ``data`` axis and parameters are replicated; jit
places computation from these shardings (no pmap). Hosts feed only their
local slice of each global batch (see ``cm_jax.data.DataIterator``).
"""

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None):
  """A 1-D mesh named ``data`` over ``devices`` (default: every device)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), (AxisType.Auto,),
                       devices=devices)


def replicated(mesh):
  return NamedSharding(mesh, P())


def batch_sharding(mesh):
  """Leading (batch) axis split over ``data``."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch_size, mesh):
  n = mesh.devices.size
  if global_batch_size % n:
    raise ValueError(
        f"train.batch_size={global_batch_size} must be divisible by the number "
        f"of devices ({n}); set --config.train.batch_size to a multiple of {n}.")


def to_global(local_batch, mesh):
  """Assembles each host's numpy batch into global arrays sharded on ``data``."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      local_batch)

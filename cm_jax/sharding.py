"""One mesh over all devices (of all hosts), with one axis, ``data``.

The batch is always sharded on ``data``. Parameters (and the optimizer state,
target and EMA) follow ``train.param_sharding``:
- ``replicated``: plain data parallelism, a full copy per device;
- ``fsdp``: each large array split over ``data`` along its largest divisible
  axis (ZeRO-3 / FSDP), so per-device memory for the state falls by the
  device count; XLA inserts the all-gathers and reduce-scatters.
jit places computation from these shardings (no pmap). Hosts feed only their
local slice of each global batch (see ``cm_jax.data.DataIterator``).
"""

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from cm_jax import registry

DATA_AXIS = "data"


def make_mesh(devices=None):
  """A 1-D mesh named ``data`` over ``devices`` (default: every device)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), (AxisType.Auto,),
                       devices=devices)


def replicated(mesh):
  return NamedSharding(mesh, P())


# Arrays smaller than this stay replicated under FSDP (biases, norms: the
# gathers would cost more than the memory saved).
FSDP_MIN_SIZE = 2 ** 14


def fsdp(mesh, shape):
  """The FSDP sharding of an array of ``shape``: its largest axis divisible
  by the device count split over ``data``; replicated when small."""
  n = mesh.devices.size
  if int(np.prod(shape, dtype=np.int64)) < FSDP_MIN_SIZE or n == 1:
    return replicated(mesh)
  candidates = [i for i in np.argsort(shape)[::-1] if shape[i] % n == 0]
  if not candidates:
    return replicated(mesh)
  spec = [None] * len(shape)
  spec[candidates[0]] = DATA_AXIS
  return NamedSharding(mesh, P(*spec))


PARAM_SHARDINGS = {
    "replicated": lambda mesh, shape: replicated(mesh),
    "fsdp": fsdp,
}


def param_sharding_rule(name):
  return registry.lookup(PARAM_SHARDINGS, name, "train.param_sharding")


def tree_shardings(tree, mesh, rule="replicated"):
  """Shardings for every leaf (arrays or ShapeDtypeStructs) of ``tree``."""
  rule = param_sharding_rule(rule)
  return jax.tree.map(lambda x: rule(mesh, tuple(x.shape)), tree)


def batch_sharding(mesh):
  """Leading (batch) axis split over ``data``."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch_size, mesh):
  n = mesh.devices.size
  if global_batch_size % n:
    raise ValueError(
        f"train.batch_size={global_batch_size} must be divisible by the number "
        f"of devices ({n}); set --config.train.batch_size to a multiple of {n}.")


def to_global(local_batch, mesh, stacked=False):
  """Assembles each host's numpy batch into global arrays sharded on ``data``
  (``stacked``: batches stacked on a leading steps axis, sharded after it)."""
  spec = P(None, DATA_AXIS) if stacked else P(DATA_AXIS)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(
          NamedSharding(mesh, spec), np.asarray(x)), local_batch)

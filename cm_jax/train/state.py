"""The one state pytree of a run."""

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp

from cm_jax import nn, sharding


@flax.struct.dataclass
class TrainState:
  """Everything a step changes. Hyper-parameters live in the config.

  Attributes:
    step: k, the number of updates done (int32 scalar).
    online: θ, the parameters being trained.
    target: θ⁻, the target network (θ⁻ ← μ(k)θ⁻ + (1 − μ(k))θ; iCT: μ = 0).
    ema: the slow EMA of θ used for sampling and evaluation.
    opt_state: the optimizer's state.
    rng: the run's typed base key; step k uses fold_in(rng, k).
    skipped: updates skipped for a non-finite loss, gradient or parameter
      (``train.nonfinite = "skip"``; int32 scalar).
  """

  step: jax.Array
  online: Any
  target: Any
  ema: Any
  opt_state: Any
  rng: jax.Array
  skipped: jax.Array


def init_state(model, tx, example_shape, seed):
  """A fresh state: θ = θ⁻ = EMA at initialisation (CM Alg. 2–3: θ⁻ ← θ)."""
  init_key, rng = jax.random.split(jax.random.key(seed))
  params = model.init({"params": init_key},
                      *nn.dummy_inputs(model, example_shape))["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), online=params, target=params,
                    ema=params, opt_state=tx.init(params), rng=rng,
                    skipped=jnp.zeros((), jnp.int32))


# The parameter-shaped parts of the state: sharded by ``train.param_sharding``.
PARAM_FIELDS = ("online", "target", "ema", "opt_state")


def state_shardings(abstract_state, mesh, rule):
  """Shardings of a ``TrainState`` (of arrays or ShapeDtypeStructs): the
  parameter-shaped fields by ``rule`` (``sharding.PARAM_SHARDINGS``), the
  scalars (step, key, counters) replicated."""
  scalars = {f.name: sharding.replicated(mesh)
             for f in dataclasses.fields(abstract_state)
             if f.name not in PARAM_FIELDS}
  params = sharding.tree_shardings(
      {name: getattr(abstract_state, name) for name in PARAM_FIELDS}, mesh,
      rule)
  return abstract_state.replace(**scalars, **params)

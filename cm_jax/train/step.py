"""The jitted train step: one update of θ, then θ⁻ and the EMA (inside jit)."""

import functools

import jax
import jax.numpy as jnp
import optax

from cm_jax import schedules
from cm_jax.nn import Condition, network
from cm_jax.nn.group_norm import fused_backward


def ema_update(average, params, decay):
  """decay·average + (1 − decay)·params, leaf by leaf (stop-gradient by use)."""
  return jax.tree.map(lambda a, p: decay * a + (1.0 - decay) * p, average, params)


def _labels(model, batch):
  return batch.get("y") if getattr(model, "num_classes", 0) else None


def _context(model, batch):
  """The batch's "context" [B, D] for a model with context_dim > 0."""
  if not getattr(model, "context_dim", 0):
    return None
  if "context" not in batch:
    raise ValueError(f"model.context_dim={model.context_dim} needs batches "
                     "with a \"context\" [B, D]; use data with contexts or "
                     "set --config.model.context_dim=0.")
  return batch["context"]


def drop_condition(key, p, labels, context, null_label):
  """Classifier-free guidance training (Ho & Salimans 2022; LCM's teacher):
  one Bernoulli(p) draw per example drops its whole condition, the label to
  the null class and the context to the zero (null) vector. Either may be
  None. Returns (labels, context)."""
  batch = (labels if labels is not None else context).shape[0]
  drop = jax.random.bernoulli(key, p, (batch,))
  if labels is not None:
    labels = jnp.where(drop, null_label, labels)
  if context is not None:
    context = jnp.where(drop[:, None], jnp.zeros_like(context), context)
  return labels, context


def drop_labels(key, labels, p, null_label):
  """``drop_condition`` for labels alone: each label becomes the null class
  with probability p."""
  return drop_condition(key, p, labels, None, null_label)[0]


def _teacher(teacher_model, teacher_params, batch, guided, dropout_key=None):
  """φ conditioned on the batch's labels and context; with ``guided`` the
  pair (φ(·, c), φ(·, ∅)) that CFG mixes (LCM eq. 10), ∅ = the null label
  and the zero context; with dropout iff ``dropout_key`` is given."""
  conditional = network(teacher_model, teacher_params, Condition(
      labels=_labels(teacher_model, batch),
      context=_context(teacher_model, batch)), dropout_key)
  if not guided:
    return conditional
  return conditional, network(teacher_model, teacher_params)


def train_step(state, batch, teacher_params=None, *, model, tx, objective,
               lr_schedule, ema_decay, ema_rampup_ratio=0.0, augment=None,
               teacher_model=None, label_dropout=0.0, skip_nonfinite=False):
  """One update: loss, θ ← optimizer, θ⁻ ← μθ⁻ + (1−μ)θ, EMA ← …

  CM Alg. 2/3 (and iCT, and the EDM teacher). One key per step,
  ``fold_in(rng, k)``; online and target share the same dropout key
  (iCT §3.2); the teacher runs without dropout, or with that key where
  ``needs.teacher_dropout`` (TCM). Labels and context (when
  the model takes them) condition θ, θ⁻ and φ alike. ``label_dropout`` > 0
  (a conditional diffusion teacher) drops an example's condition, label and
  context together, with that probability. ``augment`` (key, x) → (x',
  augment labels) is EDM's augmentation (cm_jax.data.augment): θ and θ⁻
  see x' and its labels, the teacher (if any) neither. The sampling EMA's
  rate ramps up with ``ema_rampup_ratio`` > 0 (``schedules.ema_decay``).
  Returns the new state and scalar
  metrics. With ``skip_nonfinite``, an update whose loss, gradient or new
  parameters are not finite is dropped (k still advances, so the next step
  sees the next batch and key) and counted in ``skipped``.
  """
  key = jax.random.fold_in(state.rng, state.step)
  loss_key, dropout_key = jax.random.split(key)
  labels, context = _labels(model, batch), _context(model, batch)
  if label_dropout > 0 and (labels is not None or context is not None):
    labels, context = drop_condition(jax.random.fold_in(key, 1),
                                     label_dropout, labels, context,
                                     getattr(model, "num_classes", 0))
  x0, augment_labels = batch["x"], None
  if augment is not None:
    x0, augment_labels = augment(jax.random.fold_in(key, 2), x0)
  teacher = None
  if teacher_model is not None:
    teacher = _teacher(teacher_model, teacher_params, batch,
                       objective.needs.guided_teacher,
                       (dropout_key if objective.needs.teacher_dropout
                        else None))

  cond = Condition(labels=labels, context=context,
                   augment_labels=augment_labels)

  def loss_fn(params):
    online = network(model, params, cond, dropout_key)
    target = network(model, state.target, cond, dropout_key)
    per_example, aux = objective(online, target, x0, loss_key, state.step,
                                 teacher)
    return per_example.mean(), aux

  # Reverse mode only: GroupNorm's fused backward (faster on CPU), unless
  # the objective takes JVPs through the network (Needs.forward_mode).
  with fused_backward(not objective.needs.forward_mode):
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.online)
  updates, opt_state = tx.update(grads, state.opt_state, state.online)
  online = optax.apply_updates(state.online, updates)
  new_state = state.replace(
      step=state.step + 1, online=online,
      target=ema_update(state.target, online, aux["target_mu"]),
      ema=ema_update(state.ema, online, schedules.ema_decay(
          state.step, ema_decay, ema_rampup_ratio)),
      opt_state=opt_state)
  metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
             "param_norm": optax.tree.norm(online),  # non-finite ⇒ no save
             "lr": lr_schedule(state.step), **aux}
  if skip_nonfinite:
    new_state, metrics = _skip_if_nonfinite(state, new_state, metrics)
  return new_state, metrics


def _skip_if_nonfinite(state, new_state, metrics):
  """Keeps the old θ, θ⁻, EMA and optimizer state where the update is not
  finite; a select, not a branch, so the step compiles once."""
  finite = (jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
            & jnp.isfinite(metrics["param_norm"]))
  keep = lambda new, old: jax.tree.map(
      lambda n, o: jnp.where(finite, n, o), new, old)
  new_state = new_state.replace(
      **{name: keep(getattr(new_state, name), getattr(state, name))
         for name in ("online", "target", "ema", "opt_state")},
      skipped=state.skipped + (~finite).astype(jnp.int32))
  metrics = {**metrics, "skipped": new_state.skipped,
             "param_norm": optax.tree.norm(new_state.online)}
  return new_state, metrics


def train_steps(state, batches, teacher_params=None, **static):
  """``S`` consecutive ``train_step``s in one program: ``lax.scan`` over
  ``batches`` stacked [S, B, …]; metrics come back stacked [S]. One
  dispatch per S steps hides host overhead when steps are short."""
  step = functools.partial(train_step, teacher_params=teacher_params, **static)
  return jax.lax.scan(step, state, batches)


def jit_train_step(state_sharding, batch_sharding, teacher_sharding=None,
                   steps_per_dispatch=1, **static):
  """``train_step`` (or, for ``steps_per_dispatch`` > 1, ``train_steps`` over
  batches stacked on a leading axis, sharded as ``batch_sharding`` after it)
  jitted with explicit shardings, donating the state."""
  fn, batches = train_step, batch_sharding
  if steps_per_dispatch > 1:
    fn = train_steps
    batches = jax.sharding.NamedSharding(
        batch_sharding.mesh, jax.sharding.PartitionSpec(
            None, *batch_sharding.spec))
  return jax.jit(functools.partial(fn, **static),
                 in_shardings=(state_sharding, batches, teacher_sharding),
                 out_shardings=(state_sharding, None), donate_argnums=0)

"""The jitted train step: one update of θ, then θ⁻ and the EMA (inside jit)."""

import functools

import jax
import optax

from cm_jax.parametrization import consistency_fn


def ema_update(average, params, decay):
  """decay·average + (1 − decay)·params, leaf by leaf (stop-gradient by use)."""
  return jax.tree.map(lambda a, p: decay * a + (1.0 - decay) * p, average, params)


def _consistency_fn(model, params, labels, dropout_key, diffusion):
  def net(x, c_noise):
    return model.apply({"params": params}, x, c_noise, labels, train=True,
                       rngs={"dropout": dropout_key})
  return consistency_fn(net, diffusion.sigma_data, diffusion.sigma_min)


def train_step(state, batch, *, model, tx, objective, lr_schedule, ema_decay,
               diffusion):
  """CM Alg. 3 (and iCT): loss, update θ, θ⁻ ← μθ⁻ + (1−μ)θ, EMA.

  One key per step, ``fold_in(rng, k)``; online and target share the same
  dropout key (iCT §3.2). Returns the new state and scalar metrics.
  """
  key = jax.random.fold_in(state.rng, state.step)
  loss_key, dropout_key = jax.random.split(key)
  labels = batch.get("y") if getattr(model, "num_classes", 0) else None
  make_f = functools.partial(_consistency_fn, model, labels=labels,
                             dropout_key=dropout_key, diffusion=diffusion)

  def loss_fn(params):
    per_example, aux = objective(make_f(params), make_f(state.target),
                                 batch["x"], loss_key, state.step)
    return per_example.mean(), aux

  (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.online)
  updates, opt_state = tx.update(grads, state.opt_state, state.online)
  online = optax.apply_updates(state.online, updates)
  new_state = state.replace(
      step=state.step + 1, online=online,
      target=ema_update(state.target, online, aux["target_mu"]),
      ema=ema_update(state.ema, online, ema_decay), opt_state=opt_state)
  metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
             "lr": lr_schedule(state.step), **aux}
  return new_state, metrics


def jit_train_step(state_sharding, batch_sharding, **static):
  """``train_step`` jitted with explicit shardings, donating the state."""
  return jax.jit(functools.partial(train_step, **static),
                 in_shardings=(state_sharding, batch_sharding),
                 out_shardings=(state_sharding, None), donate_argnums=0)

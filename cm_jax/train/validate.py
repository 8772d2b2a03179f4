"""Checks at start that the config's parts fit the data and each other.

Unknown names (data source, model, metric, curriculum, ...) fail where they
are resolved, listing the valid ones; unknown fields fail in the locked
config. This module checks combinations, before any array is built, and
what a resumed run would change since its checkpoint, each with a one-line
message that says what to change.
"""

import json
import math

from absl import logging

from cm_jax import methods
from cm_jax.data import sources
from cm_jax.data.augment import AUGMENT_DIM

MODEL_INPUTS = {"mlp": (1, "vectors [B, D] (2-D data)"),
                "unet": (3, "images [B, H, W, C]"),
                "autoencoder": (3, "images [B, H, W, C]")}


# Tuple-valued fields and the type of their elements: an override such as
# --config.model.ch_mult=1.5 passes the locked config (it takes any value
# for a tuple field) and would fail deep inside the network.
TUPLE_FIELDS = {"model.ch_mult": int, "model.attn_resolutions": int,
                "model.resample_filter": (int, float), "sample.ts": (int, float),
                "sample.labels": int, "eval.steps": int, "edit.ts": (int, float)}


def check_experiment(config, source):
  """Raises ValueError if ``config`` cannot train on ``source``'s examples."""
  check_tuple_fields(config)
  shape = tuple(source.example_shape)
  model = config.model
  data = f"data.source={config.data.source!r}"
  if source.num_examples < 1:
    raise ValueError(f"{data} has no examples; check --config.data.*.")
  if model.name in MODEL_INPUTS:
    ndim, what = MODEL_INPUTS[model.name]
    if len(shape) != ndim:
      other = [n for n, (d, _) in MODEL_INPUTS.items() if d == len(shape)]
      raise ValueError(
          f"model.name={model.name!r} takes {what}, but {data} gives examples "
          f"of shape {shape}; set --config.model.name="
          f"{other[0] if other else '...'} or use other data.")
  if model.name == "unet":
    levels = len(model.ch_mult)
    factor = 2 ** (levels - 1)
    if shape[0] % factor or shape[1] % factor:
      raise ValueError(
          f"The UNet halves the resolution {levels - 1} times (model.ch_mult="
          f"{tuple(model.ch_mult)}), so H and W must be multiples of {factor}; "
          f"{data} gives {shape[0]}×{shape[1]}. Shorten --config.model.ch_mult"
          " or resize the data.")
  if model.name == "autoencoder":  # takes no labels or contexts
    _check_autoencoder(model, shape, data)
  else:
    _check_labels(model.num_classes, source.num_classes, data)
    _check_context(model.get("context_dim", 0),
                   getattr(source, "context_dim", 0),
                   data)
  if config.loss.metric == "lpips" and not (len(shape) == 3 and shape[-1] == 3):
    raise ValueError(f"loss.metric='lpips' compares RGB images, but {data} "
                     f"gives examples of shape {shape}; set "
                     "--config.loss.metric=l2 (or pseudo_huber).")
  _check_augment(config, shape)
  _check_rates(config)


def _check_augment(config, shape):
  """EDM's augmentation warps images and feeds its labels to a UNet."""
  p, dim = config.augment.p, config.model.get("augment_dim", 0)
  if not (math.isfinite(p) and 0.0 <= p <= 1.0):
    raise ValueError(f"augment.p={p} must lie in [0, 1]; set --config.augment.p=...")
  if p > 0 and len(shape) != 3:
    raise ValueError(f"augment.p={p} transforms images, but data.source="
                     f"{config.data.source!r} gives examples of shape {shape}; "
                     "set --config.augment.p=0.")
  if p > 0 and (config.model.name != "unet" or dim != AUGMENT_DIM):
    raise ValueError(f"augment.p={p} feeds the network EDM's {AUGMENT_DIM} "
                     "augmentation labels (non-leaky augmentation); set "
                     f"--config.model.augment_dim={AUGMENT_DIM} (a unet), or "
                     "--config.augment.p=0.")
  if dim and dim != AUGMENT_DIM:
    raise ValueError(f"model.augment_dim={dim}: EDM's augmentation has "
                     f"{AUGMENT_DIM} labels; set --config.model.augment_dim="
                     f"{AUGMENT_DIM} or 0.")
  if config.train.ema_rampup_ratio < 0:
    raise ValueError(f"train.ema_rampup_ratio={config.train.ema_rampup_ratio}"
                     " must be ≥ 0 (0 = no ramp-up; EDM: 0.05).")


def _check_autoencoder(model, shape, data):
  factor = 2 ** (len(model.ch_mult) - 1)
  if shape[0] % factor or shape[1] % factor:
    raise ValueError(f"The autoencoder downsamples by f = {factor} (model."
                     f"ch_mult={tuple(model.ch_mult)}), but {data} gives "
                     f"{shape[0]}×{shape[1]}; shorten --config.model.ch_mult.")
  if model.out_channels != shape[-1]:
    raise ValueError(f"{data} gives images with {shape[-1]} channel(s); set "
                     f"--config.model.out_channels={shape[-1]}.")


def _check_labels(model_classes, data_classes, data):
  if model_classes and not data_classes:
    raise ValueError(
        f"model.num_classes={model_classes} makes a class-conditional network, "
        f"but {data} has no labels; set --config.model.num_classes=0 or use "
        "labelled data.")
  if model_classes and data_classes > model_classes:
    raise ValueError(
        f"{data} has {data_classes} classes but model.num_classes="
        f"{model_classes}; set --config.model.num_classes={data_classes}.")


def _check_context(model_dim, data_dim, data):
  """model.context_dim must be the width D of the data's "context" [B, D]."""
  if model_dim and not data_dim:
    raise ValueError(
        f"model.context_dim={model_dim} conditions on per-example context "
        f"vectors, but {data} has none; set --config.model.context_dim=0 or "
        "use data with contexts (npz context_train, toy2d gmm "
        "data.context_dim).")
  if model_dim and model_dim != data_dim:
    raise ValueError(
        f"{data} has context vectors of width {data_dim} but model."
        f"context_dim={model_dim}; set --config.model.context_dim={data_dim}.")


def check_tuple_fields(config):
  """Each field of ``TUPLE_FIELDS`` the config has is a tuple of its type."""
  for field, kind in TUPLE_FIELDS.items():
    group, name = field.split(".")
    if name not in config.get(group, {}):
      continue
    value = config[group][name]
    ok = isinstance(value, (tuple, list)) and all(
        isinstance(v, kind) and not isinstance(v, bool) for v in value)
    if not ok:
      what = "integers" if kind is int else "numbers"
      raise ValueError(
          f"{field}={value!r} must be a tuple of {what}, e.g. "
          f"--config.{field}='(1,2)' (a single value: '(2,)').")
  if "ch_mult" in config.model and min(config.model.ch_mult, default=1) < 1:
    raise ValueError(f"model.ch_mult={tuple(config.model.ch_mult)} must hold "
                     "positive integers.")


def _check_rates(config):
  """EMA rates are in [0, 1]; the learning rate is finite and positive; the
  run has at least one step."""
  lr = config.optim.lr
  if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
    raise ValueError(f"optim.lr={lr} must be a finite positive number; set "
                     "--config.optim.lr=... (e.g. 1e-4).")
  rates = {"train.ema_decay": config.train.ema_decay,
           "target.mu": config.target.mu, "target.mu0": config.target.mu0}
  for field, value in rates.items():
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
      raise ValueError(f"{field}={value} must lie in [0, 1]; set "
                       f"--config.{field}=...")
  if config.train.num_steps < 1 or config.train.batch_size < 1:
    raise ValueError("train.num_steps and train.batch_size must be ≥ 1; got "
                     f"{config.train.num_steps} and {config.train.batch_size}.")


def check_needs(config, needs, model):
  """The network ``model`` fits what the objective (``Needs``) feeds it:
  a method that trains one kind of network (``Needs.network``) trains only
  it, and no other method trains that network."""
  owner = {m.needs.network: name for name, m in methods.METHODS.items()
           if m.needs.network}
  name = config.model.name
  if needs.network != ("" if name not in owner else name):
    wanted = needs.network or "a denoising network (unet or mlp)"
    other = f" (which method={owner[name]} trains)" if name in owner else ""
    raise ValueError(f"method={config.method} trains {wanted}, got model.name="
                     f"{name!r}{other}; fix --config.method or model.name.")
  if getattr(model, "w_embedding", False) and not needs.guidance_input:
    raise ValueError(f"model.w_embedding=True takes LCM's guidance scale w, "
                     f"which method={config.method} does not feed; set "
                     "--config.model.w_embedding=False (or method=lcd, lcf).")
  if (getattr(model, "guidance_inputs", False)
      and not needs.guidance_interval_input):
    raise ValueError("model.guidance_inputs=True takes iMF's guidance scale "
                     f"and interval, which method={config.method} does not "
                     "feed; set --config.model.guidance_inputs=False (or "
                     "method=imf).")


# What a resumed run may not change without train.allow_changed_resume:
# the groups (and top-level fields) that decide the optimizer's path and the
# data it sees; fields that change neither are left out.
RESUME_GROUPS = ("optim", "data")
RESUME_FIELDS = ("seed",)
NOT_RESUME = ("prefetch", "data_dir", "download")


def check_data_scale(saved_config, source, workdir):
  """Fails in one line if ``source`` serves its points at another scale
  than the run saved in ``saved_config`` was trained on (2-D data:
  ``data.standardize``, σ_d): its samples would be decoded wrongly."""
  scale = getattr(source, "scale", None)
  data = saved_config.get("data", {})
  if scale is None or data.get("source") != "toy2d":
    return
  saved = getattr(sources.get_source(data), "scale", 1.0)
  if abs(saved - scale) > 1e-6 * max(saved, scale):
    setting = data.get("standardize", False)
    fix = ("drop the --config.data.standardize override (the run used the "
           "default)" if setting is None else
           f"set --config.data.standardize={setting} as the run had it")
    raise ValueError(
        f"{workdir} was trained on points scaled by {saved:.4g} "
        f"(data.standardize={setting} there), this config serves them "
        f"scaled by {scale:.4g}; {fix}.")


def check_resume(saved_config, config, workdir):
  """Fails in one line, naming the changes, if a run resuming from a
  checkpoint of ``saved_config`` would change its optimizer, seed or data,
  unless ``train.allow_changed_resume``. Fields an older checkpoint lacks
  are not compared."""
  changes = []
  for group in RESUME_GROUPS:
    old = dict(saved_config.get(group, {}))
    if group == "data":
      old = {**sources.IMPLIED, **old}
    new = json.loads(config[group].to_json())
    changes += [f"{group}.{k}: {old[k]!r} there, {new.get(k)!r} now"
                for k in sorted(old) if k in new and k not in NOT_RESUME
                and _comparable(old[k]) != _comparable(new[k])]
  changes += [f"{k}: {saved_config[k]!r} there, {config[k]!r} now"
              for k in RESUME_FIELDS
              if k in saved_config and saved_config[k] != config[k]]
  if changes and not config.train.get("allow_changed_resume", False):
    raise ValueError(
        f"{workdir} holds a run trained with another {', '.join(changes)}; "
        "resuming would not continue it. Use the original values, a fresh "
        "--workdir, or --config.train.allow_changed_resume=True.")
  if changes:
    logging.warning("Resuming %s with changes (allowed by "
                    "train.allow_changed_resume): %s.", workdir,
                    ", ".join(changes))


def _comparable(value):
  """JSON round-trips turn tuples into lists."""
  return list(value) if isinstance(value, tuple) else value

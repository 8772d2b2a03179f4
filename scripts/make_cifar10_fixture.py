"""Writes cm_jax/data/fixtures/cifar10_fixture.npz, the real-image fixture
that the ``:smoke`` configs and the real-pixel tests read (run once).

    python scripts/make_cifar10_fixture.py --src=PATH/cifar10_subset.npz

PATH/cifar10_subset.npz is a larger CIFAR-10 subset with the same arrays
(``x_train`` uint8 [N, 32, 32, 3], ``y_train`` [N], ``x_test``, ``y_test``).
The fixture keeps the first ``--num_train`` training and ``--num_test`` test
images with their labels, in CIFAR-10's official order, compressed.

Where the pixels come from: CIFAR-10 (Krizhevsky 2009), lossless uint8. The
source subset was cut from the image strips of two public ConvNetJS CIFAR-10
demos (PNG files, one 32×32 image per row), and was checked pixel for pixel
against an independent copy of the first 20 test images and against the
official label order.
"""

import argparse
import os

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "cm_jax", "data", "fixtures", "cifar10_fixture.npz")
MAX_BYTES = 2 ** 21  # 2 MiB: the fixture ships inside the package


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--src", required=True,
                      help="a CIFAR-10 .npz with x_train/y_train/x_test/y_test")
  parser.add_argument("--out", default=OUT)
  parser.add_argument("--num_train", type=int, default=300)
  parser.add_argument("--num_test", type=int, default=100)
  args = parser.parse_args()
  arrays = {}
  with np.load(args.src, allow_pickle=False) as src:
    for split, num in (("train", args.num_train), ("test", args.num_test)):
      x, y = src[f"x_{split}"][:num], src[f"y_{split}"][:num]
      if x.dtype != np.uint8 or x.shape[1:] != (32, 32, 3) or len(x) < num:
        raise ValueError(f"{args.src}: x_{split} must be uint8 [≥{num}, 32, "
                         f"32, 3], got {x.dtype} {list(x.shape)}.")
      arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y.astype(np.uint8)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez_compressed(args.out, **arrays)
  size = os.path.getsize(args.out)
  if size > MAX_BYTES:
    raise ValueError(f"{args.out} has {size} bytes, over {MAX_BYTES}; pass "
                     "smaller --num_train/--num_test.")
  print(f"wrote {args.out}: {args.num_train} train + {args.num_test} test "
        f"images, {size / 1e6:.2f} MB")


if __name__ == "__main__":
  main()

"""FID sanity figures on real CIFAR-10 images.

    python scripts/fid_sanity.py                 # the package's fixture
    python scripts/fid_sanity.py --npz=PATH.npz  # e.g. a larger subset

Prints FID(train, test), FID(test, test) (0 up to round-off) and FID(train,
test + Gaussian noise of std σ/255) for growing σ, which must grow. The
default is the CIFAR-10 fixture shipped in cm_jax/data/fixtures (300 train,
100 test images); any npz with x_train and x_test uint8 arrays works. So few
images bias FID upward against the 50k protocol: only compare figures at
equal counts.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from cm_jax.evaluation import fid
from configs.base import CIFAR10_FIXTURE


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--npz", default=CIFAR10_FIXTURE,
                      help="x_train/x_test uint8 arrays; default: the fixture")
  parser.add_argument("--num_train", type=int, default=None,
                      help="first images of x_train used; default: all")
  parser.add_argument("--num_test", type=int, default=None,
                      help="first images of x_test used; default: all")
  parser.add_argument("--noise", default="4,16,64",
                      help="noise std in uint8 levels, comma separated")
  args = parser.parse_args()
  with np.load(args.npz) as f:
    train, test = f["x_train"][:args.num_train], f["x_test"][:args.num_test]
  start = time.perf_counter()
  extractor = fid.get_extractor()
  train_stats = fid.stats_from_features(extractor(train))
  test_stats = fid.stats_from_features(extractor(test))
  rows = {"fid_train_test": fid.fid_from_stats(train_stats, test_stats),
          "fid_test_test": fid.fid_from_stats(test_stats, test_stats)}
  rng = np.random.default_rng(0)
  for sigma in (float(s) for s in args.noise.split(",")):
    noisy = np.clip(np.round(test + rng.normal(0, sigma, test.shape)), 0, 255)
    rows[f"fid_train_test_noise{sigma:g}"] = fid.fid_from_stats(
        train_stats, fid.feature_stats(noisy.astype(np.uint8), extractor))
  print(json.dumps({"num_train": len(train), "num_test": len(test), **rows,
                    "seconds": time.perf_counter() - start}))
  for name, value in rows.items():
    print(f"{name:32s} {value:10.4f}")


if __name__ == "__main__":
  main()

"""FID feature-extraction throughput: Inception pool3 images/s on this host.

    python -m benchmarks.fid_features [--batch 64] [--num 512] [--size 32]

Prints one JSON line (case, batch, images_per_s, compile_s, device) and a
readable line. Inputs are uint8 images of ``size``×``size`` (resized to 299
inside the jitted function, as in evaluation).
"""

import argparse
import json
import time

import jax
import numpy as np

from cm_jax import allocator
from cm_jax.evaluation import fid


def main():
  allocator.reexec_with_tcmalloc()  # as launch.py does
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--num", type=int, default=512)
  parser.add_argument("--size", type=int, default=32)
  args = parser.parse_args()
  extractor = fid.FeatureExtractor(batch_size=args.batch)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (args.num, args.size, args.size, 3), np.uint8)
  start = time.perf_counter()
  extractor(images[:extractor.batch_size], progress=False)  # compile + 1 batch
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  extractor(images, progress=False)
  run_s = time.perf_counter() - start
  result = {"case": f"fid_features_{args.size}px", "batch": extractor.batch_size,
            "images_per_s": args.num / run_s, "compile_s": compile_s,
            "device": f"{jax.devices()[0].device_kind} x{jax.device_count()}",
            "allocator": allocator.loaded()}
  print(json.dumps(result))
  print(f"FID features: {result['images_per_s']:.1f} images/s at batch "
        f"{result['batch']} on {result['device']} (first batch incl. "
        f"compile {compile_s:.1f} s)")


if __name__ == "__main__":
  main()

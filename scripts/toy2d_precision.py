"""Near-mode fraction of a 2-D gmm run's samples: the README's precision.

    python scripts/toy2d_precision.py --workdir=runs/cd_toy2d --steps=1
    python scripts/toy2d_precision.py --workdir=runs/edm_toy2d   # teacher

Reads DIR/samples/samples_<step>_<S>step.npz (written by --mode=sample) of
the workdir's latest checkpoint step (or --samples=FILE) and the run's data
config from that checkpoint, and prints the fraction of samples within
--within (3) data std of one of the mixture's modes (8 modes of std 0.05:
within 0.15), and the samples per mode among those. Samples are in data
units (a standardised source decodes them), as the modes are.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from cm_jax import checkpoint
from cm_jax.data import get_source


def run_meta(workdir):
  """The JSON meta (step, config) of the workdir's latest checkpoint."""
  if not os.path.isdir(checkpoint.checkpoint_dir(workdir)):
    sys.exit(f"No checkpoints in {checkpoint.checkpoint_dir(workdir)}; "
             "pass the workdir of a trained run.")
  meta = checkpoint.read_meta(checkpoint.make_manager(workdir))
  if meta is None:
    sys.exit(f"{workdir} has no finished checkpoint.")
  return meta


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="a trained 2-D gmm run")
  parser.add_argument("--steps", type=int, default=1,
                      help="sampling steps of the samples file (S)")
  parser.add_argument("--samples", default="",
                      help="a samples .npz instead of the workdir's")
  parser.add_argument("--within", type=float, default=3.0,
                      help="radius in units of the data's mode std")
  args = parser.parse_args()
  meta = run_meta(args.workdir)
  data = meta["config"]["data"]
  if data.get("source") != "toy2d" or data.get("name", "gmm") != "gmm":
    sys.exit(f"{args.workdir} was not trained on the toy2d gmm.")
  path = args.samples or os.path.join(
      args.workdir, "samples", f"samples_{meta['step']}_{args.steps}step.npz")
  if not os.path.isfile(path):
    sys.exit(f"{path} does not exist; write it with --mode=sample "
             f"--config.sample.steps={args.steps}.")
  with np.load(path) as f:
    samples = f["samples"]
  source = get_source(data)
  radius = args.within * source.std
  fraction, counts = source.near_mode(samples, args.within)
  print(f"{path}: {len(samples)} samples; fraction within {radius:.4g} "
        f"({args.within:g} std) of one of {len(source.modes)} modes: "
        f"{fraction:.3f}; per mode {counts.tolist()}")


if __name__ == "__main__":
  main()

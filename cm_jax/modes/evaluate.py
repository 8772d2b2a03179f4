"""--mode=eval: FID and KID of a trained run's samples."""

import json
import os

import jax
from absl import logging

from cm_jax.experiment import load_trained


def evaluate(config, workdir, mesh=None):
  """FID and KID of ``eval.num`` samples per ``eval.steps`` from the EMA
  parameters of the workdir's latest checkpoint, against the reference
  statistics; written to DIR/eval/metrics_<step>.json."""
  exp, ema, meta = load_trained(config, workdir, mesh)
  ec = config.eval
  results = {"step": meta["step"], "num_samples": ec.num,
             "reference": exp.reference.path,
             "reference_description": exp.reference.description}
  results.update(exp.evaluate(ema, ec.num, ec.steps, progress=True))
  path = os.path.join(workdir, "eval", f"metrics_{meta['step']}.json")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      json.dump(results, f, indent=1)
  scores = "  ".join(f"{k} {v:.4g}" for k, v in results.items()
                     if k.startswith(("fid", "kid_")) and "std" not in k)
  logging.info("step %d, %d samples: %s; wrote %s", meta["step"], ec.num,
               scores, path)
  return results

"""--mode=sample: samples from the EMA parameters of a trained run."""

import os

import jax
from absl import logging

from cm_jax import generate
from cm_jax.experiment import load_trained


def sample(config, workdir, mesh=None):
  """``sample.num`` samples in ``sample.steps`` steps from the EMA parameters
  of the workdir's latest checkpoint (decoded to images for latent data;
  reconstructions of the data for an autoencoder), written to
  DIR/samples/samples_<step>_<S>step[_w<w>].npz and .png."""
  exp, ema, meta = load_trained(config, workdir, mesh)
  sc = config.sample
  samples = exp.generate(ema, sc.num, sc.steps, jax.random.key(sc.seed))
  name = (f"reconstructions_{meta['step']}"
          if exp.needs.sampler == "reconstruct" else
          f"samples_{meta['step']}_{sc.steps}step"
          f"{generate.guidance_suffix(sc)}")
  prefix = os.path.join(workdir, "samples", name)
  generate.save_samples(samples, exp.source.is_image, prefix,
                        exp.reference_points())
  logging.info("Wrote %s.npz and .png (%d samples, %d step(s)).", prefix,
               len(samples), sc.steps)
  return prefix + ".npz"

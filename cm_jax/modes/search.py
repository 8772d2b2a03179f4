"""The best intermediate time τ of 2-step sampling (CM §6, Alg. 1 with N = 2).

As in the CM code (``scripts/ternary_search.py``), τ is searched among the
points of the process's grid of ``search.steps`` times (VE: EDM's, T = t_0 >
… > t_{S−1} = ε; TrigFlow: the same σs as t = arctan(σ/σ_d)), by
a ternary search over the index, minimising a metric of the samples (FID for
images there). Every τ is sampled from the same noise (common random numbers),
so the metric is a smooth function of τ rather than a noisy one.

The search takes any callable; ``METRICS`` names the ones ``--mode=search``
knows: ``fid`` (images, through ``cm_jax.evaluation.fid``), ``frechet``
(the Fréchet distance between Gaussians fitted to the raw values: 2-D points
or flattened pixels; cheap, and exact to test on Gaussian data) and ``modes``
(the 2-D Gaussian mixture: the share of samples farther than 3 std from
every mode, where a Gaussian fit is nearly flat in τ).
"""

import dataclasses
import json
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from cm_jax import generate, registry, visualize
from cm_jax.evaluation import fid
from cm_jax.experiment import load_trained
from cm_jax.modes.edit import check_editable


def ternary_search(objective: Callable[[int], float], lo: int, hi: int):
  """Minimises ``objective`` over the integers lo … hi, assumed unimodal.

  Each index is evaluated at most once. Returns (best index, {index: value})
  with every evaluated index; best is the smallest value seen.
  """
  if lo > hi:
    raise ValueError(f"Empty search range [{lo}, {hi}].")
  values = {}

  def value(i):
    if i not in values:
      values[i] = float(objective(i))
    return values[i]

  while hi - lo >= 3:
    m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
    if value(m1) < value(m2):
      hi = m2  # a unimodal minimum is not right of m2
    else:
      lo = m1  # … nor left of m1
  for i in range(lo, hi + 1):
    value(i)
  return min(values, key=values.get), values


@dataclasses.dataclass(frozen=True)
class SearchResult:
  """The outcome of ``search_two_step``."""

  best_t: float  # τ* = grid[best_index]
  best_index: int
  rows: tuple  # (index, τ, metric) of every evaluated τ, by descending τ
  one_step: float | None = None  # the metric of 1-step samples, for reference

  def table(self, metric_name="metric"):
    """The evaluations as a Markdown table, the best row marked."""
    lines = [f"| grid index | τ | {metric_name} |", "|---|---|---|"]
    for i, t, v in self.rows:
      mark = " ← best" if i == self.best_index else ""
      lines.append(f"| {i} | {t:.4g} | {v:.4g}{mark} |")
    if self.one_step is not None:
      lines.append(f"| 1 step | – | {self.one_step:.4g} |")
    return "\n".join(lines)


def search_two_step(sample: Callable, metric: Callable, grid, *, lo=1,
                    hi=None, one_step: Callable | None = None):
  """Ternary search of the 2-step intermediate time over ``grid``.

  Args:
    sample: τ (float) → samples; 2-step samples from the same noise each call.
    metric: samples → float, lower is better (e.g. FID against data).
    grid: descending candidate times (an EDM grid from T to ε).
    lo, hi: the index range searched; default the interior 1 … len − 2 (τ = T
      or ε gives 1-step samples again, in distribution).
    one_step: optional () → 1-step samples, evaluated once for the table.
  """
  grid = np.asarray(grid, np.float64)
  hi = len(grid) - 2 if hi is None else hi
  best, values = ternary_search(lambda i: metric(sample(float(grid[i]))), lo,
                                hi)
  rows = tuple((i, float(grid[i]), values[i]) for i in sorted(values))
  return SearchResult(best_t=float(grid[best]), best_index=best, rows=rows,
                      one_step=None if one_step is None else metric(one_step()))


def gaussian_stats(x):
  """(μ, Σ) of the rows of ``x`` flattened to [N, D], in float64."""
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _frechet(reference):
  reference_stats = gaussian_stats(reference)
  return lambda samples: fid.fid_from_stats(gaussian_stats(samples),
                                            reference_stats)


def _fid(reference):
  reference_stats = fid.feature_stats(visualize.to_uint8(reference))
  return lambda samples: fid.fid_from_stats(
      fid.feature_stats(visualize.to_uint8(samples)), reference_stats)


def _far_from_modes(source):
  # 1 − the fraction of samples within 3 std of a mode (`near_mode`), in
  # data units: what a Gaussian fit (frechet) cannot see on a mixture.
  return lambda samples: 1.0 - source.near_mode(source.decode(samples))[0]


# name → (the data source → (samples in model space → float)).
METRICS = {
    "frechet": lambda source, reference: _frechet(reference),
    "fid": lambda source, reference: _fid(reference),
    "modes": lambda source, reference: _far_from_modes(source),
}


def make_metric(name, reference, is_image, source=None):
  """The metric named by ``search.metric`` against ``reference`` data (the
  first examples of ``source``); ``auto`` is FID for images and the Fréchet
  distance for 2-D points; ``modes`` (the 2-D gmm) is the share of samples
  farther than 3 std from every mode."""
  if name == "auto":
    name = "fid" if is_image else "frechet"
  if name == "fid" and not is_image:
    raise ValueError("search.metric=fid needs images; set "
                     "--config.search.metric=frechet for 2-D data.")
  if name == "modes" and not hasattr(source, "near_mode"):
    raise ValueError("search.metric=modes needs the 2-D gmm "
                     "(data.source=toy2d, data.name=gmm); set "
                     "--config.search.metric=auto.")
  make = registry.lookup(METRICS, name, "search.metric")
  return name, make(source, reference)


def search(config, workdir, mesh=None):
  """--mode=search: the 2-step τ of the workdir's latest EMA parameters.

  Writes DIR/search/two_step_<step>.md (the table) and .json.
  """
  check_editable(config, "--mode=search (the 2-step τ search)",
                 any_process=True)
  exp, ema, meta = load_trained(config, workdir, mesh)
  sc = config.search
  num = min(sc.num, exp.source.num_examples)
  reference = exp.source.get(np.arange(num))["x"]
  metric_name, metric = make_metric(sc.metric, reference, exp.source.is_image,
                                    exp.source)
  # CM Alg. 1 (LCM Alg. 3 for VP and TrigFlow) with the intermediate times
  # as an input: one compilation.
  gen = generate.Generator(
      exp.model, config, exp.source.example_shape,
      generate.sampler_name(config.sample, exp.process, "consistency", 2),
      batch=min(config.sample.batch_size, num),
      contexts=generate.sample_contexts(
          getattr(exp.model, "context_dim", 0), config.sample.context,
          exp.source, num))
  key = jax.random.key(sc.seed)
  sample = lambda ts: gen(ema, num, key, jnp.asarray(ts, jnp.float32))
  grid = np.asarray(exp.process.grid(sc.steps))[::-1]  # VE: EDM's σ grid
  result = search_two_step(lambda t: sample([t]), metric, grid,
                           one_step=lambda: sample([]))
  _write(result, metric_name, num, meta["step"],
         os.path.join(workdir, "search", f"two_step_{meta['step']}"))
  return result


def _write(result, metric_name, num, step, prefix):
  """prefix.md (the table) and prefix.json, logged."""
  table = result.table(metric_name)
  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  with open(prefix + ".md", "w") as f:
    f.write(f"2-step τ search, step {step}, {num} samples, "
            f"{metric_name}; best τ = {result.best_t:.4g}\n\n{table}\n")
  with open(prefix + ".json", "w") as f:
    json.dump({"step": step, "metric": metric_name, "num": num,
               "best_t": result.best_t, "best_index": result.best_index,
               "one_step": result.one_step,
               "rows": [{"index": i, "t": t, "value": v}
                        for i, t, v in result.rows]}, f, indent=1)
  logging.info("2-step τ search (%s, %d samples):\n%s\nBest τ = %.4g; use "
               "--config.sample.ts=%.4g. Wrote %s.md and .json.", metric_name,
               num, table, result.best_t, result.best_t, prefix)

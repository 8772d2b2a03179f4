"""Methods at equal wall-clock: each run gets the same training time.

  python scripts/compare_methods.py --budget=60 --out=runs/compare_toy2d \\
      --run iCT configs/toy2d.py --run ECT configs/ect_toy2d.py \\
      --run sCT configs/sct_toy2d.py \\
      --run "ECT tuned" configs/ect_toy2d.py:tune init.workdir=runs/edm_toy2d

For each ``--run LABEL CONFIG [KEY=VALUE ...]`` (KEY=VALUE become
``--config.KEY=VALUE``) it

1. calibrates: trains ``--calibrate`` steps in OUT/<label>/calibrate and
   reads the step rate of the last logged interval (after compilation);
2. trains ``budget × rate`` steps (rounded to 100) in OUT/<label>, with the
   recipe's step-count schedules (``SCHEDULE_FIELDS``: ECT's stages, sCM's
   tangent warm-up) scaled by the same factor as ``train.num_steps``, so
   every method finishes its own schedule; iCT's and CT's curricula already
   follow ``train.num_steps``;
3. scores 1- and 2-step samples: on the 2-D gmm the fraction of 2,000
   samples within 3 std of a mode (``scripts/toy2d_precision.py``), on
   images FID with ``--mode=eval`` (``--eval_num`` samples against the first
   ``--ref_num`` training images; one Inception and one reference for all).

It prints a markdown table (steps, step rate, training seconds = steps /
the median logged rate after compilation, wall seconds of the training
process with start-up and compilation, and the scores) and writes OUT/results.json. The teacher of a
distillation or tuning run is not counted: train it first. Step rates are
only comparable on an otherwise idle machine; the table says the load
average seen at each run's start.
"""

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each method's step-count schedules, scaled with train.num_steps.
SCHEDULE_FIELDS = {"ect": ("ect.stage_steps",),
                   "sct": ("scm.warmup_steps",), "scd": ("scm.warmup_steps",)}


def load_config(spec):
  """The ml-collections config of "configs/NAME.py[:ARG]"."""
  path, _, arg = spec.partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  module = importlib.import_module(f"configs.{name}")
  return module.get_config(arg or None)


def field(config, dotted):
  for part in dotted.split("."):
    config = config[part]
  return config


def scaled_overrides(config, steps):
  """The overrides that train ``config`` for ``steps`` steps: its
  ``SCHEDULE_FIELDS`` scaled by steps / train.num_steps, logs every tenth,
  one checkpoint at the end and no sample grids."""
  out = [f"train.num_steps={steps}", f"train.log_every={max(steps // 10, 1)}",
         f"train.checkpoint_every={steps}", "train.sample_every=0"]
  for name in SCHEDULE_FIELDS.get(config.method, ()):
    value = field(config, name)
    if value:
      scaled = max(1, round(value * steps / config.train.num_steps))
      out.append(f"{name}={scaled}")
  return out


def launch(spec, workdir, overrides, log, mode="train"):
  """Runs launch.py; returns its wall seconds. Exits with the log's tail on
  failure."""
  cmd = [sys.executable, os.path.join(ROOT, "launch.py"), f"--config={spec}",
         f"--workdir={workdir}", f"--mode={mode}"]
  cmd += [f"--config.{o}" for o in overrides]
  start = time.perf_counter()
  with open(log, "a") as f:
    f.write(" ".join(cmd) + "\n")
    f.flush()
    rc = subprocess.call(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
  if rc:
    with open(log) as f:
      tail = f.readlines()[-5:]
    sys.exit(f"{' '.join(cmd)} failed (rc {rc}); the end of {log}:\n"
             + "".join(tail))
  return time.perf_counter() - start


def logged(workdir):
  """The rows of WORKDIR/metrics.jsonl."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def training_seconds(rows):
  """Steps / the median logged rate after the first interval (which holds
  the compilation): the time spent in training steps."""
  rates = [r["steps_per_s"] for r in rows if "steps_per_s" in r][1:]
  return rows[-1]["step"] / float(np.median(rates)) if rates else float("nan")


def scores(spec, workdir, overrides, config, args, log):
  """{1: score, 2: score} of the trained run and the score's name."""
  data = config.data
  if data.source == "toy2d" and data.get("name", "gmm") == "gmm":
    from cm_jax.data import get_source
    source = get_source(data)
    out = {}
    for s in (1, 2):
      launch(spec, workdir, overrides + [
          "sample.num=2000", "sample.batch_size=2000", f"sample.steps={s}"],
             log, mode="sample")
      step = logged(workdir)[-1]["step"]
      path = os.path.join(workdir, "samples", f"samples_{step}_{s}step.npz")
      with np.load(path) as f:
        out[s], _ = source.near_mode(f["samples"], 3.0)
    return out, "near-mode fraction"
  launch(spec, workdir, overrides + [
      f"eval.num={args.eval_num}", f"eval.ref_num={args.ref_num}",
      "eval.steps=1,2"], log, mode="eval")
  step = logged(workdir)[-1]["step"]
  with open(os.path.join(workdir, "eval", f"metrics_{step}.json")) as f:
    metrics = json.load(f)
  return {s: metrics[f"fid_{s}step"] for s in (1, 2)}, "FID"


def slug(label):
  return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_").lower()


def compare(label, spec, sets, args):
  config = load_config(spec)
  overrides = list(sets)
  workdir = os.path.join(args.out, slug(label))
  log = workdir + ".log"
  if os.path.exists(workdir):
    sys.exit(f"{workdir} exists; pass another --out or remove it.")
  calibrate = os.path.join(workdir, "calibrate")
  n = args.calibrate
  launch(spec, calibrate, overrides + [
      f"train.num_steps={n}", f"train.log_every={max(n // 3, 1)}",
      f"train.checkpoint_every={n}", "train.sample_every=0"], log)
  rate = logged(calibrate)[-1]["steps_per_s"]

  recipe_steps = config.train.num_steps
  steps = max(100, int(round(args.budget * rate / 100.0)) * 100)
  scaled = scaled_overrides(config, steps)
  load = os.getloadavg()[0]
  wall = launch(spec, workdir, overrides + scaled, log)
  train_s = training_seconds(logged(workdir))
  score, metric = scores(spec, workdir, overrides + scaled, config, args, log)
  return dict(label=label, config=spec, overrides=overrides + scaled,
              recipe_steps=recipe_steps, steps=steps, rate=rate,
              train_s=train_s, wall_s=wall, load=load, metric=metric,
              one_step=score[1], two_steps=score[2])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--run", nargs="+", action="append", required=True,
                      metavar="LABEL CONFIG [KEY=VALUE]",
                      help="a label, a config (file.py[:arg]) and overrides")
  parser.add_argument("--budget", type=float, required=True,
                      help="training seconds per run")
  parser.add_argument("--out", required=True, help="a new folder for runs")
  parser.add_argument("--calibrate", type=int, default=300,
                      help="steps of the rate measurement")
  parser.add_argument("--eval_num", type=int, default=1000)
  parser.add_argument("--ref_num", type=int, default=1000)
  args = parser.parse_args()
  for run in args.run:
    if len(run) < 2 or any("=" not in s for s in run[2:]):
      parser.error(f"--run {' '.join(run)}: give LABEL CONFIG [KEY=VALUE ...]")
  os.makedirs(args.out, exist_ok=True)
  results = []
  for label, spec, *sets in args.run:
    results.append(compare(label, spec, sets, args))
    print(f"done: {label}", flush=True)
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  metric = results[0]["metric"]
  print(f"\n| method | steps (recipe) | steps/s | train s | wall s | load "
        f"| 1-step {metric} | 2-step {metric} |")
  print("|---|---|---|---|---|---|---|---|")
  for r in results:
    print(f"| {r['label']} | {r['steps']} ({r['recipe_steps']}) | "
          f"{r['rate']:.1f} | {r['train_s']:.0f} | {r['wall_s']:.0f} | "
          f"{r['load']:.1f} | {r['one_step']:.3f} | {r['two_steps']:.3f} |")


if __name__ == "__main__":
  main()

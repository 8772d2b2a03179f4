"""The quality gate: every method trained for real on 2-D data, each to a
calibrated threshold, and one resumed run equal to an uninterrupted one.

    python scripts/quality_gate.py                    # seed 0, the gate (CI)
    python scripts/quality_gate.py --only=ict,cd      # some checks
    python scripts/quality_gate.py --calibrate --seeds=0,1,2,3,4
    python scripts/quality_gate.py --calibrate --seeds=0,1,2,3,4 --only=meanflow

Each check trains one method's 2-D recipe (its teacher first, for CD, sCD
and LCD; TCM's stage 1 for TCM) through cm_jax's own modes, samples it at
1 and 2 steps, and scores the samples against the data: on the Gaussian
mixtures the share of samples within 3 std of a mode ("near") and the
worst-served mode's count as a share of its fair share ("worst"); on the
class-conditional toy, LCD's and guided iMF's one-step class accuracy at
guidance w = 3, and shortcut models' (bootstrap_cfg) unguided. A figure below its threshold fails the
gate. The thresholds (scripts/quality_thresholds.json) come from
``--calibrate``: the same runs over several seeds, each threshold the
mean minus max(3 standard deviations, MARGIN) of the seeds that are not
gross outliers (``threshold``), so a run fails on a real regression and
not on the spread between seeds. The
gate itself runs seed 0. The "resume" check trains one iCT run through launch.py, stops it with
SIGTERM, resumes it, and requires every logged loss to equal the
uninterrupted run's, step for step.

The iCT, CT, ECT and sCT checks are the configs' own 8,000-step recipes
(CT: configs/toy2d.py with the CM paper's CT choices); CD, sCD and LCD,
which need a teacher, run shortened versions (the ``flags`` below), so
that the whole gate takes minutes on 2 CPU cores. A figure whose
calibrated threshold is 0 cannot fail and is shown, not gated. It prints
a table of figures against thresholds and exits 1 if any figure is below
its threshold.
"""

import argparse
import concurrent.futures
import dataclasses
import datetime
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THRESHOLDS = os.path.join(REPO, "scripts", "quality_thresholds.json")
MARGIN = 0.03  # the least distance of a threshold below its calibrated mean
OUTLIER = 5  # robust standard deviations from the median (threshold())
RULE = (f"mean - max(3 std, {MARGIN}) of the seeds within {OUTLIER} "
        f"robust std (1.4826 MAD, at least {MARGIN}) of the median")

# 2-D data of another shape and scale than the default mixture (8 modes on
# the unit circle, std 0.05), and σ_d = 1 instead of 0.5.
MIXTURE5 = {"data.num_modes": 5, "data.radius": 2.0, "data.std": 0.08,
            "diffusion.sigma_data": 1.0}
WIDE = {"data.num_modes": 8, "data.radius": 4.0, "data.std": 0.1,
        "diffusion.sigma_data": 1.0}
# The CD/sCD teacher and students, smaller than cd_toy2d's 512 × 4.
TEACHER_MLP = {"model.hidden": 256, "model.depth": 3}


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run: a config (file.py[:arg]) and overrides."""
  config: str
  flags: dict = dataclasses.field(default_factory=dict)
  teacher: str = ""  # a TEACHERS key whose workdir is teacher.workdir
  score: str = "modes"  # modes | classes
  guidance: float = 3.0  # classes: sample.guidance (0: unguided)


TEACHERS = {
    "edm": Run("configs/edm_toy2d.py",
               {**TEACHER_MLP, "train.num_steps": 2000}),
    "edm_cond": Run("configs/edm_toy2d.py:cond", {"train.num_steps": 1000}),
    "tcm_stage1": Run("configs/tcm_toy2d.py:stage1"),
}

CHECKS = {
    "ict": Run("configs/toy2d.py"),
    "ict_mixture5": Run("configs/toy2d.py", MIXTURE5),
    # Data 2.8× wider than σ_d: standardised by default (data.standardize
    # None); served unscaled, this run's network died (docs/toy2d.md).
    "ict_wide": Run("configs/toy2d.py", WIDE),
    # CM Alg. 3 with the CM paper's CT choices; on this toy its one-step
    # samples collapse to the mean (docs/methods.md), so only 2 steps are gated.
    "ct": Run("configs/toy2d.py", {
        "curriculum.name": "ct", "curriculum.s0": 2, "curriculum.s1": 150,
        "target.ema": "adaptive", "target.mu0": 0.9, "loss.metric": "l2",
        "loss.weighting": "uniform", "loss.index_sampling": "uniform"}),
    "ect": Run("configs/ect_toy2d.py"),
    "sct": Run("configs/sct_toy2d.py"),
    "cd": Run("configs/cd_toy2d.py", {**TEACHER_MLP, "train.num_steps": 2000,
                                      "train.batch_size": 256},
              teacher="edm"),
    "scd": Run("configs/scd_toy2d.py:edm",
               {**TEACHER_MLP, "train.num_steps": 2000,
                "train.batch_size": 256, "scm.warmup_steps": 250},
               teacher="edm"),
    "lcd": Run("configs/lcd_toy2d.py", {"train.num_steps": 1000},
               teacher="edm_cond", score="classes"),
    "meanflow": Run("configs/meanflow_toy2d.py"),
    "shortcut": Run("configs/shortcut_toy2d.py"),
    "imf": Run("configs/imf_toy2d.py"),
    # iMF with its guidance as network inputs, sampled at ω = 3 (unguided,
    # ω = 1, seed 0's one jump is 0.91 accurate; guided 1.00).
    "imf_cond": Run("configs/imf_toy2d.py:cond", score="classes"),
    # Shortcut models with class dropout and bootstrap_cfg (guided
    # self-consistency targets), one jump sampled unguided: the guidance
    # is in the jumps, as the official few-step FIDs are drawn.
    "shortcut_cond": Run("configs/shortcut_toy2d.py:cond", score="classes",
                         guidance=0.0),
    "tcm": Run("configs/tcm_toy2d.py", teacher="tcm_stage1"),
}
RESUME = "resume"  # the resumed-run check (losses step for step)
QUIET = {"train.sample_every": 0, "train.tensorboard": False,
         "train.log_every": 250, "sample.num": 2000,
         "sample.batch_size": 2000}


def load_config(spec, flags):
  """configs/<name>.py[:arg] with ``flags`` (dotted field → value)."""
  path, _, arg = spec.partition(":")
  module = importlib.import_module(
      "configs." + os.path.splitext(os.path.basename(path))[0])
  config = module.get_config(arg or None)
  config.update_from_flattened_dict(flags)
  return config


def _score(config, workdir, score, guidance=3.0):
  """The figures of a trained run (EMA samples, sample.seed); class
  accuracy at sample.guidance = ``guidance`` (acc_w<guidance>)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from cm_jax import run  # pylint: disable=g-import-not-at-top
  from cm_jax.data import get_source  # pylint: disable=g-import-not-at-top
  source = get_source(config.data)
  figures = {}
  for steps in ((1,) if score == "classes" else (1, 2)):
    config.sample.steps = steps
    if score == "classes":
      config.sample.guidance = guidance
    samples = np.load(run.run(config, workdir, "sample"))["samples"]
    if score == "classes":  # sample.labels = (): the classes in turn
      labels = np.arange(len(samples)) % config.model.num_classes
      figures[f"acc_w{guidance:g}"] = float(
          (source.classify(samples) == labels).mean())
      continue
    near, counts = source.near_mode(samples)
    figures[f"near_{steps}"] = near
    figures[f"worst_{steps}"] = float(counts.min() * len(counts)
                                      / len(samples))
  return figures


def worker(name, seed, root):
  """Trains ``name`` (a TEACHERS or CHECKS key) in ``root``/name, in this
  process; prints its figures as one JSON line."""
  from cm_jax import run  # pylint: disable=g-import-not-at-top
  spec = TEACHERS.get(name) or CHECKS[name]
  config = load_config(spec.config, {**spec.flags, **QUIET, "seed": seed})
  if spec.teacher:
    config.teacher.workdir = os.path.join(root, spec.teacher)
  workdir = os.path.join(root, name)
  start = time.time()
  run.run(config, workdir, "train")
  figures = {} if name in TEACHERS else _score(config, workdir, spec.score,
                                                spec.guidance)
  print(json.dumps({"name": name, "seconds": time.time() - start,
                    **figures}))


def _launch(*args, **kwargs):
  return subprocess.Popen([sys.executable, os.path.join(REPO, "launch.py"),
                           *args], cwd=REPO, **kwargs)


def resume_check(seed, root):
  """iCT on the 5-mode mixture (σ_d = 1), 600 steps with every loss
  logged: once straight through, once stopped by SIGTERM after its step-300
  checkpoint and resumed by the same command. Returns the figures: the
  steps compared, how many losses differ, the step it stopped at."""
  flags = [f"--config.{k}={v}" for k, v in {
      **MIXTURE5, "train.num_steps": 600, "train.checkpoint_every": 300,
      "train.log_every": 1, "train.sample_every": 0,
      "train.tensorboard": False, "seed": seed}.items()]
  logs = {}
  for name in ("straight", "resumed"):
    workdir = os.path.join(root, f"resume_{name}")
    args = ("--config=configs/toy2d.py", f"--workdir={workdir}", *flags)
    out = open(os.path.join(root, f"resume_{name}.log"), "w")
    process = _launch(*args, stdout=out, stderr=subprocess.STDOUT)
    stopped = None
    if name == "resumed":  # SIGTERM once the step-300 checkpoint exists
      metrics = os.path.join(workdir, "metrics.jsonl")
      while process.poll() is None:
        if os.path.isdir(os.path.join(workdir, "checkpoints", "300")):
          process.send_signal(signal.SIGTERM)
          break
        time.sleep(0.05)
      process.wait()
      with open(metrics) as f:
        stopped = json.loads(f.readlines()[-1])["step"]
      if stopped >= 600:
        raise SystemExit("resume check: the run ended before the SIGTERM; "
                         "it tests nothing.")
      process = _launch(*args, stdout=out, stderr=subprocess.STDOUT)
    if process.wait() != 0:
      raise SystemExit(f"resume check: launch.py failed; see "
                       f"{out.name}")
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      logs[name] = {row["step"]: row["loss"] for row in map(json.loads, f)}
  straight, resumed = logs["straight"], logs["resumed"]
  if sorted(straight) != sorted(resumed) or len(straight) != 600:
    raise SystemExit(f"resume check: logged steps differ ({len(straight)} "
                     f"against {len(resumed)}).")
  differ = sum(straight[k] != resumed[k] for k in straight)
  return {"name": RESUME, "steps": len(straight), "stopped_at": stopped,
          "losses_differing": differ}


def _order(names):
  """Teachers first, then the checks, longest first (a better packing)."""
  teachers = sorted({CHECKS[n].teacher for n in names
                     if n in CHECKS and CHECKS[n].teacher})
  return teachers, [n for n in names if n in CHECKS]


def run_seed(names, seed, jobs, root):
  """{name: figures} of ``names`` at ``seed``, ``jobs`` runs at a time."""
  results = {}

  def spawn(name):
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), f"--worker={name}",
         f"--seed={seed}", f"--root={root}"], cwd=REPO, capture_output=True,
        text=True)
    if out.returncode != 0:
      with open(os.path.join(root, f"{name}.log"), "w") as f:
        f.write(out.stdout + out.stderr)
      raise SystemExit(f"{name} (seed {seed}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])

  teachers, checks = _order(names)
  with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
    for figures in pool.map(spawn, teachers):
      print(f"  teacher {figures['name']}: {figures['seconds']:.0f} s",
            flush=True)
    futures = [pool.submit(spawn, n) for n in checks]
    if RESUME in names:
      futures.append(pool.submit(resume_check, seed, root))
    for future in concurrent.futures.as_completed(futures):
      figures = future.result()
      results[figures["name"]] = figures
      shown = {k: v for k, v in figures.items() if k != "name"}
      print(f"  {figures['name']}: {json.dumps(shown)}", flush=True)
  return results


def _figures(results):
  """(check, figure) → value, the gated figures only."""
  return {(name, key): value for name, fig in results.items()
          for key, value in fig.items()
          if key.startswith(("near_", "worst_", "acc_"))}


def threshold(values):
  """The calibration of one figure from its values over the seeds: the
  threshold is mean − max(3·std, MARGIN) over the seeds that are not
  outliers. An outlier lies more than OUTLIER robust standard deviations
  (1.4826·MAD, the median absolute deviation, at least MARGIN) from the
  median: one seed of five of the 5-mode iCT check collapsed (0.012 near a
  mode against 0.63–0.75 for the others), and with it in, mean − 3·std was
  below 0, a check that could not fail. Outliers are kept in the file
  (``outliers``) and in docs/testing.md, not hidden; three seeds must
  remain."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  values = np.asarray(values, np.float64)
  median = float(np.median(values))
  spread = max(1.4826 * float(np.median(np.abs(values - median))), MARGIN)
  inlier = np.abs(values - median) <= OUTLIER * spread
  if inlier.sum() < 3:
    raise SystemExit(f"Calibration: {values.tolist()} leave fewer than three "
                     "seeds within the outlier bound; run more seeds.")
  kept = values[inlier]
  mean, std = float(kept.mean()), float(kept.std(ddof=1))
  return {"values": [round(float(v), 4) for v in values],
          "outliers": [round(float(v), 4) for v in values[~inlier]],
          "mean": round(mean, 4), "std": round(std, 4),
          "threshold": round(max(0.0, mean - max(3 * std, MARGIN)), 4)}


def calibrate(per_seed):
  """{"check.figure": threshold(values over the seeds)}."""
  keys = sorted(set().union(*(_figures(r) for r in per_seed.values())))
  return {f"{name}.{key}": threshold([_figures(r)[(name, key)]
                                      for r in per_seed.values()])
          for name, key in keys}


def _commit():
  out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                       capture_output=True, text=True)
  return out.stdout.strip() or "unknown"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", default="",
                      help=f"comma-separated checks of "
                           f"{', '.join([*CHECKS, RESUME])}")
  parser.add_argument("--seeds", default="0", help="comma-separated seeds")
  parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
  parser.add_argument("--calibrate", action="store_true",
                      help=f"write the thresholds to {THRESHOLDS}")
  parser.add_argument("--root", default="", help="where runs are written")
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
  parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
  args = parser.parse_args()
  sys.path.insert(0, REPO)
  if args.worker:
    return worker(args.worker, args.seed, args.root)

  names = [n for n in args.only.split(",") if n] or [*CHECKS, RESUME]
  unknown = sorted(set(names) - {*CHECKS, RESUME})
  if unknown:
    raise SystemExit(f"Unknown checks {unknown}; valid: "
                     f"{', '.join([*CHECKS, RESUME])}.")
  seeds = [int(s) for s in args.seeds.split(",")]
  if args.calibrate and len(seeds) < 3:
    raise SystemExit("--calibrate needs three seeds or more (a spread).")
  start, per_seed = time.time(), {}
  with tempfile.TemporaryDirectory(prefix="cm_jax_quality_") as tmp:
    for seed in seeds:
      root = os.path.join(args.root or tmp, f"seed{seed}")
      os.makedirs(root, exist_ok=True)
      print(f"seed {seed}:", flush=True)
      per_seed[seed] = run_seed(names, seed, args.jobs, root)
  minutes = (time.time() - start) / 60

  if args.calibrate:
    table = calibrate(per_seed)
    stamp = {"seeds": seeds, "commit": _commit(),
             "date": datetime.date.today().isoformat(), "rule": RULE}
    calibrated = stamp
    if args.only:  # some checks: theirs replace, the others' stay
      with open(THRESHOLDS) as f:
        saved = json.load(f)
      calibrated = {**saved["calibrated"],
                    "partial": {**saved["calibrated"].get("partial", {}),
                                **{name: stamp for name in names}}}
      table = {**{k: v for k, v in saved["thresholds"].items()
                  if k.split(".")[0] not in names}, **table}
    with open(THRESHOLDS, "w") as f:
      json.dump({"calibrated": calibrated, "thresholds": dict(sorted(
          table.items()))}, f, indent=1)
      f.write("\n")
    print(f"Wrote {THRESHOLDS} ({minutes:.1f} min).")
    return 0

  with open(THRESHOLDS) as f:
    thresholds = json.load(f)["thresholds"]
  failed = []
  print(f"\n{'check':<28}{'seed':>5}{'figure':>9}{'threshold':>11}"
        f"{'calibrated mean':>17}  result")
  for seed, results in per_seed.items():
    for (name, key), value in sorted(_figures(results).items()):
      entry = thresholds.get(f"{name}.{key}")
      if entry is None:
        raise SystemExit(f"No threshold for {name}.{key}; run "
                         "--calibrate.")
      gated = entry["threshold"] > 0  # a threshold of 0 cannot fail
      ok = value >= entry["threshold"]
      failed += [] if ok else [f"{name}.{key}"]
      shown = f"{entry['threshold']:>11.3f}" if gated else f"{'-':>11}"
      print(f"{name + '.' + key:<28}{seed:>5}{value:>9.3f}{shown}"
            f"{entry['mean']:>17.3f}  "
            f"{('ok' if ok else 'FAIL') if gated else 'not gated'}")
    if RESUME in results:
      r = results[RESUME]
      ok = r["losses_differing"] == 0
      failed += [] if ok else [RESUME]
      print(f"{'resume (stopped at ' + str(r['stopped_at']) + ')':<28}"
            f"{seed:>5}{r['losses_differing']:>9d}{0:>11d}{'':>17}  "
            f"{'ok' if ok else 'FAIL'}  (losses differing of "
            f"{r['steps']})")
  print(f"\nQuality gate: {'FAILED ' + ', '.join(failed) if failed else 'passed'}"
        f" ({minutes:.1f} min).")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())

"""Kills a short training at random moments and checks it resumes exactly.

  python scripts/fault_inject.py --kills=5

Trains configs/toy2d.py (a small MLP, a few hundred steps, a checkpoint every
few steps, metrics at every step) through launch.py twice, on one CPU device:
once without interruption, and once killed with SIGKILL at ``--kills``
random moments (at a random step, a random fraction of a step later, so some
kills land in the middle of a checkpoint save) and with SIGTERM once, each
time rerunning the same command until it finishes. Then it compares the two
runs' metrics.jsonl (every value but steps_per_s) and final checkpoints
(θ, θ⁻, EMA, optimizer state, step, data position) for exact equality, and
prints the kills survived, the steps lost (logged before a kill, redone after
it) and the differences. Exits 1 if anything differs or a run failed.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# Overrides of configs/toy2d.py: small and quick, logs every step.
OVERRIDES = {"data.num_examples": 1024, "model.hidden": 32, "model.depth": 2,
             "curriculum.s0": 2, "curriculum.s1": 64, "train.batch_size": 32,
             "train.log_every": 1, "train.sample_every": 0,
             "train.tensorboard": False}


def command(workdir, num_steps, checkpoint_every):
  flags = {**OVERRIDES, "train.num_steps": num_steps,
           "train.checkpoint_every": checkpoint_every}
  return ([sys.executable, os.path.join(REPO, "launch.py"),
           "--config=" + os.path.join(REPO, "configs", "toy2d.py"),
           f"--workdir={workdir}"]
          + [f"--config.{k}={v}" for k, v in flags.items()])


def child_env(platform):
  """JAX on ``platform``; on cpu one device, whatever the caller's XLA_FLAGS
  (tests fake four devices)."""
  env = dict(os.environ, JAX_PLATFORMS=platform)
  if platform == "cpu":
    env.pop("XLA_FLAGS", None)
  return env


def logged_steps(workdir):
  """Steps in metrics.jsonl so far (a torn last line is ignored)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    steps = []
    for line in f:
      try:
        steps.append(json.loads(line)["step"])
      except json.JSONDecodeError:
        pass
  return steps


def resumed_step(log):
  """The step a run resumed from (0 for a fresh start), from its log."""
  for line in log.splitlines():
    if "Resumed from step" in line:
      return int(line.split("Resumed from step")[1].split()[0])
  return 0


def run_once(cmd, workdir, log_path, env, sig=None, at_step=None,
             poll_s=0.002):
  """Runs ``cmd``; with ``sig``, sends it once step ``at_step`` is logged
  plus a random delay. Returns (exit code, log text, the last step logged
  when the signal went, or None if the run finished first)."""
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    reached, start = None, None
    if sig is not None:
      while proc.poll() is None:
        if start is None:  # wait until it has restored (and cut the metrics)
          with open(log_path) as f:
            text = f.read()
          if "Resumed from step" in text or "Starting from scratch" in text:
            start = resumed_step(text)
          time.sleep(poll_s)
          continue
        steps = logged_steps(workdir)
        if steps and steps[-1] >= max(at_step, start + 1):
          time.sleep(random.uniform(0.0, 0.05))  # within a step or a save
          reached = logged_steps(workdir)[-1]
          proc.send_signal(sig)
          break
        time.sleep(poll_s)
    code = proc.wait()
  with open(log_path) as f:
    return code, f.read(), reached


def compare_metrics(ref_dir, run_dir):
  """Differences between two metrics.jsonl files, steps_per_s aside."""
  read = lambda d: [
      {k: v for k, v in json.loads(line).items() if k != "steps_per_s"}
      for line in open(os.path.join(d, "metrics.jsonl"))]
  ref, run = read(ref_dir), read(run_dir)
  diffs = []
  if [r["step"] for r in ref] != [r["step"] for r in run]:
    diffs.append(f"metrics.jsonl steps differ: {len(ref)} lines uninterrupted,"
                 f" {len(run)} resumed")
  for a, b in zip(ref, run):
    if a != b:
      diffs.append(f"metrics.jsonl step {a['step']}: {a} vs {b}")
  return diffs


def compare_checkpoints(ref_dir, run_dir, num_steps, checkpoint_every):
  """Differences between the two runs' final checkpoints (exact equality)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from cm_jax import sharding  # pylint: disable=g-import-not-at-top
  from cm_jax.experiment import Experiment  # pylint: disable=g-import-not-at-top
  from configs import toy2d  # pylint: disable=g-import-not-at-top

  config = toy2d.get_config()
  flags = {**OVERRIDES, "train.num_steps": num_steps,
           "train.checkpoint_every": checkpoint_every}
  for key, value in flags.items():
    group, name = key.split(".")
    config[group][name] = value
  mesh = sharding.make_mesh(jax.devices()[:1])
  states = []
  for workdir in (ref_dir, run_dir):
    exp = Experiment(config, workdir, mesh)
    states.append(exp.restore(exp.new_state()))
  (ref, ref_meta), (run, run_meta) = states
  diffs = [f"meta {k}: {ref_meta[k]} vs {run_meta[k]}"
           for k in ("step", "data_position", "skipped")
           if ref_meta[k] != run_meta[k]]
  for item in ("online", "target", "ema", "opt_state"):
    pairs = zip(jax.tree.leaves_with_path(getattr(ref, item)),
                jax.tree.leaves(getattr(run, item)))
    for (path, a), b in pairs:
      a, b = np.asarray(a), np.asarray(b)
      if not np.array_equal(a, b):
        diffs.append(f"{item}{jax.tree_util.keystr(path)}: max |Δ| "
                     f"{np.max(np.abs(a.astype(float) - b)):.3g}")
  return diffs


def fault_inject(kills=5, num_steps=300, checkpoint_every=7, seed=0,
                 workdir=None, platform="cpu"):
  """Runs the experiment; returns a summary dict (see the module doc)."""
  rng = random.Random(seed)
  random.seed(seed)
  tmp = workdir or tempfile.mkdtemp(prefix="fault_inject_")
  ref_dir, run_dir = os.path.join(tmp, "uninterrupted"), os.path.join(tmp, "killed")
  logs = os.path.join(tmp, "logs")
  os.makedirs(logs, exist_ok=True)
  failures = []
  env = child_env(platform)

  start = time.perf_counter()
  code, log, _ = run_once(command(ref_dir, num_steps, checkpoint_every),
                          ref_dir, os.path.join(logs, "uninterrupted.log"), env)
  if code:
    raise RuntimeError(f"The uninterrupted run failed ({code}):\n{log[-2000:]}")
  print(f"uninterrupted run: {num_steps} steps in "
        f"{time.perf_counter() - start:.1f} s")

  cmd = command(run_dir, num_steps, checkpoint_every)
  # K SIGKILLs and one SIGTERM, in random order, at increasing random steps.
  signals = [signal.SIGKILL] * kills
  signals.insert(rng.randint(0, kills), signal.SIGTERM)
  targets = sorted(rng.sample(range(1, num_steps - 5), len(signals)))
  survived, lost, unfinished_saves, runs = 0, [], 0, 0
  previous_reached = None
  for i, (sig, target) in enumerate(zip(signals, targets)):
    code, log, reached = run_once(cmd, run_dir, os.path.join(logs, f"{i}.log"),
                                  env, sig, target)
    runs += 1
    name = signal.Signals(sig).name
    resumed = resumed_step(log)
    if previous_reached is not None:
      lost.append(previous_reached - resumed)
    if reached is not None:  # the last step it logged before it died
      reached = max(logged_steps(run_dir))
    if reached is None:
      failures.append(f"run {i} ended (code {code}) before its {name}")
      previous_reached = None
      continue
    expected = 0 if sig == signal.SIGTERM else -signal.SIGKILL
    if code != expected:
      failures.append(f"run {i}: exit code {code} after {name}, expected "
                      f"{expected}:\n{log[-1500:]}")
    if sig == signal.SIGTERM and "Stopped by SIGTERM" not in log:
      failures.append(f"run {i}: no 'Stopped by SIGTERM' line after SIGTERM")
    unfinished = [n for n in os.listdir(os.path.join(run_dir, "checkpoints"))
                  if ".orbax-checkpoint-tmp" in n]
    unfinished_saves += bool(unfinished)
    survived += 1
    previous_reached = reached
    print(f"run {i}: resumed from step {resumed}, {name}, last step logged "
          f"{reached}"
          + (f" (left unfinished save {', '.join(unfinished)})"
             if unfinished else ""))

  code, log, _ = run_once(cmd, run_dir, os.path.join(logs, "final.log"), env)
  runs += 1
  resumed = resumed_step(log)
  if previous_reached is not None:
    lost.append(previous_reached - resumed)
  if code:
    failures.append(f"the final resumed run failed ({code}):\n{log[-2000:]}")
  print(f"final run: resumed from step {resumed}, finished (exit {code})")

  diffs = failures + compare_metrics(ref_dir, run_dir)
  if not failures:
    diffs += compare_checkpoints(ref_dir, run_dir, num_steps, checkpoint_every)
  summary = {"kills": kills, "sigterm": 1, "survived": survived,
             "runs": runs, "steps_lost": lost, "total_steps_lost": sum(lost),
             "kills_during_save": unfinished_saves, "differences": diffs,
             "workdir": tmp}
  print(f"survived {survived} of {kills + 1} interruptions ({kills} SIGKILL, "
        f"1 SIGTERM) in {runs} runs; steps lost per interruption {lost} "
        f"(total {sum(lost)}); {unfinished_saves} kill(s) left an unfinished "
        f"checkpoint save; differences from the uninterrupted run: "
        f"{len(diffs)}")
  for d in diffs:
    print("  " + d)
  return summary


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--kills", type=int, default=5, help="SIGKILLs (K).")
  parser.add_argument("--num_steps", type=int, default=300)
  parser.add_argument("--checkpoint_every", type=int, default=7)
  parser.add_argument("--seed", type=int, default=0, help="Kill moments.")
  parser.add_argument("--workdir", default=None,
                      help="Where both runs go (default: a new temp dir).")
  parser.add_argument("--platform", default="cpu",
                      help="JAX_PLATFORMS of the runs (exactness is tested "
                      "on cpu; e.g. cuda to see a GPU's).")
  args = parser.parse_args()
  summary = fault_inject(args.kills, args.num_steps, args.checkpoint_every,
                         args.seed, args.workdir, args.platform)
  sys.exit(1 if summary["differences"] else 0)


if __name__ == "__main__":
  main()

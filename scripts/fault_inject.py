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

Then (``--faults``, all by default; the kills land in the first half of the
run) the faults of issue 19, in this order, each followed by a rerun:
- corrupt: a byte of the latest checkpoint's largest array file flipped;
  the rerun must pass over it (read error or checksum), move it aside, and
  stop on SIGTERM naming a checkpoint that exists.
- concurrent: a second run started (and its holder paused) while one trains
  in the workdir must stop at once, exit 2 and name the holder's pid.
- unwritable: ``chattr +i`` (root) or ``chmod 555`` on checkpoints/: the run
  must stop within a minute, non-zero, its last line naming the path.
- full_disk: the workdir is a tmpfs (where this process may mount one, as
  root) filled to 64 KiB of free space, else ENOSPC from the directory
  creation of Orbax's saves (simulated): as unwritable, with "No space left
  on device", and no checkpoint lost.
The final run must then reach the uninterrupted run's state bit for bit.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
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


def wait_for_start(proc, log_path, poll_s=0.002):
  """The step ``proc`` resumed from (0: fresh) once it logged it; None if it
  exited first."""
  while proc.poll() is None:
    with open(log_path) as f:
      text = f.read()
    if "Resumed from step" in text or "Starting from scratch" in text:
      return resumed_step(text)
    time.sleep(poll_s)
  return None


def run_once(cmd, workdir, log_path, env, sig=None, at_step=None,
             poll_s=0.002, timeout=None):
  """Runs ``cmd``; with ``sig``, sends it once step ``at_step`` is logged
  plus a random delay. Returns (exit code, log text, the last step logged
  when the signal went, or None if the run finished first). A run past
  ``timeout`` seconds is killed: exit code "hung"."""
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
    try:
      code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
      code = "hung"
  with open(log_path) as f:
    return code, f.read(), reached


FAULTS = ("corrupt", "concurrent", "unwritable", "full_disk")

# launch.py with ENOSPC from os.makedirs for Orbax's save directories of the
# steps from $FAULT_INJECT_FULL_FROM on: a full disk where no tmpfs can be
# mounted (argv: -c THIS launch.py FLAGS...).
SIMULATED_FULL_DISK = textwrap.dedent("""
    import errno, os, runpy, sys
    full_from = int(os.environ["FAULT_INJECT_FULL_FROM"])
    real = os.makedirs
    def makedirs(path, *args, **kwargs):
      step = os.path.basename(str(path)).split(".")[0]
      if (str(path).endswith(".orbax-checkpoint-tmp") and step.isdigit()
          and int(step) >= full_from):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
      return real(path, *args, **kwargs)
    os.makedirs = makedirs
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def checkpoint_steps(workdir):
  directory = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def last_line(log):
  lines = log.strip().splitlines()
  return lines[-1] if lines else ""


def stopped_checkpoint(log):
  """(step, path) of the "Stopped by SIGTERM at step k/K; checkpoint PATH."
  line, or None."""
  for line in log.splitlines():
    if "Stopped by SIGTERM at step" in line:
      step = int(line.split("at step ")[1].split("/")[0])
      return step, line.split("; checkpoint ")[1].split(". Rerun")[0]
  return None


def fault_corrupt(cmd, run_dir, log_path, env, rng):
  """Flips a byte of the latest checkpoint's largest array file; the rerun
  (stopped by SIGTERM) must pass over it and move it aside."""
  latest = checkpoint_steps(run_dir)[-1]
  step_dir = os.path.join(run_dir, "checkpoints", str(latest))
  files = [os.path.join(d, f) for d, _, names in os.walk(step_dir)
           for f in names if os.sep + "d" + os.sep in os.path.join(d, f)]
  path = max(files, key=os.path.getsize)
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    data[len(data) // 2] ^= 0x10
    f.seek(0)
    f.write(data)
  code, log, reached = run_once(cmd, run_dir, log_path, env, signal.SIGTERM,
                                latest + rng.randint(10, 20), timeout=300)
  if reached is not None:  # the last step logged before it stopped
    reached = max(logged_steps(run_dir))
  problems = []
  resumed = resumed_step(log)
  if resumed >= latest:
    problems.append(f"resumed from the damaged step {latest}")
  how = ("checksum" if "does not match its checksum" in log else
         "read error" if f"step {latest} in" in log else "not noticed")
  if not os.path.isdir(os.path.join(run_dir, "checkpoints",
                                    f"{latest}.corrupt")):
    problems.append(f"step {latest} not moved aside to {latest}.corrupt")
  stop = stopped_checkpoint(log)
  if code != 0 or stop is None:
    problems.append(f"exit {code}, no 'Stopped by SIGTERM' line")
  elif not (os.path.isdir(stop[1]) and stop[0] in checkpoint_steps(run_dir)):
    problems.append(f"the stop line names {stop[1]}, which does not exist")
  note = (f"step {latest} damaged ({how}), resumed from {resumed}, moved "
          f"aside; stopped at {stop[0] if stop else '?'} with its checkpoint")
  return problems, note, reached


def fault_concurrent(cmd, run_dir, log_path, env, rng):
  """While a run trains (paused by SIGSTOP for the test), a second one on
  the same workdir must stop at once naming it; the first then continues
  and stops on SIGTERM."""
  problems = []
  with open(log_path, "w") as log:
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    start = wait_for_start(first, log_path)
    while first.poll() is None and not [
        s for s in logged_steps(run_dir) if s > (start or 0)]:
      time.sleep(0.002)
    os.kill(first.pid, signal.SIGSTOP)
    began = time.perf_counter()
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    seconds = time.perf_counter() - began
    os.kill(first.pid, signal.SIGCONT)
    line = last_line(second.stderr)
    if second.returncode != 2 or f"pid {first.pid} on host" not in line:
      problems.append(f"the second run exited {second.returncode}: {line}")
    target = max(logged_steps(run_dir)) + rng.randint(5, 15)
    while first.poll() is None and max(logged_steps(run_dir)) < target:
      time.sleep(0.002)
    first.send_signal(signal.SIGTERM)
    code = first.wait()
    reached = max(logged_steps(run_dir))  # the last step it logged
  with open(log_path) as f:
    text = f.read()
  if code != 0 or "Stopped by SIGTERM" not in text:
    problems.append(f"the first run exited {code} after SIGTERM")
  note = (f"second run refused in {seconds:.1f} s (exit "
          f"{second.returncode}): {line[:160]}")
  return problems, note, reached


def _failing_run(cmd, run_dir, log_path, env, expected, files):
  """Runs ``cmd``, which must stop by itself within a minute, non-zero, its
  last line "launch.py: Cannot ..." naming one of ``files`` (in ``run_dir``)
  and ``expected``."""
  began = time.perf_counter()
  code, log, _ = run_once(cmd, run_dir, log_path, env, timeout=300)
  seconds = time.perf_counter() - began
  line = last_line(log)
  problems = []
  if code in (0, "hung") or seconds > 60:
    problems.append(f"exit {code} after {seconds:.0f} s")
  named = any(f" {os.path.join(run_dir, f)}" in line for f in files)
  if not (line.startswith("launch.py: Cannot ") and named
          and expected in line):
    problems.append(f"last line: {line[:300]}")
  reached = max(logged_steps(run_dir))
  return problems, f"stopped in {seconds:.1f} s, exit {code}: {line[:200]}", \
      reached


def fault_unwritable(cmd, run_dir, log_path, env, rng):
  """checkpoints/ made unwritable (chattr +i as root, else chmod 555)."""
  del rng
  ckpts = os.path.join(run_dir, "checkpoints")
  if os.geteuid() == 0:
    if subprocess.run(["chattr", "+i", ckpts], capture_output=True,
                      check=False).returncode:
      return None, "skipped: root, and chattr +i unsupported here", None
    undo, expected = ["chattr", "-i", ckpts], "Operation not permitted"
  else:
    os.chmod(ckpts, 0o555)
    undo, expected = ["chmod", "755", ckpts], "Permission denied"
  try:
    return _failing_run(cmd, run_dir, log_path, env, expected,
                        ("checkpoints",))
  finally:
    subprocess.run(undo, check=True)


def fault_full_disk(cmd, run_dir, log_path, env, rng, tmpfs):
  """A full disk: the tmpfs workdir filled to 64 KiB free, else simulated."""
  del rng
  before = checkpoint_steps(run_dir)
  filler = os.path.join(run_dir, "filler")
  if tmpfs:
    stat = os.statvfs(run_dir)
    with open(filler, "wb") as f:
      f.truncate(0)
      f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - 64 * 1024))
  else:
    env = dict(env, FAULT_INJECT_FULL_FROM=str(before[-1] + 1))
    cmd = [cmd[0], "-c", SIMULATED_FULL_DISK] + cmd[1:]
  try:
    # The save's background writes or the metrics line: whichever fails
    # first on the disk filled up.
    problems, note, reached = _failing_run(
        cmd, run_dir, log_path, env, "No space left on device",
        ("checkpoints", "metrics.jsonl"))
  finally:
    if tmpfs:
      os.remove(filler)
  after = checkpoint_steps(run_dir)
  if before[-1] not in after and after[-1] <= before[-1]:
    problems.append(f"lost checkpoints: {before} before, {after} after")
  kind = "tmpfs filled to 64 KiB free" if tmpfs else "simulated ENOSPC"
  return problems, f"{kind}; {note}", reached


def mount_tmpfs(path, size="512m"):
  """Mounts a tmpfs at ``path`` (root with CAP_SYS_ADMIN); True if done."""
  if os.geteuid() != 0:
    return False
  return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}",
                         "tmpfs", path], capture_output=True,
                        check=False).returncode == 0


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
                 workdir=None, platform="cpu", faults=FAULTS,
                 simulate_full_disk=False):
  """Runs the experiment; returns a summary dict (see the module doc)."""
  rng = random.Random(seed)
  random.seed(seed)
  tmp = workdir or tempfile.mkdtemp(prefix="fault_inject_")
  ref_dir, run_dir = os.path.join(tmp, "uninterrupted"), os.path.join(tmp, "killed")
  logs = os.path.join(tmp, "logs")
  os.makedirs(logs, exist_ok=True)
  os.makedirs(run_dir, exist_ok=True)
  tmpfs = ("full_disk" in faults and not simulate_full_disk
           and mount_tmpfs(run_dir))
  try:
    return _fault_inject(kills, num_steps, checkpoint_every, rng, tmp,
                         ref_dir, run_dir, logs, child_env(platform), faults,
                         tmpfs)
  finally:
    if tmpfs:  # keep what the run left, beside the mount point
      shutil.copytree(run_dir, run_dir + ".copy", dirs_exist_ok=True)
      subprocess.run(["umount", run_dir], check=False)


def _fault_inject(kills, num_steps, checkpoint_every, rng, tmp, ref_dir,
                  run_dir, logs, env, faults, tmpfs):
  failures = []

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
  # With the faults of issue 19 after them, the kills take the first half.
  last_target = num_steps // 2 if faults else num_steps - 5
  targets = sorted(rng.sample(range(1, last_target), len(signals)))
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

  fault_results = []
  handlers = {"corrupt": fault_corrupt, "concurrent": fault_concurrent,
              "unwritable": fault_unwritable,
              "full_disk": lambda *a: fault_full_disk(*a, tmpfs=tmpfs)}
  for name in faults:
    log_path = os.path.join(logs, f"{name}.log")
    problems, note, reached = handlers[name](cmd, run_dir, log_path, env, rng)
    runs += 1 + (name == "concurrent")
    if problems is None:  # skipped
      print(f"{name}: {note}")
      fault_results.append({"fault": name, "survived": None, "note": note})
      continue
    with open(log_path) as f:
      resumed = resumed_step(f.read())
    if previous_reached is not None:
      lost.append(previous_reached - resumed)
    previous_reached = reached
    failures += [f"{name}: {p}" for p in problems]
    fault_results.append({"fault": name, "survived": not problems,
                          "note": note})
    print(f"{name}: {'survived' if not problems else 'FAILED'}: resumed from "
          f"step {resumed}; {note}"
          + "".join(f"\n  {p}" for p in problems))

  code, log, _ = run_once(cmd, run_dir, os.path.join(logs, "final.log"), env)
  runs += 1
  resumed = resumed_step(log)
  if previous_reached is not None:
    lost.append(previous_reached - resumed)
  if code:
    failures.append(f"the final resumed run failed ({code}):\n{log[-2000:]}")
  print(f"final run: resumed from step {resumed}, finished (exit {code})")

  diffs = failures + compare_metrics(ref_dir, run_dir)
  if not code:
    diffs += compare_checkpoints(ref_dir, run_dir, num_steps, checkpoint_every)
  tried = [r for r in fault_results if r["survived"] is not None]
  summary = {"kills": kills, "sigterm": 1, "survived": survived,
             "runs": runs, "steps_lost": lost, "total_steps_lost": sum(lost),
             "kills_during_save": unfinished_saves, "differences": diffs,
             "faults": fault_results,
             "faults_survived": sum(bool(r["survived"]) for r in tried),
             "workdir": tmp}
  print(f"survived {survived} of {kills + 1} interruptions ({kills} SIGKILL, "
        f"1 SIGTERM) and {summary['faults_survived']} of {len(tried)} other "
        f"faults ({', '.join(r['fault'] for r in tried) or 'none'}) in {runs} "
        f"runs; steps lost per interruption or fault {lost} "
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
  parser.add_argument("--faults", default=",".join(FAULTS),
                      help="After the kills, these faults of issue 19, in "
                      f"order ({', '.join(FAULTS)}); '' for none.")
  parser.add_argument("--simulate_full_disk", action="store_true",
                      help="Simulate ENOSPC even where a tmpfs can be "
                      "mounted.")
  parser.add_argument("--platform", default="cpu",
                      help="JAX_PLATFORMS of the runs (exactness is tested "
                      "on cpu; e.g. cuda to see a GPU's).")
  args = parser.parse_args()
  faults = tuple(f for f in args.faults.split(",") if f)
  unknown = set(faults) - set(FAULTS)
  if unknown:
    parser.error(f"unknown --faults {sorted(unknown)}; valid: "
                 f"{', '.join(FAULTS)}")
  summary = fault_inject(args.kills, args.num_steps, args.checkpoint_every,
                         args.seed, args.workdir, args.platform, faults,
                         args.simulate_full_disk)
  sys.exit(1 if summary["differences"] else 0)


if __name__ == "__main__":
  main()

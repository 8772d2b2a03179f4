"""Metrics: always DIR/metrics.jsonl; TensorBoard too where TensorFlow exists.

clu's writers import TensorFlow and tensorboard at import time, which
accelerator images often lack; cm_jax must run without them, so the
TensorBoard writer is optional (``pip install -e .[tensorboard]``).
"""

import json
import os
import time

from absl import logging

from cm_jax.progress import hms


def _tensorboard_writer(logdir):
  try:
    from clu import metric_writers  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return metric_writers.SummaryWriter(logdir)


class MetricWriter:
  """Appends one JSON object per logged step (keys: step and the metrics)."""

  def __init__(self, workdir, tensorboard=True, enabled=True):
    self.enabled = enabled  # only process 0 writes
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = _tensorboard_writer(workdir) if (tensorboard and enabled) else None

  def write(self, step, metrics):
    if not self.enabled:
      return
    scalars = {k: float(v) for k, v in metrics.items()}
    try:
      with open(self.path, "a") as f:
        f.write(json.dumps({"step": int(step), **scalars}) + "\n")
    except OSError as e:  # a full disk fails the write, not the open
      error = OSError(f"Cannot append to {self.path}: {e.strerror} [errno "
                      f"{e.errno}]; free some space (or fix the workdir) and "
                      "rerun the same command to resume.")
      error.errno = e.errno
      raise error from e
    if self._tb is not None:
      self._tb.write_scalars(int(step), scalars)

  def discard_after(self, step):
    """Drops the lines of steps after ``step`` and any line torn by a kill.

    A resumed run redoes the steps after its checkpoint and logs them again;
    without this, metrics.jsonl would hold them twice. Returns how many lines
    were dropped. (TensorBoard events cannot be rewound; TensorBoard shows the
    later values.)
    """
    if not self.enabled or not os.path.exists(self.path):
      return 0
    with open(self.path) as f:
      lines = f.readlines()
    kept = []
    for line in lines:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:  # a partial last line from a kill -9
        continue
      if row["step"] <= step:
        kept.append(line.rstrip("\n") + "\n")
    if len(kept) != len(lines):
      tmp = self.path + ".tmp"
      with open(tmp, "w") as f:
        f.writelines(kept)
      os.replace(tmp, self.path)  # atomic: a kill now leaves one or the other
    return len(lines) - len(kept)

  def close(self):
    if self._tb is not None:
      self._tb.flush()


class Progress:
  """A one-line progress report: step, loss, steps/s and ETA."""

  def __init__(self, first_step, total_steps):
    self.total = total_steps
    self._mark = (first_step, time.perf_counter())

  def report(self, step, metrics):
    last_step, last_time = self._mark
    now = time.perf_counter()
    rate = (step - last_step) / max(now - last_time, 1e-9)
    self._mark = (step, now)
    eta = (self.total - step) / rate if rate > 0 else float("inf")
    scales = (f"  N {int(metrics['num_scales'])}" if "num_scales" in metrics
              else "")
    logging.info("step %d/%d  loss %.5g%s  %.2f steps/s  ETA %s", step,
                 self.total, float(metrics["loss"]), scales, rate, hms(eta))
    return rate


def every(step, period):
  """True on multiples of ``period`` (never when period ≤ 0)."""
  return period > 0 and step % period == 0

"""A progress bar for long loops outside training (sampling, features)."""

import time

from absl import logging


class ProgressBar:
  """Logs ``done/total`` with a bar, rate and ETA, at most every ``period``
  seconds (and at the end): for sample generation and feature extraction."""

  def __init__(self, total, what, unit="images", period=10.0):
    self.total, self.what, self.unit, self.period = total, what, unit, period
    self._start = self._last = time.perf_counter()

  def update(self, done):
    now = time.perf_counter()
    if now - self._last < self.period and done < self.total:
      return
    self._last = now
    rate = done / max(now - self._start, 1e-9)
    eta = (self.total - done) / rate if rate > 0 else float("inf")
    filled = int(20 * done / max(self.total, 1))
    logging.info("%s [%s%s] %d/%d %s  %.1f %s/s  ETA %s", self.what,
                 "#" * filled, "." * (20 - filled), done, self.total,
                 self.unit, rate, self.unit, hms(eta))


def hms(seconds):
  """h:mm:ss, or "?" for an unknown (infinite) time."""
  if seconds == float("inf"):
    return "?"
  seconds = int(seconds)
  return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

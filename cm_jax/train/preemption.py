"""Graceful stop on SIGTERM/SIGINT: finish the step, checkpoint, exit 0.

Pre-emptible machines send SIGTERM some seconds before they go; Ctrl-C sends
SIGINT. The first of either only sets a flag, which the training loop reads
after each step: it then writes a checkpoint, flushes its metrics and returns
(``launch.py`` exits 0). A second signal exits at once (status 128 + signum),
without a checkpoint: the last complete one is what a rerun resumes from.

With several processes, one host's signal must not make it stop alone (the
others would wait for it in the next collective), so there the loop asks JAX's
preemption sync point instead (through Orbax), which all hosts reach at the
same step; signals are left to JAX's own notifier.
"""

import os
import signal
import sys
import threading

import jax

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
  """Context manager: while inside, SIGTERM/SIGINT request a stop.

  Handlers can only be installed from the main thread of a single-process
  run; elsewhere the context does nothing and ``requested`` relies on the
  preemption sync point alone.
  """

  def __init__(self):
    self.signal_name = None  # e.g. "SIGTERM" once one arrived
    self._previous = {}

  def __enter__(self):
    if (threading.current_thread() is threading.main_thread()
        and jax.process_count() == 1):
      self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    if self.signal_name is not None:
      sys.stderr.write(f"Second signal ({name}): exiting now without a "
                       "checkpoint; a rerun resumes from the last complete "
                       "one.\n")
      sys.stderr.flush()
      os._exit(128 + signum)  # pylint: disable=protected-access
    self.signal_name = name
    sys.stderr.write(f"{name} received: stopping after this step with a "
                     "checkpoint (send it again to exit at once).\n")
    sys.stderr.flush()

  def requested(self, step, manager):
    """Whether to stop after ``step``: a signal here, or (multi-host) the
    step at which all hosts agreed to stop for a pre-emption."""
    if jax.process_count() > 1:
      if manager.reached_preemption(step):
        self.signal_name = self.signal_name or "pre-emption notice"
        return True
      return False
    return self.signal_name is not None

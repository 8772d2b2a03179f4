"""Prefetching: the next batches are read and put on the devices in a
background thread while the current step runs.

``Prefetcher(load, plans, depth)`` calls ``load(*plan)`` for each plan in
order, at most ``depth`` ahead, and yields the results in order. The plans
(here: (data position, number of steps)) fix what is loaded, so prefetching
never changes the data a step sees, and the loop, not the thread, knows the
data position to checkpoint.
"""

import queue
import threading

_DONE = object()


class Prefetcher:
  """Iterates ``load(*plan)`` over ``plans``, computed ``depth`` ahead in a
  daemon thread (``depth`` 0: inline, no thread). Use as a context manager
  so the thread stops when the loop does."""

  def __init__(self, load, plans, depth=2):
    self._load, self._plans, self.depth = load, iter(plans), depth
    if depth <= 0:
      return
    self._queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True,
                                    name="cm_jax-prefetch")
    self._thread.start()

  def _put(self, item):
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _run(self):
    try:
      for plan in self._plans:
        if not self._put((self._load(*plan), None)):
          return
    except Exception as e:  # pylint: disable=broad-except
      self._put((None, e))  # re-raised in the consuming thread
      return
    self._put((_DONE, None))

  def __iter__(self):
    return self

  def __next__(self):
    if self.depth <= 0:
      return self._load(*next(self._plans))
    item, error = self._queue.get()
    if error is not None:
      raise error
    if item is _DONE:
      raise StopIteration
    return item

  def close(self):
    if self.depth > 0:
      self._stop.set()
      self._thread.join(timeout=10)

  def __enter__(self):
    return self

  def __exit__(self, *unused_exc):
    self.close()

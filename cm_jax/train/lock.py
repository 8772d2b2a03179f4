"""One training run per workdir: ``WORKDIR/train.lock``.

The file holds its holder's host, pid and start time (JSON) and carries an
exclusive ``flock`` while the run lives; the run deletes it on exit. The
kernel drops the flock when a process dies however it dies (kill -9
included), so a lock file left by a dead process on this host is taken over
with a warning. One written on another host is only trusted: a second run
there stops, naming the holder, until the file is deleted. Sampling,
evaluation, editing and search only read a workdir and take no lock.
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket

from absl import logging

LOCK_FILE = "train.lock"


class WorkdirLockedError(RuntimeError):
  """Another training run holds the workdir."""


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, another user's
    return True
  return True


def _read(fd):
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 4096).decode(errors="replace")
  try:
    holder = json.loads(text)
  except json.JSONDecodeError:
    return None  # empty (a holder between creating and writing) or torn
  return holder if isinstance(holder, dict) else None


def _describe(holder, path):
  if holder is None:
    return f"another training run holds {path}"
  return (f"a training run (pid {holder.get('pid')} on host "
          f"{holder.get('host')}, started {holder.get('started')}) holds "
          f"{path}")


@contextlib.contextmanager
def workdir_lock(workdir):
  """Holds ``WORKDIR/train.lock`` for the duration; raises
  ``WorkdirLockedError`` (one line naming the holder) if another live run
  holds it."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(os.path.abspath(workdir), LOCK_FILE)
  host, pid = socket.gethostname(), os.getpid()
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read(fd)
      os.close(fd)
      raise WorkdirLockedError(
          f"{_describe(holder, path)}; only one run may train in a workdir. "
          "Wait for it to finish or stop it, or use another --workdir.")
    # The previous holder may have deleted the file between our open and
    # flock: then we locked a file nobody else sees; start over.
    if os.stat(path).st_ino != os.fstat(fd).st_ino:
      os.close(fd)
      continue
    break
  holder = _read(fd)
  if holder is not None:
    if holder.get("host") != host or (holder.get("pid") != pid
                                      and _alive(holder.get("pid", -1))):
      fcntl.flock(fd, fcntl.LOCK_UN)
      os.close(fd)
      raise WorkdirLockedError(
          f"{_describe(holder, path)} and may still be running (its file "
          "lock cannot be checked from here); if that run is gone, delete "
          "the file, else wait for it or use another --workdir.")
    logging.warning("Taking over the lock %s of pid %s on %s, which is no "
                    "longer running (it was killed or crashed).", path,
                    holder.get("pid"), host)
  started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, json.dumps({"host": host, "pid": pid,
                           "started": started}).encode())
  os.fsync(fd)
  try:
    yield path
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)  # before unlocking: a later opener then starts over
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)

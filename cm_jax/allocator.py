"""Run under tcmalloc when it is installed: a faster step on CPU.

XLA:CPU allocates a step's large temporaries afresh on every call. Under
glibc's malloc the kernel then maps and zero-fills their pages again on
every step: a quarter of a second of system time per CPU-size iCT step
(``benchmarks/vs_pytorch.py``, batch 32, 2-core AMD EPYC), out of about
0.9 s. tcmalloc keeps freed pages for reuse: system time 0.25 → 0.01 s per
step, step 0.92–1.0 → 0.78–0.82 s. glibc's own knobs, set in the process
with ``mallopt``, did not do it: no mmap and no trimming left the system
time at 0.25 s; adding a single malloc arena cut it to 0.04 s, but the
step got no faster.

A process cannot change its allocator once started, so ``launch.py`` and
the benchmarks call ``reexec_with_tcmalloc()`` first: if a tcmalloc library
is installed (Debian/Ubuntu: ``apt-get install libtcmalloc-minimal4``) and
no allocator is preloaded yet, the process re-executes itself, same
arguments, with the library in ``LD_PRELOAD``. Child processes inherit it.
``CM_JAX_TCMALLOC=0`` opts out; without the library nothing happens.
"""

import ctypes.util
import os
import sys
from typing import Mapping, Optional

LIBRARIES = ("tcmalloc_minimal", "tcmalloc")  # first found wins
# An LD_PRELOAD naming any of these already chose an allocator: leave it.
ALLOCATORS = ("tcmalloc", "jemalloc", "mimalloc")


def find_tcmalloc() -> Optional[str]:
  """The soname of an installed tcmalloc (``ldconfig``'s list), or None."""
  if not sys.platform.startswith("linux"):
    return None
  for name in LIBRARIES:
    found = ctypes.util.find_library(name)
    if found:
      return found
  return None


def preload_environment(environ: Mapping[str, str],
                        library: Optional[str]) -> Optional[dict]:
  """The environment to re-execute with, or None to carry on as is."""
  if library is None or environ.get("CM_JAX_TCMALLOC", "1") == "0":
    return None
  preloaded = environ.get("LD_PRELOAD", "")
  if any(name in preloaded for name in ALLOCATORS):
    return None
  return {
      # gperftools' tcmalloc reports every allocation over 1 GiB on stderr.
      "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(2**40),
      **environ,
      "LD_PRELOAD": ":".join(filter(None, [library, preloaded]))}


def reexec_with_tcmalloc() -> None:
  """Replaces this process by itself under tcmalloc (see the module doc).

  Call it before anything else: it re-runs the program from the start.
  ``sys.orig_argv`` keeps ``-m module`` and ``-c`` forms intact.
  """
  environ = preload_environment(os.environ, find_tcmalloc())
  if environ is not None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, environ)


def loaded(maps_file: str = "/proc/self/maps") -> str:
  """Which of ``ALLOCATORS`` this process runs with, or "default"."""
  try:
    with open(maps_file) as f:
      maps = f.read()
  except OSError:
    return "default"
  return next((name for name in ALLOCATORS if name in maps), "default")

"""cm_jax.allocator: when launch.py re-executes itself under tcmalloc."""

import os
import subprocess
import sys

import pytest

from cm_jax import allocator

LIB = "libtcmalloc_minimal.so.4"


def test_preloads_the_library_in_front_of_the_users_preloads():
  env = allocator.preload_environment({"LD_PRELOAD": "libfoo.so", "A": "1"}, LIB)
  assert env == {"LD_PRELOAD": f"{LIB}:libfoo.so", "A": "1",
                 "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(2**40)}
  assert allocator.preload_environment({}, LIB)["LD_PRELOAD"] == LIB


@pytest.mark.parametrize("environ,library", [
    ({}, None),  # not installed
    ({"CM_JAX_TCMALLOC": "0"}, LIB),  # opted out
    ({"LD_PRELOAD": "/usr/lib/libtcmalloc.so.4"}, LIB),  # already there
    ({"LD_PRELOAD": "libjemalloc.so.2"}, LIB),  # the user chose another
])
def test_leaves_the_process_alone(environ, library):
  assert allocator.preload_environment(environ, library) is None


ENV = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "CM_JAX_TCMALLOC")}
PROBE = ("import sys; from cm_jax import allocator; "
         "allocator.reexec_with_tcmalloc(); "
         "print(sys.argv[1:], 'tcmalloc' in open('/proc/self/maps').read())")


@pytest.mark.skipif(allocator.find_tcmalloc() is None,
                    reason="no tcmalloc installed (apt-get install libtcmalloc-minimal4)")
def test_reexecutes_once_with_the_same_arguments_under_tcmalloc():
  out = subprocess.run([sys.executable, "-c", PROBE, "a", "--b=1"], env=ENV,
                       capture_output=True, text=True, check=True).stdout
  assert out.splitlines() == ["['a', '--b=1'] True"]  # one run, after the re-exec
  out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                       env={**ENV, "CM_JAX_TCMALLOC": "0"}, check=True).stdout
  assert out.splitlines() == ["[] False"]


def test_loaded_reads_the_memory_map(tmp_path):
  maps = tmp_path / "maps"
  maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/libtcmalloc_minimal.so.4\n")
  assert allocator.loaded(str(maps)) == "tcmalloc"
  maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/libc.so.6\n")
  assert allocator.loaded(str(maps)) == "default"
  assert allocator.loaded(str(tmp_path / "missing")) == "default"

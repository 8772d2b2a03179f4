"""XLA:CPU defaults that make training on a laptop or CPU host faster.

XLA reads ``XLA_FLAGS`` once, when JAX first creates its CPU client, so these
are set at ``import cm_jax`` (before any computation). They touch only the CPU
backend: GPU and TPU runs compile exactly as without them.

``--xla_cpu_experimental_ynn_fusion_type=reduce`` routes reductions through
YNNPACK, and with YNNPACK enabled XLA:CPU also runs its convolutions there
instead of through Eigen. Measured on a 2-core AMD EPYC (AVX-512), jax 0.10.2:
a 3×3 conv, 64 → 64 channels at 32×32, batch 32, forward + backward, goes from
94 to 160 GFLOP/s, and the CPU-size iCT train step from 1.33 s to 1.05 s
(``benchmarks/vs_pytorch.py``; docs/performance.md). The other YNN fusion
types (``dot``, ``eltwise``) were slower on that step and are left off.

A user's own ``XLA_FLAGS`` win: a flag already named there is not touched,
so ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=`` turns this off
(``CM_JAX_XLA_CPU_DEFAULTS=0`` does the same for every flag here).

XLA aborts on a flag it does not know, so the flag is set only for the
jaxlib versions measured here, ``JAXLIB_RANGE`` (from 0.11 on, XLA turns YNN
fusions on by itself, with its own list of types). YNN fusions are
experimental and have miscompiled some gradients in other code (reports
against jaxlib 0.11.2): ``tests/test_xla_cpu.py`` checks that the iCT train
step's loss and gradient are the same with and without the flag.
"""

import importlib.metadata
import os

CPU_DEFAULTS = {"xla_cpu_experimental_ynn_fusion_type": "reduce"}
JAXLIB_RANGE = ((0, 10, 2), (0, 11, 0))  # [from, before)


def _jaxlib_version():
  try:
    version = importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return None
  parts = []
  for piece in version.split(".")[:3]:
    digits = "".join(ch for ch in piece if ch.isdigit())
    parts.append(int(digits or 0))
  return tuple(parts)


def with_cpu_defaults(xla_flags: str) -> str:
  """``xla_flags`` plus each default flag it does not already set."""
  added = [f"--{name}={value}" for name, value in CPU_DEFAULTS.items()
           if f"--{name}=" not in xla_flags]
  return " ".join([xla_flags.strip()] + added).strip()


def set_cpu_defaults(environ=os.environ) -> None:
  """Adds ``CPU_DEFAULTS`` to ``environ["XLA_FLAGS"]`` (unless opted out)."""
  if environ.get("CM_JAX_XLA_CPU_DEFAULTS", "1") == "0":
    return
  version = _jaxlib_version()
  if version is None or not JAXLIB_RANGE[0] <= version < JAXLIB_RANGE[1]:
    return
  environ["XLA_FLAGS"] = with_cpu_defaults(environ.get("XLA_FLAGS", ""))

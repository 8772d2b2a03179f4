"""cm_jax/xla_cpu.py: the XLA:CPU flags set at import, and that they leave
the train step's numbers alone (YNN fusions are experimental)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from cm_jax import xla_cpu

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAG = "--xla_cpu_experimental_ynn_fusion_type"

# The iCT loss and its gradient for an NCSN++ with every block kind (FIR
# down/up, attention, fused GroupNorm), on one device, written to argv[1].
GRADIENT = """
import sys
import jax, jax.numpy as jnp, numpy as np
from cm_jax import nn
from cm_jax.methods import make_objective
from cm_jax.nn import dummy_inputs
from cm_jax.nn import network
from configs import ict_cifar10
config = ict_cifar10.get_config("smoke")
config.model.update(ch=16, ch_mult=(1, 2), num_res_blocks=1,
                    attn_resolutions=(4,), dropout=0.0)
shape = (8, 8, 3)
model = nn.get_model(config.model)
params = model.init(jax.random.key(0), *dummy_inputs(model, shape))["params"]
objective = make_objective(config, shape)
x = jax.random.uniform(jax.random.key(1), (16, *shape), minval=-1, maxval=1)
def loss(p):
  per_example, _ = objective(network(model, p), network(model, p), x,
                             jax.random.key(2), 5000)
  return per_example.mean()
value, grads = jax.jit(jax.value_and_grad(loss))(params)
leaves = jax.tree.leaves(grads)
np.savez(sys.argv[1], loss=value, grad=np.concatenate([np.ravel(g) for g in leaves]))
import os
print("XLA_FLAGS=" + os.environ.get("XLA_FLAGS", ""))
"""


def test_defaults_leave_user_flags_alone():
  assert xla_cpu.with_cpu_defaults("--a=1") == f"--a=1 {FLAG}=reduce"
  assert xla_cpu.with_cpu_defaults(f"{FLAG}=") == f"{FLAG}="  # user's own
  env = {"XLA_FLAGS": "--a=1", "CM_JAX_XLA_CPU_DEFAULTS": "0"}
  xla_cpu.set_cpu_defaults(env)
  assert env["XLA_FLAGS"] == "--a=1"
  env = {}
  xla_cpu.set_cpu_defaults(env)
  assert env["XLA_FLAGS"] == f"{FLAG}=reduce"
  # This test process imported cm_jax before JAX started, so it runs with it.
  assert f"{FLAG}=reduce" in os.environ["XLA_FLAGS"]


@pytest.mark.parametrize("version", [(0, 6, 0), (0, 10, 1), (0, 11, 2), None])
def test_unmeasured_jaxlib_gets_no_flag(monkeypatch, version):
  """XLA aborts on flags it does not know: none outside the measured range."""
  monkeypatch.setattr(xla_cpu, "_jaxlib_version", lambda: version)
  env = {"XLA_FLAGS": "--a=1"}
  xla_cpu.set_cpu_defaults(env)
  assert env["XLA_FLAGS"] == "--a=1"


# Slow (two processes compiling an NCSN++ gradient, a minute on 2 cores); the
# flag is only set for the jaxlib versions it was measured on (test above).
@pytest.mark.slow
def test_train_step_gradient_same_with_and_without_the_flag(tmp_path):
  procs = {}
  for name, opt_out in (("ynn", "1"), ("eigen", "0")):  # side by side
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(CM_JAX_XLA_CPU_DEFAULTS=opt_out, JAX_PLATFORMS="cpu")
    procs[name] = subprocess.Popen(
        [sys.executable, "-c", GRADIENT, str(tmp_path / f"{name}.npz")],
        cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
  results = {}
  for name, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    assert (f"{FLAG}=reduce" in stdout) == (name == "ynn"), stdout
    results[name] = np.load(tmp_path / f"{name}.npz")
  ynn, eigen = results["ynn"], results["eigen"]
  assert np.isfinite(eigen["loss"]) and eigen["loss"] > 0
  np.testing.assert_allclose(ynn["loss"], eigen["loss"], rtol=1e-5)
  # Summation order differs, so elementwise agreement is to float32 rounding
  # relative to the gradient's scale.
  scale = np.abs(eigen["grad"]).max()
  np.testing.assert_allclose(ynn["grad"], eigen["grad"], rtol=0,
                             atol=1e-4 * scale)
  cosine = (ynn["grad"] @ eigen["grad"]) / (
      np.linalg.norm(ynn["grad"]) * np.linalg.norm(eigen["grad"]))
  assert cosine > 1 - 1e-6

#!/usr/bin/env bash
# Issue 8's accelerator targets in one run, for a session lent an H100/H200.
#
# The device image has jax, flax, optax, orbax, chex, absl-py and PyYAML but
# not ml_collections. Here, once, in the repo root:
#   mkdir -p .git/info && echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl ml_collections==1.1.0
# Then `device run` with carry [".whl"], command `bash benchmarks/gpu_check.sh`,
# timeout_s 540. It prints (and writes under $OUT):
#   - the paper-size ict_cifar10 train step in bf16 at 128 images per chip:
#     images/s, step s, TFLOP/s, MFU (target >= 40%), peak_mem_bytes (target
#     < 16 GiB);
#   - 1- and 2-step consistency sampling and the EDM Heun-35 sampler at batch
#     1, 64 and 1024 (target: 1-step at 1024 well under a second);
#   - XLA:GPU's buffer plan for that bf16 step and the activations autodiff
#     saves (`--what memory`), to set beside the measured peak;
#   - the same train step in float32, for the bf16 speed-up (last: if the
#     time runs out, the bf16 figures are already in $OUT).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true
python3 -c "import jax; print(jax.__version__, jax.devices())"
python3 -m benchmarks.run --case ict_cifar10 --dtype bfloat16 --batch 128 \
    --what train,sample --steps 10 --sample_batches 1,64,1024 \
    | tee "$out/ict_cifar10_bf16.txt"
python3 -m benchmarks.run --case ict_cifar10 --dtype bfloat16 --batch 128 \
    --what memory | tee "$out/ict_cifar10_bf16_memory.txt"
python3 -m benchmarks.run --case ict_cifar10 --batch 128 --what train \
    --steps 10 | tee "$out/ict_cifar10_f32.txt"

"""Benchmarks: train-step throughput, sampling latency, FID features.

    python -m benchmarks.run [--case NAME] [--batch B]
        [--what train,sample,fid,memory,methods]
        [--steps 10] [--dtype bfloat16] [--param_sharding fsdp]

Cases: ``ict_cifar10`` (the paper's NCSN++, 56M parameters), ``ict_cifar10_cpu``
(its ``:smoke`` CPU size) and ``toy2d``. Each measurement prints one JSON line
(case, what, batch, images_per_s, step_s, compile_s, peak_mem_bytes,
fwd_gflop_per_image, tflops, mfu, device) and a table follows at the end.
Batches are synthetic (no data set needed). ``mfu`` is achieved FLOP/s over
the chip's dense bf16 peak (null on CPUs and unknown chips); FLOPs come from
XLA's cost analysis of the compiled programs. ``--what memory`` compiles the
train step without running it and prints XLA's per-device buffer plan.
``--what methods`` times the train step of each method on the case's
network and batch in one process and prints each as a ratio to iCT's (the
price of sCM's, MeanFlow's and iMF's forward-mode JVP; ``METHODS``).
"""

import argparse
import json
import resource
import statistics
import time

import jax
import ml_collections
import numpy as np

import jax.numpy as jnp

from cm_jax import (allocator, generate, keys, methods, nn, processes,
                    sharding)
from cm_jax.data import ArraySource
from cm_jax.experiment import Experiment
from cm_jax.nn.group_norm import fused_backward
from configs import ict_cifar10, toy2d

# Dense bf16 peak TFLOP/s per chip, for MFU.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "TPU v4": 275.0,
               "TPU v5 lite": 197.0, "TPU v5e": 197.0, "TPU v5p": 459.0,
               "TPU v6 lite": 918.0}


def case_config(name):
  if name == "ict_cifar10":
    return ict_cifar10.get_config(), (32, 32, 3)
  if name == "ict_cifar10_cpu":
    return ict_cifar10.get_config("smoke"), (32, 32, 3)
  if name == "toy2d":
    return toy2d.get_config(), (2,)
  raise ValueError(f"Unknown case {name!r}; valid: ict_cifar10, "
                   "ict_cifar10_cpu, toy2d.")


def device_name():
  return f"{jax.devices()[0].device_kind} x{jax.device_count()}"


def peak_tflops():
  kind = jax.devices()[0].device_kind
  for name, peak in PEAK_TFLOPS.items():
    if name in kind:
      return peak * jax.device_count()
  return None


def peak_memory():
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"])
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # CPU: RSS


def flops(compiled):
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float(cost.get("flops", 0.0)) if cost else None


def timed(fn, *args, steps):
  """(compile_s, median step_s, compiled) of ``fn(*args)`` after warm-up."""
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - start
  jax.block_until_ready(compiled(*args))  # warm-up
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return compile_s, statistics.median(times), compiled


def forward_gflop_per_image(model, example_shape, params, batch):
  x, cond = nn.dummy_inputs(model, example_shape, batch)
  apply = jax.jit(lambda p, x, cond: model.apply({"params": p}, x, cond))
  value = flops(apply.lower(params, x, cond).compile())
  return None if value is None else value / batch / 1e9


def row(case, what, batch, step_s, compile_s, gflop_step=None, **extra):
  tflops = (gflop_step / step_s / 1e3) if gflop_step else None
  peak = peak_tflops()
  return {"case": case, "what": what, "batch": batch,
          "images_per_s": batch / step_s, "step_s": step_s,
          "compile_s": compile_s, "peak_mem_bytes": peak_memory(),
          "tflops": tflops, "mfu": tflops / peak if tflops and peak else None,
          "device": device_name(), "allocator": allocator.loaded(), **extra}


def synthetic_experiment(config, example_shape, batch):
  """The ``Experiment`` of ``config`` on a synthetic data set of ``batch``
  examples of ``example_shape`` (no data set needed)."""
  if len(example_shape) == 3:
    x = np.random.default_rng(0).integers(0, 256, (batch, *example_shape),
                                          np.uint8)
  else:
    x = np.random.default_rng(0).standard_normal(
        (batch, *example_shape)).astype(np.float32)
  return Experiment(config, "/unused", source=ArraySource(x=x))


class TrainRunner:
  """The compiled train step of ``config`` (``Experiment.train_step``) on a
  synthetic batch, holding its (donated) state: ``run(steps)`` → the step
  times in seconds. Attributes: compile_s, gflop_step (XLA's count for one
  step), fwd_gflop_per_image, num_params."""

  def __init__(self, config, example_shape, batch):
    exp = synthetic_experiment(config, example_shape, batch)
    state = exp.new_state()
    self.batch = {"x": jax.device_put(
        jax.random.uniform(jax.random.key(0), (batch, *example_shape),
                           minval=-1, maxval=1),
        sharding.batch_sharding(exp.mesh))}
    start = time.perf_counter()
    self.compiled = exp.train_step().lower(state, self.batch, None).compile()
    self.compile_s = time.perf_counter() - start
    gflop = flops(self.compiled)
    self.gflop_step = gflop and gflop / 1e9
    self.fwd_gflop_per_image = forward_gflop_per_image(
        exp.model, example_shape, state.online, min(batch, 8))
    self.num_params = int(sum(p.size for p in jax.tree.leaves(state.online)))
    self.state = state
    self.run(1)  # warm-up

  def run(self, steps):
    # The step donates its state: each call gets the previous call's output.
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      self.state, metrics = self.compiled(self.state, self.batch, None)
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - start)
    return times


def _sct(c):
  methods.scm.configure(c)
  c.method, c.init.workdir = "sct", ""


def _imf(c):
  methods.meanflow.configure_imf(c, methods.meanflow.CIFAR10)
  c.model.v_head = True


# Each method on the case's network (its own time inputs and heads: sCM's
# w_φ, the flow maps' second time embedding, iMF's v head), from the case's
# iCT config.
METHODS = {
    "ict": lambda c: None,
    "ect": lambda c: methods.ect.configure(c, stage_steps=1000),
    "sct": _sct,
    "meanflow": lambda c: methods.meanflow.configure(
        c, methods.meanflow.CIFAR10),
    "imf": _imf,
    "shortcut": methods.shortcut.configure,
}


def bench_methods(case, config, example_shape, batch, steps):
  """One row per ``METHODS`` entry: its train step's median time and the
  ratio to iCT's, measured one after another in this process."""
  rows, base_s = [], None
  for name, set_method in METHODS.items():
    c = ml_collections.ConfigDict(config.to_dict())
    set_method(c)
    c.train.batch_size = batch
    if name == "shortcut":  # its dyadic grid needs B/8 ≥ log2 M examples
      c.shortcut.bootstrap_every = max(1, min(8, batch // 7))
    runner = TrainRunner(c, example_shape, batch)
    step_s = statistics.median(runner.run(steps))
    base_s = base_s or step_s
    rows.append(row(case, f"train:{name}", batch, step_s, runner.compile_s,
                    runner.gflop_step, num_params=runner.num_params,
                    ratio_to_ict=step_s / base_s))
    print(json.dumps(rows[-1]), flush=True)
  return rows


def bench_train(case, config, example_shape, batch, steps):
  runner = TrainRunner(config, example_shape, batch)
  return row(case, "train", batch, statistics.median(runner.run(steps)),
             runner.compile_s, runner.gflop_step,
             fwd_gflop_per_image=runner.fwd_gflop_per_image,
             dtype=config.model.dtype,
             param_sharding=config.train.param_sharding,
             num_params=runner.num_params)


def saved_activation_bytes(model, params, example_shape, batch):
  """Bytes that autodiff keeps from one differentiated forward pass of
  ``model`` (train mode, dropout on) for its backward: the residuals of
  ``jax.vjp`` (with GroupNorm's fused backward, as the reverse-mode-only
  methods train), read off the traced program, so the same on every backend.
  It is the jaxpr's count, before XLA fuses, rematerialises or drops
  buffers (a broadcast zero that dropout keeps is counted in full), and it
  leaves out the no-grad θ⁻ pass and the backward's own temporaries: a
  guide to what the activations cost, not a device's peak. Arrays shaped
  like a parameter (the float32 parameters themselves, kept for the input
  gradients) are not counted: they are already in the train state."""
  x, cond = nn.dummy_inputs(model, example_shape, batch)

  def residuals(params, x):
    forward = lambda p, x: model.apply(
        {"params": p}, x, cond, train=True,
        rngs={"dropout": jax.random.key(0)})
    return jax.tree.leaves(jax.vjp(forward, params, x)[1])

  with fused_backward():  # as the train step of a reverse-mode-only method
    saved = jax.eval_shape(residuals, params, x)
  param_shapes = {(p.shape, p.dtype) for p in jax.tree.leaves(params)}
  return int(sum(r.size * r.dtype.itemsize for r in saved
                 if (r.shape, r.dtype) not in param_shapes))


def bench_memory(case, config, example_shape, batch):
  """XLA's buffer plan for one train step, compiled but never run: the
  bytes of arguments + outputs + temporaries − donated aliases, per device
  (``compiled.memory_analysis()``). On an accelerator ``--what train``
  reports the measured peak instead; this is for sizing a run from a
  machine without the chip (the plan is the compiling backend's, so a CPU
  estimate for a GPU run is indicative only)."""
  exp = synthetic_experiment(config, example_shape, batch)
  state = exp.abstract_state()
  batch_x = jax.ShapeDtypeStruct((batch, *example_shape), np.float32,
                                 sharding=sharding.batch_sharding(exp.mesh))
  step = exp.train_step()
  start = time.perf_counter()
  compiled = step.lower(state, {"x": batch_x}, None).compile()
  compile_s = time.perf_counter() - start
  mem = compiled.memory_analysis()
  planned = (mem.argument_size_in_bytes + mem.output_size_in_bytes
             + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
  per_device = batch // jax.device_count()
  return {"case": case, "what": "memory_plan", "batch": batch,
          "per_device_batch": per_device,
          "planned_bytes": int(planned),
          "saved_activation_bytes": saved_activation_bytes(
              exp.model, state.online, example_shape, per_device),
          "argument_bytes": int(mem.argument_size_in_bytes),
          "temp_bytes": int(mem.temp_size_in_bytes),
          "compile_s": compile_s, "dtype": config.model.dtype,
          "param_sharding": config.train.param_sharding,
          "device": device_name()}


def bench_sample(case, config, example_shape, batch, steps):
  model = nn.get_model(config.model)
  params = model.init(jax.random.key(0),
                      *nn.dummy_inputs(model, example_shape))["params"]
  process = processes.make_process(config)
  shape = (batch, *example_shape)
  sampler = lambda name: generate.make_sampler(model, process, shape, name,
                                               config)
  cases = {  # (sampler of generate.SAMPLERS, times)
      "sample_1step": ("onestep", jnp.zeros((0,), jnp.float32)),
      "sample_2step": ("multistep", jnp.asarray(config.sample.ts[:1],
                                                jnp.float32)),
      "sample_heun35": ("ode", process.grid(18)[::-1]),
  }
  per_example = keys.per_example(jax.random.key(1), 0, batch)
  rows = []
  for what, (name, times) in cases.items():
    compile_s, step_s, compiled = timed(sampler(name), params, per_example,
                                        times, None, steps=steps)
    gflop = flops(compiled)
    rows.append(row(case, what, batch, step_s, compile_s,
                    gflop and gflop / 1e9, latency_s=step_s))
  return rows


def bench_fid(batch, steps):
  from cm_jax.evaluation import fid  # pylint: disable=g-import-not-at-top
  extractor = fid.get_extractor(batch)
  images = np.random.default_rng(0).integers(
      0, 256, (extractor.batch_size, 32, 32, 3), np.uint8)
  start = time.perf_counter()
  extractor(images, progress=False)
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    extractor(images, progress=False)
    times.append(time.perf_counter() - start)
  return row("fid_inception", "fid_features", extractor.batch_size,
             statistics.median(times), compile_s)


def _size(num_bytes):
  if num_bytes >= 2**30:
    return f"{num_bytes / 2**30:.2f} GiB"
  return f"{num_bytes / 2**20:.1f} MiB"


def main():
  allocator.reexec_with_tcmalloc()  # as launch.py does
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--case", default="ict_cifar10_cpu")
  parser.add_argument("--batch", type=int, default=None,
                      help="global batch (default: 8 on CPU, 128/chip else)")
  parser.add_argument("--what", default="train,sample,fid")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--dtype", default=None)
  parser.add_argument("--param_sharding", default=None)
  parser.add_argument("--sample_batches", default=None,
                      help="comma-separated sampling batch sizes "
                           "(default 1,64,1024 on accelerators, 1,8 on CPU)")
  args = parser.parse_args()
  on_cpu = jax.default_backend() == "cpu"
  config, example_shape = case_config(args.case)
  if args.dtype:
    config.model.dtype = args.dtype
  if args.param_sharding:
    config.train.param_sharding = args.param_sharding
  batch = args.batch or (8 if on_cpu else 128 * jax.device_count())
  sample_batches = [int(b) for b in (
      args.sample_batches or ("1,8" if on_cpu else "1,64,1024")).split(",")]
  rows = []

  def emit(result):
    print(json.dumps(result), flush=True)
    rows.append(result)

  what = args.what.split(",")
  if "memory" in what:
    result = bench_memory(args.case, config, example_shape, batch)
    print(json.dumps(result), flush=True)
    print(f"# {args.case} {result['dtype']}: XLA plans "
          f"{_size(result['planned_bytes'])} per device at "
          f"{result['per_device_batch']} examples per device "
          f"({result['device']}; compiled, not run); autodiff saves "
          f"{_size(result['saved_activation_bytes'])} of "
          f"activations per device (traced program, any backend) next to "
          f"{_size(result['argument_bytes'])} of train state and "
          f"batch")
  if "train" in what:
    emit(bench_train(args.case, config, example_shape, batch, args.steps))
  if "methods" in what:  # each row is printed as it is measured
    rows += bench_methods(args.case, config, example_shape, batch,
                          args.steps)
    print("# train step time / iCT's: " + ", ".join(
        f"{r['what'][6:]} {r['ratio_to_ict']:.2f}" for r in rows
        if "ratio_to_ict" in r))
  if "sample" in what:
    for b in sample_batches:
      try:
        for result in bench_sample(args.case, config, example_shape, b,
                                   args.steps):
          emit(result)
      except Exception as e:  # pylint: disable=broad-except
        print(f"# sampling at batch {b} failed ({type(e).__name__}: "
              f"{str(e).splitlines()[0][:120]}); larger batches skipped.")
        break
  if "fid" in what:
    emit(bench_fid(args.batch or (16 if on_cpu else 200), args.steps))
  print(f"\n{'case':16s} {'what':14s} {'batch':>6s} {'img/s':>10s} "
        f"{'step s':>9s} {'compile s':>9s} {'TFLOP/s':>8s} {'MFU':>6s} "
        f"{'peak MiB':>9s}")
  for r in rows:
    fmt = lambda v, f: "-" if v is None else format(v, f)
    print(f"{r['case']:16s} {r['what']:14s} {r['batch']:6d} "
          f"{r['images_per_s']:10.2f} {r['step_s']:9.4f} "
          f"{r['compile_s']:9.1f} {fmt(r['tflops'], '8.3f')} "
          f"{fmt(r['mfu'], '6.1%')} {r['peak_mem_bytes'] / 2**20:9.0f}")
  print(f"device: {device_name()}")


if __name__ == "__main__":
  main()

"""cm_jax's iCT train step against a PyTorch peer of equal forward FLOPs.

    python -m benchmarks.vs_pytorch --torch_python /tmp/tv/bin/python

One run, one machine: builds the cm_jax iCT step (``ict_cifar10`` at
``--ch/--ch_mult/--num_res_blocks``, no dropout, float32) and takes its
forward GFLOP per image from XLA's cost analysis; starts
benchmarks/torch_peer.py under ``--torch_python`` (an interpreter with torch
and diffusers; both are benchmark-only dependencies), which sizes a diffusers
``UNet2DModel`` to that many FLOPs and keeps it warm. Then ``--reps`` rounds,
each timing ``--steps`` cm_jax steps and ``--steps`` torch steps (the order
alternating), so that load from elsewhere on the machine falls on both.
Prints a JSON line per side and one for the ratios, then a table. Reported
images/s are batch / median step time over all rounds; ``_best`` figures use
each side's fastest step (on a shared machine the least disturbed one).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

import jax

from benchmarks import run as bench
from cm_jax import allocator
from configs import ict_cifar10

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "torch_peer.py")


def ict_config(ch, ch_mult, num_res_blocks):
  """The iCT CIFAR-10 recipe at a CPU-size UNet (NCSN++ blocks, FIR)."""
  config = ict_cifar10.get_config("smoke")
  config.model.ch, config.model.ch_mult = ch, tuple(ch_mult)
  config.model.num_res_blocks = num_res_blocks
  config.model.dropout = 0.0  # the peer has none
  return config


class Peer:
  """torch_peer.py --serve: a warm PyTorch iCT step in a subprocess."""

  def __init__(self, python, target_gflop, batch):
    self.proc = subprocess.Popen(
        [python, PEER, "--serve", "--target_gflop", str(target_gflop),
         "--batch", str(batch)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True)
    self.info = self._read()

  def _read(self):
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError(f"{PEER} exited (code {self.proc.wait()}); run it "
                         "by hand with the same --torch_python to see why.")
    return json.loads(line)

  def run(self, steps):
    self.proc.stdin.write(f"{steps}\n")
    self.proc.stdin.flush()
    return self._read()["times"]

  def close(self):
    self.proc.stdin.close()
    self.proc.wait()


def main():
  # Under tcmalloc when installed, as launch.py runs; the peer inherits the
  # preload, so both sides run with the same allocator.
  allocator.reexec_with_tcmalloc()
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--torch_python", default=sys.executable,
                      help="a Python with torch and diffusers")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--ch", type=int, default=32)
  parser.add_argument("--ch_mult", default="1,2")
  parser.add_argument("--num_res_blocks", type=int, default=2)
  parser.add_argument("--reps", type=int, default=5)
  parser.add_argument("--steps", type=int, default=2,
                      help="steps per side per round")
  args = parser.parse_args()
  config = ict_config(args.ch, [int(m) for m in args.ch_mult.split(",")],
                      args.num_res_blocks)
  jax_side = bench.TrainRunner(config, (32, 32, 3), args.batch)
  peer = Peer(args.torch_python, jax_side.fwd_gflop_per_image, args.batch)
  times = {"cm_jax": [], "torch": []}
  try:
    for rep in range(args.reps):
      order = [("cm_jax", jax_side), ("torch", peer)]
      for name, side in order[::-1] if rep % 2 else order:
        times[name] += side.run(args.steps)
  finally:
    peer.close()

  rows = {}
  for name, fwd in (("cm_jax", jax_side.fwd_gflop_per_image),
                    ("torch", peer.info["fwd_gflop_per_image"])):
    step_s = statistics.median(times[name])
    rows[name] = {
        "case": f"ict_vs_pytorch/{name}", "batch": args.batch,
        "images_per_s": args.batch / step_s, "step_s": step_s,
        "step_s_min": min(times[name]),
        "images_per_s_best": args.batch / min(times[name]),
        "step_s_all": times[name], "fwd_gflop_per_image": fwd,
        "fwd_tflops": args.batch * fwd / step_s / 1e3,
        "device": bench.device_name(), "allocator": allocator.loaded()}
  rows["cm_jax"].update(
      ch=args.ch, ch_mult=args.ch_mult, num_res_blocks=args.num_res_blocks,
      num_params=jax_side.num_params, compile_s=jax_side.compile_s,
      jax=jax.__version__)
  rows["torch"].update({k: peer.info[k] for k in (
      "block_out_channels", "layers_per_block", "params", "threads",
      "torch")})
  rows["torch"]["allocator"] = ("tcmalloc" if peer.info["tcmalloc"]
                                else "default")
  ratio = rows["cm_jax"]["images_per_s"] / rows["torch"]["images_per_s"]
  flop_ratio = rows["cm_jax"]["fwd_tflops"] / rows["torch"]["fwd_tflops"]
  # The fastest step of each: what each side does when least disturbed.
  best_ratio = (rows["cm_jax"]["images_per_s_best"]
                / rows["torch"]["images_per_s_best"])
  for r in rows.values():
    print(json.dumps(r), flush=True)
  print(json.dumps({"case": "ict_vs_pytorch/ratio",
                    "images_per_s_ratio": ratio,
                    "images_per_s_ratio_best": best_ratio,
                    "flop_rate_ratio": flop_ratio, "target": 1.2}))
  print(f"\n{'side':8s} {'batch':>5s} {'img/s':>8s} {'step s':>8s} "
        f"{'min s':>7s} "
        f"{'fwd GFLOP/img':>13s} {'fwd TFLOP/s':>11s}  network")
  nets = {"cm_jax": f"NCSN++ ch {args.ch} mult ({args.ch_mult}) "
                    f"blocks {args.num_res_blocks}, "
                    f"{jax_side.num_params / 1e6:.2f}M params",
          "torch": f"UNet2DModel {tuple(peer.info['block_out_channels'])} "
                   f"layers {peer.info['layers_per_block']}, "
                   f"{peer.info['params'] / 1e6:.2f}M params"}
  for name, r in rows.items():
    print(f"{name:8s} {r['batch']:5d} {r['images_per_s']:8.2f} "
          f"{r['step_s']:8.3f} {r['step_s_min']:7.3f} "
          f"{r['fwd_gflop_per_image']:13.3f} "
          f"{r['fwd_tflops']:11.4f}  {nets[name]}")
  print(f"cm_jax / torch images/s: {ratio:.2f}× median, {best_ratio:.2f}× "
        f"fastest step (target ≥ 1.2×); FLOP-rate ratio {flop_ratio:.2f}×; "
        f"{args.reps} interleaved rounds of "
        f"{args.steps} steps; device: {bench.device_name()}; allocator: "
        f"cm_jax {rows['cm_jax']['allocator']}, torch "
        f"{rows['torch']['allocator']}")


if __name__ == "__main__":
  main()

"""The PyTorch peer of the cm_jax iCT step (torch and diffusers only; no jax).

An iCT update as the paper states it (Song & Dhariwal 2023): EDM-σ grid of N
points, i ~ the lognormal p(i) (P_mean −1.1, P_std 2.0), x_σ = x + σ·z for
σ_i and σ_{i+1}, f_θ with EDM's c_skip/c_out/c_in (σ_data 0.5, ε = 0.002),
the target f at σ_i under no_grad (θ⁻ = stopgrad θ), weight 1/(σ_{i+1} − σ_i),
pseudo-Huber with c = 0.00054·√d, RAdam (lr 1e-4), on a diffusers
``UNet2DModel`` whose width is chosen so that its forward FLOPs per image
match ``--target_gflop`` (printed by benchmarks/vs_pytorch.py).

    python benchmarks/torch_peer.py --target_gflop 0.154 --batch 8

Prints one JSON line: images_per_s, step_s, fwd_gflop_per_image, params.
With ``--serve`` it prints that line (from the warm-up) and then, for each
line ``n`` read from stdin, runs n steps and prints {"times": [...]}: the
interleaved driver benchmarks/vs_pytorch.py keeps one warm peer this way.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
from diffusers import UNet2DModel
from torch.utils.flop_counter import FlopCounterMode


def make_unet(width, layers):
  return UNet2DModel(
      sample_size=32, in_channels=3, out_channels=3,
      block_out_channels=(width, 2 * width), layers_per_block=layers,
      down_block_types=("DownBlock2D", "DownBlock2D"),
      up_block_types=("UpBlock2D", "UpBlock2D"),
      norm_num_groups=min(8, width))


def forward_gflop(model):
  x = torch.zeros(1, 3, 32, 32)
  with FlopCounterMode(display=False) as counter:
    model(x, torch.zeros(1)).sample
  return counter.get_total_flops() / 1e9


def karras(n, eps=0.002, t=80.0, rho=7.0):
  i = torch.arange(n, dtype=torch.float64)
  return ((eps ** (1 / rho) + i / (n - 1) * (t ** (1 / rho) - eps ** (1 / rho)))
          ** rho).float()


def ict_step(model, opt, x, sigmas, probs, huber_c):
  b = x.shape[0]
  i = torch.multinomial(probs, b, replacement=True)
  s_lo, s_hi = sigmas[i], sigmas[i + 1]
  z = torch.randn_like(x)

  def f(x_sigma, sigma):  # CM eq. 5 with EDM's scalings
    sd, eps = 0.5, 0.002
    c_skip = sd ** 2 / ((sigma - eps) ** 2 + sd ** 2)
    c_out = (sigma - eps) * sd / torch.sqrt(sigma ** 2 + sd ** 2)
    c_in = 1 / torch.sqrt(sigma ** 2 + sd ** 2)
    view = lambda v: v.view(-1, 1, 1, 1)
    out = model(view(c_in) * x_sigma, 0.25 * torch.log(sigma)).sample
    return view(c_skip) * x_sigma + view(c_out) * out

  online = f(x + s_hi.view(-1, 1, 1, 1) * z, s_hi)
  with torch.no_grad():
    target = f(x + s_lo.view(-1, 1, 1, 1) * z, s_lo)
  diff = (online - target).flatten(1)
  distance = torch.sqrt((diff ** 2).sum(1) + huber_c ** 2) - huber_c
  loss = (distance / (s_hi - s_lo)).mean()
  opt.zero_grad(set_to_none=True)
  loss.backward()
  opt.step()
  return loss


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--target_gflop", type=float, required=True)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--num_scales", type=int, default=11)
  parser.add_argument("--serve", action="store_true",
                      help="after warm-up, run n steps per stdin line n")
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)
  # The width (and depth) whose forward FLOPs are nearest the target.
  candidates = [(w, l) for w in range(8, 129, 8) for l in (1, 2)]
  width, layers = min(candidates, key=lambda c: abs(
      math.log(forward_gflop(make_unet(*c)) / args.target_gflop)))
  model = make_unet(width, layers)
  gflop = forward_gflop(model)
  opt = torch.optim.RAdam(model.parameters(), lr=1e-4)
  sigmas = karras(args.num_scales)
  # iCT's p(i) ∝ erf((ln σ_{i+1} − P_mean)/(√2 P_std)) − erf((ln σ_i − …)).
  cdf = torch.erf((torch.log(sigmas) + 1.1) / (math.sqrt(2) * 2.0))
  probs = cdf[1:] - cdf[:-1]
  huber_c = 0.00054 * math.sqrt(3 * 32 * 32)
  x = torch.rand(args.batch, 3, 32, 32) * 2 - 1
  step = lambda: ict_step(model, opt, x, sigmas, probs, huber_c)

  def run(steps):
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      step()
      times.append(time.perf_counter() - start)
    return times

  run(2)  # warm-up
  times = run(1 if args.serve else args.steps)
  step_s = statistics.median(times)
  print(json.dumps({
      "case": "torch_ict_unet2d", "batch": args.batch,
      "images_per_s": args.batch / step_s, "step_s": step_s,
      "fwd_gflop_per_image": gflop, "block_out_channels": [width, 2 * width],
      "layers_per_block": layers,
      "params": sum(p.numel() for p in model.parameters()),
      "threads": torch.get_num_threads(), "torch": torch.__version__,
      # The allocator it inherited from vs_pytorch (tcmalloc or glibc's).
      "tcmalloc": "tcmalloc" in open("/proc/self/maps").read()}),
        flush=True)
  if args.serve:
    for line in sys.stdin:
      print(json.dumps({"times": run(int(line))}), flush=True)


if __name__ == "__main__":
  main()
